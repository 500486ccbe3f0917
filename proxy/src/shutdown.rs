//! Graceful shutdown, signalled to every task of the proxy in two stages.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures::task::AtomicWaker;
use tokio::sync::watch;

/// How far a shutdown has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
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
    sessions: Arc<SessionWakers>,
}

/// The sending side, held by whoever decides to stop the proxy.
pub struct ShutdownTrigger {
    tx: watch::Sender<Stage>,
    sessions: Arc<SessionWakers>,
}

/// The stage again, for client sessions, which look at it at every step: reading an
/// atomic and keeping one waker per session costs far less than a watch, whose waiting
/// future takes a lock at every poll.
#[derive(Default)]
struct SessionWakers {
    stage: AtomicU8,
    next: AtomicU64,
    wakers: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
}

impl SessionWakers {
    fn raise(&self, to: Stage) {
        self.stage.fetch_max(to as u8, Ordering::SeqCst);
        let wakers = match self.wakers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        for waker in wakers.values() {
            waker.wake();
        }
    }
}

pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(Stage::Running);
    let sessions = Arc::new(SessionWakers::default());
    (
        ShutdownTrigger {
            tx,
            sessions: Arc::clone(&sessions),
        },
        Shutdown { rx, sessions },
    )
}

impl ShutdownTrigger {
    /// Begins the shutdown: no new clients, running transactions may finish.
    pub fn trigger(&self) {
        self.tx
            .send_if_modified(|stage| raise(stage, Stage::Draining));
        self.sessions.raise(Stage::Draining);
    }

    /// Ends the wait: sessions still running end now.
    pub fn terminate(&self) {
        self.tx
            .send_if_modified(|stage| raise(stage, Stage::Terminating));
        self.sessions.raise(Stage::Terminating);
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

    /// A client session's view of the shutdown, cheap to look at often.
    pub fn for_session(&self) -> SessionShutdown {
        self.for_killable_session(Arc::default())
    }

    /// As [`for_session`](Self::for_session), for a session that `kill` also ends (the
    /// admin console's `KILL`).
    pub fn for_killable_session(&self, kill: Arc<KillSwitch>) -> SessionShutdown {
        let id = self.sessions.next.fetch_add(1, Ordering::Relaxed);
        let waker = kill.waker.clone();
        let mut wakers = match self.sessions.wakers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        wakers.insert(id, Arc::clone(&waker));
        SessionShutdown {
            sessions: Arc::clone(&self.sessions),
            waker,
            id,
            kill,
        }
    }
}

/// Ends one session as the shutdown's last stage ends them all: set by the admin
/// console's `KILL`, heard by the session at once, even while it waits.
#[derive(Default)]
pub struct KillSwitch {
    killed: AtomicBool,
    waker: Arc<AtomicWaker>,
}

impl KillSwitch {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// What a client session knows of the shutdown; see [`Shutdown::for_session`].
pub struct SessionShutdown {
    sessions: Arc<SessionWakers>,
    waker: Arc<AtomicWaker>,
    id: u64,
    kill: Arc<KillSwitch>,
}

impl SessionShutdown {
    /// Resolves once the shutdown has begun (at once if it has).
    pub async fn draining(&self) {
        self.reached(Stage::Draining).await
    }

    /// Resolves once the wait for running transactions is over, or the session is
    /// killed.
    pub async fn terminating(&self) {
        self.reached(Stage::Terminating).await
    }

    async fn reached(&self, stage: Stage) {
        poll_fn(|cx| {
            // The waker first, then the stage: a raise in between still wakes this task.
            self.waker.register(cx.waker());
            if self.sessions.stage.load(Ordering::SeqCst) >= stage as u8
                || (stage == Stage::Terminating && self.kill.is_killed())
            {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for SessionShutdown {
    fn drop(&mut self) {
        let mut wakers = match self.sessions.wakers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        wakers.remove(&self.id);
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

    #[tokio::test]
    async fn sessions_are_woken_at_each_stage() {
        let (trigger, shutdown) = shutdown_pair();
        let session = shutdown.for_session();
        let waiting = tokio::spawn(async move {
            session.draining().await;
            session.terminating().await;
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        trigger.trigger();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        trigger.terminate();
        assert!(waiting.await.is_ok());
        // A session made after the shutdown sees it at once.
        shutdown.for_session().terminating().await;
    }

    #[tokio::test]
    async fn a_killed_session_terminates_alone() {
        let (_trigger, shutdown) = shutdown_pair();
        let kill = Arc::new(KillSwitch::default());
        let killed = shutdown.for_killable_session(kill.clone());
        let other = shutdown.for_session();
        let waiting = tokio::spawn(async move { killed.terminating().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        kill.kill();
        assert!(waiting.await.is_ok());
        let still = tokio::time::timeout(std::time::Duration::from_millis(50), other.terminating());
        assert!(still.await.is_err(), "another session was ended");
    }
}
