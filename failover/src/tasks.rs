//! Ownership of the control plane's tasks: each is spawned on a tracker that a stopping
//! proxy waits on, and told to stop by a cancellation token.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where a shard's background tasks (its monitor, the jobs the monitor starts) are
/// owned: `tracker` holds them so that whoever stops the proxy can wait for them, and
/// `stop` tells them to end.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new(tracker: TaskTracker, stop: CancellationToken) -> Tasks {
        Tasks { tracker, stop }
    }

    /// The tracker the tasks are spawned on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Cancelled when the tasks are to end.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Spawns `task` on the tracker; once stopped, it is dropped where it stands.
    pub fn spawn_stoppable<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        // Boxed once: the wrappers then move a pointer, not the whole future (a client
        // session's is several kB, which each wrapper would otherwise hold again).
        let task = Box::pin(task);
        self.tracker.spawn(async move {
            stop.run_until_cancelled_owned(task).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stoppable_task_ends_when_stopped() {
        let tasks = Tasks::default();
        let handle = tasks.spawn_stoppable(std::future::pending());
        tokio::task::yield_now().await;
        assert_eq!(tasks.tracker().len(), 1);
        tasks.stop().cancel();
        tasks.tracker().close();
        tasks.tracker().wait().await;
        assert!(handle.await.is_ok());
        assert!(tasks.tracker().is_empty());
    }
}
