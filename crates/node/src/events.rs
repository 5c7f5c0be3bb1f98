//! The node's event bus: subsystems publish [`EventKind`]s, every
//! subscriber (an SSE stream of the local API) reads them from a queue of
//! its own.
//!
//! Publishing never waits and never fails, whoever listens. Each queue is
//! bounded: when a subscriber stops reading, a newer progress event of a
//! download replaces the older one still queued, further progress is
//! dropped, and state changes (finished, failed, a request waiting) keep
//! being queued up to a hard limit; past it the subscriber is cut off with
//! an [`EventKind::Overflow`] event, so a stuck reader costs a bounded
//! amount of memory and never slows the node. Like the views, this module
//! imports no subsystem.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use crate::views::{Event, EventKind};

/// Queued events per subscriber before progress events are dropped.
const SOFT_LIMIT: usize = 256;
/// Queued events per subscriber before it is cut off.
const HARD_LIMIT: usize = 4096;
/// Subscribers the API lets in at once.
pub const MAX_STREAMS: usize = 64;

/// Where events are published; cheap to clone.
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<Mutex<BusState>>,
}

#[derive(Default)]
struct BusState {
    next_seq: u64,
    subscribers: Vec<Weak<Queue>>,
    closed: bool,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Notify,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Event>,
    dropped: u64,
    cut_off: bool,
    closed: bool,
}

/// One subscriber's end of the bus; dropping it unsubscribes.
pub struct Subscription {
    queue: Arc<Queue>,
    ended: bool,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `kind` to every subscriber.
    pub fn publish(&self, kind: EventKind) {
        let mut bus = self.inner.lock().expect("event bus lock");
        bus.next_seq += 1;
        let event = Event {
            seq: bus.next_seq,
            at_ms: crate::now_ms(),
            kind,
        };
        bus.subscribers.retain(|weak| match weak.upgrade() {
            Some(queue) => {
                queue.offer(&event);
                true
            }
            None => false,
        });
    }

