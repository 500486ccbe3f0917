//! Test-only fault points in the two-phase commit path: a commit can be made to stop
//! dead at a named step, as if the proxy had crashed there, or to wait there while a
//! test kills a server. Compiled in only with the `fault-injection` feature; without it
//! every point is a no-op the compiler removes. Armed only through the Rust API of a
//! running proxy ([`crate::ProxyHandle::commit_faults`]), never by a client or a file.

/// The steps of a two-phase commit a fault can be injected at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// The decision row is written (not committed) on the coordinator; nothing prepared.
    BeforePrepare,
    /// Every other writing participant is prepared; the coordinator has not committed.
    AfterPrepare,
    /// The coordinator committed (the commit point); nothing committed-prepared yet.
    AfterDecision,
    /// The first participant is committed-prepared, the others not yet.
    AfterFirstCommitPrepared,
}

/// What an armed fault does to the commit that reaches its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The proxy "dies": every server connection of the session is closed where it
    /// stands, and so is the client's, with nothing said.
    Crash,
    /// The commit waits at the step until [`CommitFaults::release`].
    Pause,
}

/// Whether the commit goes on after a fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proceed {
    Continue,
    Crash,
}

#[cfg(feature = "fault-injection")]
pub use armed::CommitFaults;

#[cfg(not(feature = "fault-injection"))]
pub use inert::CommitFaults;

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::{CommitStep, Fault, Proceed};

    /// One database's fault points: at most one armed at a time, for the next commit
    /// that reaches its step.
    #[derive(Debug, Default)]
    pub struct CommitFaults {
        armed: Mutex<Option<(CommitStep, Fault)>>,
        reached: Notify,
        release: Notify,
    }

    impl CommitFaults {
        /// The next commit reaching `step` suffers `fault`.
        pub fn arm(&self, step: CommitStep, fault: Fault) {
            if let Ok(mut armed) = self.armed.lock() {
                *armed = Some((step, fault));
            }
        }

        /// Resolves once a commit paused at the armed step.
        pub async fn reached(&self) {
            self.reached.notified().await;
        }

        /// Lets the paused commit go on.
        pub fn release(&self) {
            self.release.notify_one();
        }

        pub(crate) async fn at(&self, step: CommitStep) -> Proceed {
            let fault = match self.armed.lock() {
                Ok(mut armed) if armed.is_some_and(|(s, _)| s == step) => {
                    armed.take().map(|(_, fault)| fault)
                }
                _ => None,
            };
            match fault {
                None => Proceed::Continue,
                Some(Fault::Crash) => {
                    tracing::warn!(?step, "injected fault: the commit stops here");
                    Proceed::Crash
                }
                Some(Fault::Pause) => {
                    tracing::warn!(?step, "injected fault: the commit waits here");
                    self.reached.notify_one();
                    self.release.notified().await;
                    Proceed::Continue
                }
            }
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod inert {
    use super::{CommitStep, Proceed};

    /// No fault points: built without the `fault-injection` feature.
    #[derive(Debug, Default)]
    pub struct CommitFaults;

    impl CommitFaults {
        #[inline(always)]
        pub(crate) async fn at(&self, _step: CommitStep) -> Proceed {
            Proceed::Continue
        }
    }
}
