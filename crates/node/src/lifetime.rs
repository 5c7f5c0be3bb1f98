//! Who owns a task: every long-lived task of a running node is spawned on
//! a [`Lifetime`], a task tracker with a cancellation token, so stopping
//! the node stops every task it started and waits for them to end.
//!
//! A part that must stop before the others (downloads record their pieces
//! before the database closes) gets a [`Lifetime::child`]: its own tracker,
//! stopped by the parent's token too.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A set of tasks that stop together.
#[derive(Clone, Default)]
pub struct Lifetime {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Lifetime {
    /// A new, running lifetime.
    pub fn new() -> Self {
        Self::default()
    }

    /// A lifetime of its own that also stops when this one does.
    pub fn child(&self) -> Self {
        Self {
            stop: self.stop.child_token(),
            tasks: TaskTracker::new(),
        }
    }

    /// Runs `task` until it ends or the lifetime stops (then it is dropped at its next await).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            stop.run_until_cancelled(task).await;
        });
    }

    /// Runs `task`, which watches [`Lifetime::token`] itself to finish its work cleanly.
    pub fn spawn_cooperative<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// The token that fires when the lifetime stops.
    pub fn token(&self) -> &CancellationToken {
        &self.stop
    }

    /// True once stopping began.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops every task and waits up to `grace` for them; false if some did not end in time.
    pub async fn end(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_stops_tasks_of_the_lifetime_and_its_children() {
        let life = Lifetime::new();
        let child = life.child();
        life.spawn(std::future::pending());
        child.spawn(std::future::pending());
        let cooperative = child.token().clone();
        child.spawn_cooperative(async move { cooperative.cancelled().await });
        assert_eq!((life.running(), child.running()), (1, 2));
        assert!(life.end(Duration::from_secs(5)).await);
        assert!(child.is_stopping());
        assert!(child.end(Duration::from_secs(5)).await);
        assert_eq!((life.running(), child.running()), (0, 0));
    }
}
