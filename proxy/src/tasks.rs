//! Ownership of every task a running proxy spawns, so that stopping it waits for them.

use std::future::Future;

use pgshard_failover::Tasks;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every task of a running proxy: client sessions on one tracker, the rest (accept
/// loops, scrape answers, shard monitors and the jobs they start) on another, and one
/// stop token that ends whatever still runs once the proxy stops.
///
/// Sessions have a tracker of their own because a drain waits for them alone: the shard
/// monitors keep working while running transactions finish.
#[derive(Clone, Debug)]
pub struct ProxyTasks {
    sessions: Tasks,
    others: Tasks,
}

impl Default for ProxyTasks {
    fn default() -> ProxyTasks {
        let stop = CancellationToken::new();
        ProxyTasks {
            sessions: Tasks::new(TaskTracker::new(), stop.clone()),
            others: Tasks::new(TaskTracker::new(), stop),
        }
    }
}

impl ProxyTasks {
    /// Tasks not yet ended, sessions included; none once the proxy's shutdown returned.
    pub fn running(&self) -> usize {
        self.sessions.tracker().len() + self.others.tracker().len()
    }

    /// Client sessions not yet ended.
    pub fn sessions(&self) -> usize {
        self.sessions.tracker().len()
    }

    /// Spawns a client's session.
    pub(crate) fn spawn_session<F>(&self, session: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.sessions.spawn_stoppable(session);
    }

    /// Spawns any other task of the proxy.
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.others.spawn_stoppable(task)
    }

    /// Where one database's shard monitors are owned: the proxy's tracker, and a stop
    /// token of their own, so the database can stop them when it goes away; the proxy's
    /// stop stops them too.
    pub(crate) fn for_database(&self) -> Tasks {
        Tasks::new(
            self.others.tracker().clone(),
            self.others.stop().child_token(),
        )
    }

    /// Resolves once every session has ended. Only for after the accept loop has
    /// returned: no session may start once this has been called.
    pub(crate) async fn sessions_ended(&self) {
        self.sessions.tracker().close();
        self.sessions.tracker().wait().await;
    }

    /// Ends every task where it stands, and resolves once all have ended.
    pub(crate) async fn stop(&self) {
        self.others.stop().cancel();
        for tasks in [&self.sessions, &self.others] {
            tasks.tracker().close();
            tasks.tracker().wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_ends_every_task_and_waits_for_it() {
        let tasks = ProxyTasks::default();
        tasks.spawn_session(std::future::pending());
        tasks.spawn(std::future::pending());
        let database = tasks.for_database();
        database.spawn_stoppable(std::future::pending());
        assert_eq!(tasks.running(), 3);
        tasks.stop().await;
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn a_database_stops_its_tasks_alone() {
        let tasks = ProxyTasks::default();
        tasks.spawn(std::future::pending());
        let database = tasks.for_database();
        let monitor = database.spawn_stoppable(std::future::pending());
        database.stop().cancel();
        assert!(monitor.await.is_ok());
        assert_eq!(tasks.running(), 1);
        tasks.stop().await;
    }
}
