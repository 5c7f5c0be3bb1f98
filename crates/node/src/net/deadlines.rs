//! Work the event loop must do later (retry an announcement, announce
//! again after the table grew, reject a request nobody answered), kept as
//! deadlines the loop waits on as one of its cases.
//!
//! Nothing here spawns a task: a deadline lives exactly as long as the loop
//! that owns it, so stopping the host can never leave a timer behind, and
//! tests drive it on paused time.

use std::future::poll_fn;
use std::time::Duration;

use tokio_util::time::delay_queue::{DelayQueue, Key};

/// Items that fall due after a pause each, in the order they fall due.
pub struct Deadlines<T> {
    queue: DelayQueue<T>,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Self {
            queue: DelayQueue::new(),
        }
    }
}

/// Names one deadline, to cancel it.
pub type DeadlineKey = Key;

impl<T> Deadlines<T> {
    /// Makes `item` fall due after `pause`.
    pub fn insert(&mut self, item: T, pause: Duration) -> DeadlineKey {
        self.queue.insert(item, pause)
    }

    /// Cancels a deadline that has not fallen due yet, returning its item.
    pub fn cancel(&mut self, key: &DeadlineKey) -> Option<T> {
        self.queue
            .try_remove(key)
            .map(|expired| expired.into_inner())
    }

    /// Deadlines not yet fallen due.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no deadline is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The next item to fall due, once it has. With nothing waiting this never
    /// completes, so it can sit in a `select!` beside the loop's other cases.
    /// Cancel-safe: dropping the future loses no item.
    pub async fn next(&mut self) -> T {
        if self.queue.is_empty() {
            return std::future::pending().await;
        }
        match poll_fn(|cx| self.queue.poll_expired(cx)).await {
            Some(expired) => expired.into_inner(),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{advance, timeout};

    /// Whether an item falls due within `within` of paused time.
    async fn due_within<T>(deadlines: &mut Deadlines<T>, within: Duration) -> Option<T> {
        timeout(within, deadlines.next()).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn items_fall_due_in_deadline_order_and_not_before() {
        let mut deadlines = Deadlines::default();
        deadlines.insert("late", Duration::from_secs(30));
        deadlines.insert("early", Duration::from_secs(5));
        assert_eq!(
            due_within(&mut deadlines, Duration::from_millis(4_999)).await,
            None
        );
        assert_eq!(
            due_within(&mut deadlines, Duration::from_millis(2)).await,
            Some("early")
        );
        assert_eq!(deadlines.len(), 1);
        advance(Duration::from_secs(20)).await;
        assert_eq!(
            due_within(&mut deadlines, Duration::from_secs(1)).await,
            None
        );
        assert_eq!(
            due_within(&mut deadlines, Duration::from_secs(10)).await,
            Some("late")
        );
        assert!(deadlines.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_deadline_never_falls_due() {
        let mut deadlines = Deadlines::default();
        let key = deadlines.insert(1, Duration::from_secs(1));
        deadlines.insert(2, Duration::from_secs(2));
        assert_eq!(deadlines.cancel(&key), Some(1));
        assert_eq!(
            due_within(&mut deadlines, Duration::from_secs(5)).await,
            Some(2)
        );
        assert_eq!(
            due_within(&mut deadlines, Duration::from_secs(3600)).await,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_nothing_stays_pending_and_wakes_for_a_new_item() {
        let mut deadlines: Deadlines<u8> = Deadlines::default();
        assert_eq!(
            due_within(&mut deadlines, Duration::from_secs(3600)).await,
            None
        );
        deadlines.insert(7, Duration::from_millis(10));
        assert_eq!(
            due_within(&mut deadlines, Duration::from_secs(1)).await,
            Some(7)
        );
    }
}
