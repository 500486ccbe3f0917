//! What the admin console set on a database: disabled (no new clients) or paused (no
//! new transactions); read by logins and checkouts.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// A database's `DISABLE`/`ENABLE` and `PAUSE`/`RESUME` state.
pub struct AdminState {
    disabled: AtomicBool,
    /// `paused`'s value, read without the watch's lock at every checkout.
    paused_now: AtomicBool,
    paused: watch::Sender<bool>,
}

impl Default for AdminState {
    fn default() -> Self {
        AdminState {
            disabled: AtomicBool::new(false),
            paused_now: AtomicBool::new(false),
            paused: watch::Sender::new(false),
        }
    }
}

impl AdminState {
    pub fn set_disabled(&self, disabled: bool) {
        self.disabled.store(disabled, Ordering::Relaxed);
    }

    /// New clients are refused.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused_now.store(paused, Ordering::SeqCst);
        self.paused.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        self.paused_now.load(Ordering::Relaxed)
    }

    /// Waits while the database is paused; at once when it is not.
    pub async fn wait_while_paused(&self) {
        if !self.is_paused() {
            return;
        }
        // The watch's own value decides: a RESUME between the two reads is not missed.
        let mut resumed = self.paused.subscribe();
        let _ = Box::pin(resumed.wait_for(|paused| !paused)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_paused_database_holds_checkouts_until_resumed() {
        let state = Arc::new(AdminState::default());
        state.wait_while_paused().await;
        state.set_paused(true);
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.wait_while_paused().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        state.set_paused(false);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
