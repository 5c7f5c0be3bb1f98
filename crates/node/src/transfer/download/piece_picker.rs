//! Which piece to ask a source for next.
//!
//! The picker hands out missing pieces in order, never the same piece to
//! two requests at once, and takes a piece back when its source failed so
//! another source (or a later attempt) fetches it. It knows nothing of
//! sockets; the download engine asks it and reports back.

use std::collections::{BTreeSet, HashSet};

/// Missing pieces and the ones currently requested.
pub struct PiecePicker {
    missing: BTreeSet<u64>,
    in_flight: HashSet<u64>,
}

impl PiecePicker {
    /// A picker for the pieces `missing` (those not yet verified).
    pub fn new(missing: impl IntoIterator<Item = u64>) -> Self {
        Self {
            missing: missing.into_iter().collect(),
            in_flight: HashSet::new(),
        }
    }

    /// The next missing piece nobody is fetching, now marked as in flight.
    pub fn pick(&mut self) -> Option<u64> {
        let index = *self.missing.iter().find(|i| !self.in_flight.contains(i))?;
        self.in_flight.insert(index);
        Some(index)
    }

    /// A piece arrived and verified.
    pub fn verified(&mut self, index: u64) {
        self.in_flight.remove(&index);
        self.missing.remove(&index);
    }

    /// A piece's request failed; it may be picked again.
    pub fn release(&mut self, index: u64) {
        self.in_flight.remove(&index);
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
}
