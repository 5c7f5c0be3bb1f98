//! How many pieces to keep asked of one source: enough to cover about
//! [`PIPELINE_SPAN`] of what it has been sending, so a fast source never
//! waits for requests, while a slow one is not handed pieces that faster
//! sources would bring sooner (each piece waiting at a slow source is one
//! the others do not fetch).
//!
//! The rate is measured per source from when each piece was asked (or the
//! one before it arrived, when requests queue up) to when it arrived,
//! from the second piece on: the first mostly measures the connection, and
//! a paced sender sends it at once. This module only counts; the swarm asks
//! and the source task fetches.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Time of sending that the pieces asked of a source should cover.
const PIPELINE_SPAN: Duration = Duration::from_millis(500);
/// Pieces asked of a source before its rate is known.
const FIRST_WINDOW: usize = 4;
/// Fewest pieces asked of a source at once (one arriving, one on its way).
const MIN_WINDOW: usize = 2;
/// Most pieces asked of one source at once.
pub const MAX_WINDOW: usize = 8;
/// Weight of the newest sample in the rate's moving average.
const SMOOTHING: f64 = 0.25;

/// The pieces asked of one source and what it has been delivering.
#[derive(Default)]
pub struct Pipeline {
    asked: HashMap<u64, Instant>,
    last_arrival: Option<Instant>,
    rate: Option<f64>,
}

impl Pipeline {
    /// Piece `index` was asked of the source at `now`.
    pub fn asked(&mut self, index: u64, now: Instant) {
        self.asked.insert(index, now);
    }

    /// Piece `index` (`bytes` long) arrived at `now`; false if it was not asked.
    pub fn arrived(&mut self, index: u64, bytes: u64, now: Instant) -> bool {
        let Some(asked_at) = self.asked.remove(&index) else {
            return false;
        };
        let Some(last) = self.last_arrival.replace(now) else {
            return true;
        };
        let began = last.max(asked_at);
        let secs = now.duration_since(began).as_secs_f64().max(1e-4);
        let sample = bytes as f64 / secs;
        self.rate = Some(match self.rate {
            Some(rate) => rate + SMOOTHING * (sample - rate),
            None => sample,
        });
        true
    }

    /// Piece `index` went back unfetched.
    pub fn forget(&mut self, index: u64) {
        self.asked.remove(&index);
    }

    /// True if piece `index` is asked of this source now.
    pub fn contains(&self, index: u64) -> bool {
        self.asked.contains_key(&index)
    }

    /// The pieces asked and not yet arrived.
    pub fn pieces(&self) -> impl Iterator<Item = u64> + '_ {
        self.asked.keys().copied()
    }

    /// Pieces asked and not yet arrived.
    pub fn len(&self) -> usize {
        self.asked.len()
    }

    /// The measured rate in bytes per second, once a piece arrived.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// How many pieces of `piece_len` bytes to keep asked of this source.
    pub fn window(&self, piece_len: u64) -> usize {
        let Some(rate) = self.rate else {
            return FIRST_WINDOW;
        };
        let pieces = (rate * PIPELINE_SPAN.as_secs_f64() / piece_len.max(1) as f64).ceil();
        (pieces as usize + 1).clamp(MIN_WINDOW, MAX_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_fast_source_earns_a_deep_pipeline_and_a_slow_one_a_short_one() {
        let t0 = Instant::now();
        let mut fast = Pipeline::default();
        for i in 0..4 {
            fast.asked(i, t0);
        }
        assert_eq!(fast.window(MIB), FIRST_WINDOW);
        // A piece every 5 ms: 200 MiB/s.
        for i in 0..4 {
            assert!(fast.arrived(i, MIB, t0 + Duration::from_millis(5 * (i + 1))));
        }
        assert_eq!(fast.window(MIB), MAX_WINDOW);
        let mut slow = Pipeline::default();
        for i in 0..3 {
            slow.asked(i, t0);
        }
        // The first piece comes at once (a paced sender's first), then one every 500 ms.
        assert!(slow.arrived(0, MIB, t0 + Duration::from_millis(1)));
        assert_eq!(
            slow.rate(),
            None,
            "the first piece says nothing of the rate"
        );
        assert!(slow.arrived(1, MIB, t0 + Duration::from_millis(501)));
        assert!(slow.arrived(2, MIB, t0 + Duration::from_millis(1001)));
        assert_eq!(slow.window(MIB), 2);
        assert!((slow.rate().unwrap() - 2.0 * MIB as f64).abs() < 1.0);
    }

    #[test]
    fn an_idle_wait_before_asking_does_not_count_against_a_source() {
        let t0 = Instant::now();
        let mut p = Pipeline::default();
        p.asked(0, t0);
        assert!(p.arrived(0, MIB, t0 + Duration::from_millis(10)));
        p.asked(1, t0);
        assert!(p.arrived(1, MIB, t0 + Duration::from_millis(20)));
        // Nothing asked for ten seconds, then a piece asked and delivered in 10 ms.
        p.asked(2, t0 + Duration::from_secs(10));
        assert!(p.arrived(2, MIB, t0 + Duration::from_millis(10_010)));
        assert!(p.rate().unwrap() > 90.0 * MIB as f64);
        assert!(!p.arrived(7, MIB, t0), "a piece never asked is not counted");
        p.asked(3, t0);
        assert!(p.contains(3) && p.len() == 1);
    }
}
