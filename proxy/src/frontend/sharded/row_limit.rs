//! An Execute with a row limit on a sharded database, for statements whose replies pass
//! through unmerged: the first rows go to the client and the portal is then suspended, as
//! PostgreSQL does, while the rest of the answer is read from the shard and dropped. Such
//! a portal cannot be resumed, so a further Execute of it is refused. (A merged query's
//! rows go through a resumable [`super::row_stream::RowStream`] instead.)

use crate::net::messages::tag;
use crate::net::Frame;

/// How many rows the running Execute may still send.
#[derive(Debug, Clone, Copy)]
pub struct RowLimit {
    left: u32,
    /// The limit was reached: PostgreSQL then ends the Execute with PortalSuspended,
    /// even when no row follows.
    reached: bool,
}

/// What to do with one reply frame under a row limit.
pub enum Passage {
    /// Send it as it is.
    Send,
    /// A row beyond the limit: drop it.
    Drop,
    /// The command's completion after the limit was reached: PortalSuspended instead.
    Suspend,
}

impl RowLimit {
    pub fn new(max_rows: u32) -> RowLimit {
        RowLimit {
            left: max_rows,
            reached: max_rows == 0,
        }
    }

    /// Rows the Execute may still send.
    pub fn left(&self) -> u32 {
        self.left
    }

    pub fn reached(&self) -> bool {
        self.reached
    }

    pub fn pass(&mut self, frame: &Frame) -> Passage {
        match frame.tag() {
            tag::DATA_ROW if self.reached => Passage::Drop,
            tag::DATA_ROW => {
                self.left -= 1;
                self.reached = self.left == 0;
                Passage::Send
            }
            tag::COMMAND_COMPLETE if self.reached => Passage::Suspend,
            _ => Passage::Send,
        }
    }
}

/// The reply that ends an Execute whose row limit was reached.
pub fn portal_suspended() -> Frame {
    Frame::new(tag::PORTAL_SUSPENDED, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::messages::{command_complete, text_data_row};

    fn run(limit: u32, rows: usize) -> Vec<char> {
        let mut limit = RowLimit::new(limit);
        let mut out = Vec::new();
        let frames = (0..rows)
            .map(|i| text_data_row(&i.to_string()))
            .chain(std::iter::once(command_complete(&format!("SELECT {rows}"))));
        for frame in frames {
            match limit.pass(&frame) {
                Passage::Send => out.push(frame.tag() as char),
                Passage::Drop => {}
                Passage::Suspend => out.push('s'),
            }
        }
        out
    }

    #[test]
    fn rows_up_to_the_limit_then_suspended_as_postgres_does() {
        assert_eq!(run(2, 1), vec!['D', 'C']);
        // Exactly the limit: PostgreSQL cannot know no row follows, so it suspends.
        assert_eq!(run(2, 2), vec!['D', 'D', 's']);
        assert_eq!(run(2, 5), vec!['D', 'D', 's']);
        // A command without rows completes whatever the limit.
        assert_eq!(run(1, 0), vec!['C']);
    }
}
