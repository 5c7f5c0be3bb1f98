//! The queue of DHT announcements (provider records) this peer sends: at
//! most [`MAX_IN_FLIGHT`] at once, keys withdrawn while waiting skipped, a
//! timed-out announcement retried after a pause that doubles, and every
//! record announced again each time the routing table has doubled.
//!
//! It only decides; the host's event loop starts the queries and the
//! timers. So it holds no swarm and no clock, and is tested on its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use libp2p::kad::RecordKey;

use crate::backoff::Backoff;

/// Most announcements (provider queries) running at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// Routing-table size after which growth no longer makes a peer announce its records again.
pub const REANNOUNCE_TABLE_LIMIT: usize = 256;
/// The first pause before announcing a key again after a timed-out announcement.
const RETRY_FLOOR: Duration = Duration::from_secs(5);
/// The longest pause between such retries.
const RETRY_CEILING: Duration = Duration::from_secs(600);

/// What to do about a grown routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regrowth {
    /// Nothing: not grown enough, already scheduled, or past the limit.
    Nothing,
    /// Announce everything now (the first peers arrived).
    AnnounceNow,
    /// Announce everything after the burst of growth settles.
    AnnounceLater,
}

/// Announcements waiting, running, and to retry.
#[derive(Default)]
pub struct AnnounceQueue {
    waiting: VecDeque<RecordKey>,
    wanted: HashSet<RecordKey>,
    in_flight: usize,
    retries: HashMap<RecordKey, Backoff>,
    announced_at_table_size: usize,
    announce_all_pending: bool,
}

impl AnnounceQueue {
    /// Queues an announcement of `key` (once, however often it is asked).
    pub fn queue(&mut self, key: RecordKey) {
        if self.wanted.insert(key.clone()) {
            self.waiting.push_back(key);
        }
    }

    /// Forgets `key`: withdrawn, so neither a waiting announcement nor a retry goes out.
    pub fn withdraw(&mut self, key: &RecordKey) {
        self.wanted.remove(key);
        self.retries.remove(key);
    }

    /// The next key to announce, if one waits and fewer than [`MAX_IN_FLIGHT`] run.
    pub fn next_to_start(&mut self) -> Option<RecordKey> {
        while self.in_flight < MAX_IN_FLIGHT {
            let key = self.waiting.pop_front()?;
            // Withdrawn while it waited.
            if self.wanted.remove(&key) {
                self.in_flight += 1;
                return Some(key);
            }
        }
        None
    }

    /// An announcement handed out by [`AnnounceQueue::next_to_start`] could not start.
    pub fn not_started(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// An announcement of `key` ended; on a time-out of a key still provided,
    /// the pause before trying it again.
    pub fn ended(
        &mut self,
        key: &RecordKey,
        stored: bool,
        still_provided: bool,
    ) -> Option<Duration> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if stored || !still_provided {
            self.retries.remove(key);
            return None;
        }
        let retry = self
            .retries
            .entry(key.clone())
            .or_insert_with(|| Backoff::new(RETRY_FLOOR, RETRY_CEILING));
        Some(retry.next_pause())
    }

    /// The routing table now holds `size` peers: announce everything again
    /// when it has doubled since the last time (records announced while the
    /// DHT was small sit on nodes that are no longer the closest).
    pub fn table_grew(&mut self, size: usize) -> Regrowth {
        let last = self.announced_at_table_size;
        if self.announce_all_pending || last >= REANNOUNCE_TABLE_LIMIT || size < (2 * last).max(1) {
            return Regrowth::Nothing;
        }
        if last == 0 {
            return Regrowth::AnnounceNow;
        }
        self.announce_all_pending = true;
        Regrowth::AnnounceLater
    }

    /// Every record is being announced again, with the table at `size` peers.
    pub fn announcing_all(&mut self, size: usize) {
        self.announce_all_pending = false;
        self.announced_at_table_size = size;
    }

    /// Announcements running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> RecordKey {
        RecordKey::new(&n.to_be_bytes())
    }

    #[test]
    fn at_most_the_limit_runs_and_each_end_lets_one_more_start() {
        let mut q = AnnounceQueue::default();
        for n in 0..100 {
            q.queue(key(n));
            q.queue(key(n));
        }
        let started: Vec<_> = std::iter::from_fn(|| q.next_to_start()).collect();
        assert_eq!(started.len(), MAX_IN_FLIGHT);
        assert_eq!(started[0], key(0), "oldest first");
        assert_eq!(q.ended(&key(0), true, true), None);
        assert_eq!(q.next_to_start(), Some(key(MAX_IN_FLIGHT as u32)));
        assert_eq!(q.next_to_start(), None, "the limit holds again");
    }

    #[test]
    fn a_withdrawn_key_is_skipped_and_not_retried() {
        let mut q = AnnounceQueue::default();
        q.queue(key(1));
        q.queue(key(2));
        q.withdraw(&key(1));
        assert_eq!(q.next_to_start(), Some(key(2)));
        assert_eq!(q.next_to_start(), None);
        assert_eq!(q.ended(&key(2), false, false), None, "withdrawn meanwhile");
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn a_timed_out_key_is_retried_after_a_doubling_pause_until_stored() {
        let mut q = AnnounceQueue::default();
        let pauses: Vec<u64> = (0..3)
            .map(|_| {
                q.queue(key(7));
                assert_eq!(q.next_to_start(), Some(key(7)));
                q.ended(&key(7), false, true).unwrap().as_secs()
            })
            .collect();
        assert_eq!(pauses, [5, 10, 20]);
        q.queue(key(7));
        q.next_to_start();
        assert_eq!(q.ended(&key(7), true, true), None);
        q.queue(key(7));
        q.next_to_start();
        assert_eq!(
            q.ended(&key(7), false, true),
            Some(RETRY_FLOOR),
            "a success resets it"
        );
    }

    #[test]
    fn records_are_announced_again_each_time_the_table_doubles() {
        let mut q = AnnounceQueue::default();
        assert_eq!(q.table_grew(0), Regrowth::Nothing);
        assert_eq!(q.table_grew(1), Regrowth::AnnounceNow, "the first peer");
        q.announcing_all(1);
        assert_eq!(q.table_grew(1), Regrowth::Nothing);
        assert_eq!(q.table_grew(2), Regrowth::AnnounceLater);
        assert_eq!(q.table_grew(3), Regrowth::Nothing, "already scheduled");
        q.announcing_all(3);
        assert_eq!(q.table_grew(5), Regrowth::Nothing);
        assert_eq!(q.table_grew(6), Regrowth::AnnounceLater);
        q.announcing_all(300);
        assert_eq!(q.table_grew(10_000), Regrowth::Nothing, "past the limit");
    }
}
