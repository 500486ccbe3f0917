//! Graceful shutdown, signalled to every task of the proxy.

use tokio::sync::watch;

/// A handle that tells a task the proxy is shutting down.
///
/// Sessions check it between transactions, so running transactions can finish; the
/// listener stops accepting at once.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side, held by whoever decides to stop the proxy.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has begun.
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|down| *down).await;
    }
}
