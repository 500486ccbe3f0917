//! Graceful shutdown, signalled to every task of the proxy in two stages.

use tokio::sync::watch;

/// How far a shutdown has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Running,
    /// No new clients; sessions end once nothing runs for them.
    Draining,
    /// `shutdown_timeout` has passed: every session ends now, told why.
    Terminating,
}

/// A handle that tells a task the proxy is shutting down.
///
/// Sessions check it between transactions, so running transactions can finish; the
/// listener stops accepting at once. When the wait is over, sessions still running are
/// ended, with PostgreSQL's 57P01.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Stage>,
}

/// The sending side, held by whoever decides to stop the proxy.
pub struct ShutdownTrigger {
    tx: watch::Sender<Stage>,
}

pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(Stage::Running);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Begins the shutdown: no new clients, running transactions may finish.
    pub fn trigger(&self) {
        self.tx
            .send_if_modified(|stage| raise(stage, Stage::Draining));
    }

    /// Ends the wait: sessions still running end now.
    pub fn terminate(&self) {
        self.tx
            .send_if_modified(|stage| raise(stage, Stage::Terminating));
    }
}

/// Moves `stage` forward to `to`, never back; whether it moved.
fn raise(stage: &mut Stage, to: Stage) -> bool {
    let moved = *stage < to;
    if moved {
        *stage = to;
    }
    moved
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow() >= Stage::Draining
    }

    /// Resolves once shutdown has begun.
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|stage| *stage >= Stage::Draining).await;
    }

    /// Resolves once the wait for running transactions is over.
    pub async fn terminating(&mut self) {
        let _ = self.rx.wait_for(|stage| *stage >= Stage::Terminating).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_come_in_order() {
        let (trigger, mut shutdown) = shutdown_pair();
        assert!(!shutdown.is_shutdown());
        trigger.trigger();
        shutdown.recv().await;
        assert!(shutdown.is_shutdown());
        let mut waiting = shutdown.clone();
        let terminated = tokio::spawn(async move { waiting.terminating().await });
        tokio::task::yield_now().await;
        assert!(!terminated.is_finished());
        trigger.terminate();
        trigger.trigger();
        assert!(terminated.await.is_ok());
        shutdown.terminating().await;
    }
}
