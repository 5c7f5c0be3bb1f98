//! Which piece to ask a source for next.
//!
//! The picker hands out missing pieces in order, never the same piece to
//! two requests at once while others are left; at the end of a download
//! (the endgame) a piece in flight may be asked of a second source, so one
//! slow source cannot hold the last pieces. A piece whose request failed is
//! taken back so another source fetches it. It knows nothing of sockets;
//! the download asks it and reports back.

use std::collections::{BTreeSet, HashMap};

/// Most sources asked for one piece at once in the endgame.
const MAX_COPIES: u8 = 2;

/// Missing pieces and how many requests each has in flight.
pub struct PiecePicker {
    missing: BTreeSet<u64>,
    in_flight: HashMap<u64, u8>,
}

impl PiecePicker {
    /// A picker for the pieces `missing` (those not yet verified).
    pub fn new(missing: impl IntoIterator<Item = u64>) -> Self {
        Self {
            missing: missing.into_iter().collect(),
            in_flight: HashMap::new(),
        }
    }

    /// The next missing piece nobody is fetching, now marked as in flight.
    pub fn pick(&mut self) -> Option<u64> {
        let index = *self
            .missing
            .iter()
            .find(|i| !self.in_flight.contains_key(i))?;
        self.in_flight.insert(index, 1);
        Some(index)
    }

    /// In the endgame (every missing piece is in flight): a piece already
    /// asked of another source, not among `asked_here`, to ask again.
    pub fn pick_again(&mut self, asked_here: impl Fn(u64) -> bool) -> Option<u64> {
        if self.missing.iter().any(|i| !self.in_flight.contains_key(i)) {
            return None;
        }
        let index = *self
            .missing
            .iter()
            .find(|i| !asked_here(**i) && self.in_flight.get(i).is_some_and(|n| *n < MAX_COPIES))?;
        *self.in_flight.entry(index).or_default() += 1;
        Some(index)
    }

    /// A piece arrived and verified.
    pub fn verified(&mut self, index: u64) {
        self.in_flight.remove(&index);
        self.missing.remove(&index);
    }

    /// One request for a piece ended without it; once none is left it may be picked again.
    pub fn release(&mut self, index: u64) {
        if let Some(n) = self.in_flight.get_mut(&index) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&index);
            }
        }
    }

    /// True when no piece is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// How many pieces are still missing.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_missing_piece_once_and_takes_failures_back() {
        let mut p = PiecePicker::new([1, 3, 4]);
        assert_eq!((p.pick(), p.pick()), (Some(1), Some(3)));
        p.release(1);
        assert_eq!(p.pick(), Some(1));
        assert_eq!(p.pick(), Some(4));
        assert_eq!(p.pick(), None);
        for i in [1, 3, 4] {
            p.verified(i);
        }
        assert!(p.is_complete());
    }

    #[test]
    fn the_endgame_asks_a_second_source_for_pieces_in_flight_only() {
        let mut p = PiecePicker::new([0, 1, 2]);
        assert_eq!(p.pick(), Some(0));
        assert_eq!(
            p.pick_again(|_| false),
            None,
            "not while pieces are unasked"
        );
        assert_eq!((p.pick(), p.pick()), (Some(1), Some(2)));
        // Source B asked for 1 already; it gets a copy of 0, then 2.
        let b_asked = |i: u64| i == 1;
        assert_eq!(p.pick_again(b_asked), Some(0));
        assert_eq!(p.pick_again(|i| i == 1 || i == 0), Some(2));
        assert_eq!(p.pick_again(|i| i == 1), None, "two copies at most");
        // The first copy of 0 arrives and verifies: the second is moot.
        p.verified(0);
        p.release(0);
        assert_eq!(p.missing(), 2);
        // Both requests for 2 fail: it is unasked again.
        p.release(2);
        p.release(2);
        assert_eq!(p.pick(), Some(2));
    }
}
