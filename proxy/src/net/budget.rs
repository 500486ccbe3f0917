//! One budget for the bytes of large messages that all client connections hold at
//! once, so that many clients sending big queries together cannot take the process's
//! memory: each connection is bounded by `max_message_size`, the sum by this.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::WireError;

/// Messages from this size on are counted; smaller ones fit in a connection's ordinary
/// buffers, which the client limit already bounds.
pub const LARGE_MESSAGE: usize = 1 << 20;

/// The budget is kept in units of this many bytes, so that 1GB fits a semaphore's
/// permit count.
const UNIT: usize = 1024;

/// The shared budget of `max_message_memory` bytes.
#[derive(Debug)]
pub struct MessageBudget {
    units: Arc<Semaphore>,
    total: usize,
    wait: Duration,
}

/// Room held in the budget for one message, given back when dropped.
#[derive(Debug)]
pub struct Lease {
    _permit: OwnedSemaphorePermit,
}

impl MessageBudget {
    /// A budget of `bytes` in all; a message waits for room at most `wait`.
    pub fn new(bytes: u64, wait: Duration) -> MessageBudget {
        let units = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .div_ceil(UNIT)
            .min(Semaphore::MAX_PERMITS);
        MessageBudget {
            units: Arc::new(Semaphore::new(units)),
            total: units * UNIT,
            wait,
        }
    }

    /// Room for a message of `len` bytes, waiting for others to give theirs back;
    /// `OverBudget` when none came within the wait.
    pub async fn reserve(&self, len: usize) -> Result<Lease, WireError> {
        let units = u32::try_from(len.div_ceil(UNIT)).unwrap_or(u32::MAX);
        let acquire = self.units.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Ok(Lease { _permit: permit }),
            // Never closed; a message larger than the whole budget is refused at once
            // by the configuration's check, and here by the wait.
            Ok(Err(_)) | Err(_) => Err(WireError::OverBudget {
                len,
                budget: self.total,
            }),
        }
    }

    /// Bytes not held by any message now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_waits_for_room_then_is_refused() {
        let budget = Arc::new(MessageBudget::new(4 << 20, Duration::from_millis(200)));
        let first = budget.reserve(3 << 20).await.unwrap();
        assert_eq!(budget.available(), 1 << 20);
        // Waits while the first is held, and gets the room once it is given back.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(2 << 20).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        // Held past the wait: refused, and the budget is whole again afterwards.
        let held = budget.reserve(4 << 20).await.unwrap();
        assert_eq!(
            budget.reserve(1 << 20).await.unwrap_err(),
            WireError::OverBudget {
                len: 1 << 20,
                budget: 4 << 20
            }
        );
        drop(held);
        assert_eq!(budget.available(), 4 << 20);
    }
}