    /// A new subscriber, seeing every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        let queue = Arc::new(Queue::default());
        let mut bus = self.inner.lock().expect("event bus lock");
        queue.state.lock().expect("event queue lock").closed = bus.closed;
        bus.subscribers.push(Arc::downgrade(&queue));
        drop(bus);
        Subscription {
            queue,
            ended: false,
        }
    }

    /// A new subscriber, unless [`MAX_STREAMS`] are already connected.
    pub fn subscribe_bounded(&self) -> Option<Subscription> {
        (self.subscribers() < MAX_STREAMS).then(|| self.subscribe())
    }

    /// Ends every subscription once its queued events are read (the daemon is stopping).
    pub fn close(&self) {
        let mut bus = self.inner.lock().expect("event bus lock");
        bus.closed = true;
        for queue in bus.subscribers.iter().filter_map(Weak::upgrade) {
            queue.state.lock().expect("event queue lock").closed = true;
            queue.wake.notify_one();
        }
    }

    /// Subscribers now connected.
    pub fn subscribers(&self) -> usize {
        let bus = self.inner.lock().expect("event bus lock");
        bus.subscribers
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl Queue {
    fn offer(&self, event: &Event) {
        let mut q = self.state.lock().expect("event queue lock");
        if q.cut_off {
            return;
        }
        if let Some(key) = event.kind.progress_key() {
            let same = q
                .events
                .iter_mut()
                .find(|e| e.kind.progress_key() == Some(key));
            if let Some(older) = same {
                *older = event.clone();
                q.dropped += 1;
            } else if q.events.len() < SOFT_LIMIT {
                q.events.push_back(event.clone());
            } else {
                q.dropped += 1;
                return;
            }
        } else if q.events.len() < HARD_LIMIT {
            q.events.push_back(event.clone());
        } else {
            q.dropped += q.events.len() as u64 + 1;
            q.events.clear();
            q.cut_off = true;
        }
        drop(q);
        self.wake.notify_one();
    }
}

impl Subscription {
    /// The next event; `None` once the bus closed, or the subscriber was cut
    /// off (after an `Overflow` event).
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            {
                let mut q = self.queue.state.lock().expect("event queue lock");
                if let Some(event) = q.events.pop_front() {
                    return Some(event);
                }
                if q.closed {
                    return None;
                }
                if q.cut_off {
                    if self.ended {
                        return None;
                    }
                    self.ended = true;
                    return Some(Event {
                        seq: 0,
                        at_ms: crate::now_ms(),
                        kind: EventKind::Overflow { dropped: q.dropped },
                    });
                }
            }
            // A publish between the check and here leaves a permit, so no wake-up is lost.
            self.queue.wake.notified().await;
        }
    }

    /// Events waiting to be read.
    pub fn queued(&self) -> usize {
        self.queue
            .state
            .lock()
            .expect("event queue lock")
            .events
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::DownloadProgress;

    fn progress(id: i64, verified: u64) -> EventKind {
        EventKind::DownloadProgress(DownloadProgress {
            id,
            size: 100,
            verified_bytes: verified,
            fetched_bytes: verified,
            rate_bytes_per_sec: 0,
            eta_secs: None,
            sources: 1,
            peers: Vec::new(),
        })
    }

    fn removed(id: i64) -> EventKind {
        EventKind::DownloadRemoved { id }
    }

    #[tokio::test]
    async fn a_slow_subscriber_keeps_the_newest_progress_and_every_state_change() {
        let bus = EventBus::new();
        let mut slow = bus.subscribe();
        for v in 0..10_000 {
            bus.publish(progress(1, v));
            if v % 1000 == 0 {
                bus.publish(removed(v as i64));
            }
        }
        let mut seen = Vec::new();
        while slow.queued() > 0 {
            seen.push(slow.next().await.unwrap().kind);
        }
        let removals: Vec<i64> = seen
            .iter()
            .filter_map(|k| match k {
                EventKind::DownloadRemoved { id } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(removals, (0..10).map(|n| n * 1000).collect::<Vec<_>>());
        let progress: Vec<u64> = seen
            .iter()
            .filter_map(|k| match k {
                EventKind::DownloadProgress(p) => Some(p.verified_bytes),
                _ => None,
            })
            .collect();
        assert_eq!(progress, vec![9_999], "one progress event, the newest");
    }

    #[tokio::test]
    async fn a_stuck_subscriber_is_cut_off_and_costs_bounded_memory() {
        let bus = EventBus::new();
        let mut stuck = bus.subscribe();
        let mut reader = bus.subscribe();
        for n in 0..(HARD_LIMIT as i64 + 10) {
            bus.publish(removed(n));
            // The reading subscriber keeps up and misses nothing.
            match reader.next().await.unwrap().kind {
                EventKind::DownloadRemoved { id } => assert_eq!(id, n),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(stuck.queued() <= HARD_LIMIT);
        match stuck.next().await.unwrap().kind {
            EventKind::Overflow { dropped } => assert!(dropped > HARD_LIMIT as u64),
            other => panic!("expected the overflow notice, got {other:?}"),
        }
        assert!(stuck.next().await.is_none(), "the stream ends");
    }

    #[tokio::test]
    async fn the_bounded_subscribe_refuses_past_the_limit() {
        let bus = EventBus::new();
        let held: Vec<_> = (0..MAX_STREAMS)
            .map(|_| bus.subscribe_bounded().expect("under the limit"))
            .collect();
        assert!(bus.subscribe_bounded().is_none());
        drop(held);
        assert!(
            bus.subscribe_bounded().is_some(),
            "room again once they leave"
        );
    }

    #[tokio::test]
    async fn dropped_subscribers_leave_the_bus() {
        let bus = EventBus::new();
        let a = bus.subscribe();
        let _b = bus.subscribe();
        assert_eq!(bus.subscribers(), 2);
        drop(a);
        bus.publish(removed(1));
        assert_eq!(bus.subscribers(), 1);
    }

    #[tokio::test]
    async fn closing_the_bus_ends_subscriptions_after_their_queued_events() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        bus.publish(removed(1));
        let waiting = bus.subscribe();
        let waiter = tokio::spawn(async move {
            let mut waiting = waiting;
            waiting.next().await.map(|e| e.seq)
        });
        tokio::task::yield_now().await;
        bus.close();
        assert_eq!(waiter.await.unwrap(), None, "a waiting subscriber ends");
        assert!(sub.next().await.is_some(), "queued events are still read");
        assert!(sub.next().await.is_none());
        assert!(
            bus.subscribe().next().await.is_none(),
            "late subscribers end at once"
        );
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_publish() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let waiter = tokio::spawn(async move { sub.next().await.map(|e| e.seq) });
        tokio::task::yield_now().await;
        bus.publish(removed(7));
        assert_eq!(waiter.await.unwrap(), Some(1));
    }
}
