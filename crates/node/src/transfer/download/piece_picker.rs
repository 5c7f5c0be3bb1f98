//! Which piece to ask a source for next.
//!
//! Rarest first: among the missing pieces nobody is fetching and that the
//! source has, the one the fewest ready sources have; among equally rare
//! pieces, an order shuffled per download, so downloaders of one file fetch
//! different pieces from a shared source (never trailing each other through
//! the same run of pieces) and then have something to give each other; or
//! file order, for a download that wants its first pieces first. A piece is never given to two
//! requests at once while others are left; at the end of a download (the
//! endgame) a piece in flight may be asked of a second source, so one slow
//! source cannot hold the last pieces. A piece whose request failed is
//! taken back so another source fetches it. It knows nothing of sockets;
//! the download asks it and reports back.

use std::collections::{BTreeSet, HashMap};

use peershare_core::PieceSet;

/// Most sources asked for one piece at once in the endgame.
const MAX_COPIES: u8 = 2;

/// How equally rare pieces are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceOrder {
    /// A shuffle drawn from this seed.
    Shuffled(u64),
    /// File order (to preview media while it downloads).
    Sequential,
}

/// Missing pieces, how many sources have each, and how many requests each has in flight.
pub struct PiecePicker {
    order: PieceOrder,
    missing: BTreeSet<u64>,
    /// Missing pieces nobody is fetching, rarest and then nearest first.
    unasked: BTreeSet<(u32, u64, u64)>,
    /// How many ready sources have each piece.
    availability: Vec<u32>,
    in_flight: HashMap<u64, u8>,
}

impl PiecePicker {
    /// A picker for a file of `count` pieces of which `missing` are not
    /// verified yet; equally rare pieces are taken in `order`.
    pub fn new(count: u64, missing: impl IntoIterator<Item = u64>, order: PieceOrder) -> Self {
        let mut picker = Self {
            order,
            missing: BTreeSet::new(),
            unasked: BTreeSet::new(),
            availability: vec![0; count as usize],
            in_flight: HashMap::new(),
        };
        for index in missing {
            if index < count && picker.missing.insert(index) {
                picker.unasked.insert(picker.key(index));
            }
        }
        picker
    }

    fn key(&self, index: u64) -> (u32, u64, u64) {
        let rank = match self.order {
            PieceOrder::Sequential => index,
            PieceOrder::Shuffled(seed) => mix(index ^ seed),
        };
        (self.availability[index as usize], rank, index)
    }

    /// Changes how many sources have `index` by `delta`, keeping the order.
    fn adjust(&mut self, index: u64, delta: i32) {
        if index >= self.availability.len() as u64 {
            return;
        }
        let queued = self.unasked.remove(&self.key(index));
        let slot = &mut self.availability[index as usize];
        *slot = slot.saturating_add_signed(delta);
        if queued {
            self.unasked.insert(self.key(index));
        }
    }

    /// A source became ready with the pieces `have`.
    pub fn add_source(&mut self, have: &PieceSet) {
        for index in have.iter() {
            self.adjust(index, 1);
        }
    }

    /// A ready source is gone; it had the pieces `have`.
    pub fn remove_source(&mut self, have: &PieceSet) {
        for index in have.iter() {
            self.adjust(index, -1);
        }
    }

    /// A ready source now has piece `index` too.
    pub fn source_got(&mut self, index: u64) {
        self.adjust(index, 1);
    }

    /// The rarest missing piece nobody is fetching that `has` says the
    /// source has, now marked as in flight.
    pub fn pick(&mut self, has: &PieceSet) -> Option<u64> {
        self.pick_held_by_at_most(has, u32::MAX)
    }

    /// Like [`PiecePicker::pick`], but only a piece at most `holders`
    /// ready sources have (for a slow source: what nobody else can send).
    pub fn pick_held_by_at_most(&mut self, has: &PieceSet, holders: u32) -> Option<u64> {
        let key = if has.held() as usize >= self.unasked.len() / 8 {
            self.unasked
                .iter()
                .take_while(|(n, _, _)| *n <= holders)
                .find(|(_, _, index)| has.contains(*index))
                .copied()
        } else {
            // A source with few pieces: look only at those.
            has.iter()
                .map(|index| self.key(index))
                .filter(|key| key.0 <= holders && self.unasked.contains(key))
                .min()
        }?;
        self.unasked.remove(&key);
        self.in_flight.insert(key.2, 1);
        Some(key.2)
    }

    /// In the endgame (every missing piece is in flight): a piece the source
    /// has, already asked of another source and not `skip`ped (one asked of
    /// this source already, or not worth a second request), to ask again.
    pub fn pick_again(&mut self, has: &PieceSet, skip: impl Fn(u64) -> bool) -> Option<u64> {
        if !self.unasked.is_empty() {
            return None;
        }
        let index = *self.missing.iter().find(|i| {
            has.contains(**i)
                && !skip(**i)
                && self.in_flight.get(i).is_some_and(|n| *n < MAX_COPIES)
        })?;
        *self.in_flight.entry(index).or_default() += 1;
        Some(index)
    }

    /// A piece arrived and verified.
    pub fn verified(&mut self, index: u64) {
        if self.missing.remove(&index) {
            self.unasked.remove(&self.key(index));
        }
        self.in_flight.remove(&index);
    }

    /// One request for a piece ended without it; once none is left it may be picked again.
    pub fn release(&mut self, index: u64) {
        if let Some(n) = self.in_flight.get_mut(&index) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&index);
                if self.missing.contains(&index) {
                    self.unasked.insert(self.key(index));
                }
            }
        }
    }

    /// True when every missing piece is asked of some source (copies may be asked now).
    pub fn in_endgame(&self) -> bool {
        self.unasked.is_empty() && !self.missing.is_empty()
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

/// A bijective scramble of 64 bits (the SplitMix64 finaliser): distinct
/// pieces get distinct ranks, in an order that looks random.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(count: u64) -> PieceSet {
        PieceSet::full(count)
    }

    fn only(count: u64, pieces: &[u64]) -> PieceSet {
        let mut set = PieceSet::empty(count);
        for &i in pieces {
            set.insert(i);
        }
        set
    }

    #[test]
    fn hands_out_each_missing_piece_once_and_takes_failures_back() {
        let mut p = PiecePicker::new(5, [1, 3, 4], PieceOrder::Sequential);
        let a = all(5);
        assert_eq!((p.pick(&a), p.pick(&a)), (Some(1), Some(3)));
        p.release(1);
        assert_eq!(p.pick(&a), Some(1));
        assert_eq!(p.pick(&a), Some(4));
        assert_eq!(p.pick(&a), None);
        for i in [1, 3, 4] {
            p.verified(i);
        }
        assert!(p.is_complete());
    }

    fn picks(order: PieceOrder) -> Vec<u64> {
        let mut p = PiecePicker::new(64, 0..64, order);
        let a = all(64);
        std::iter::from_fn(|| p.pick(&a)).collect()
    }

    #[test]
    fn equally_rare_pieces_come_shuffled_per_download_or_in_file_order() {
        assert_eq!(picks(PieceOrder::Sequential), (0..64).collect::<Vec<_>>());
        let one = picks(PieceOrder::Shuffled(1));
        let two = picks(PieceOrder::Shuffled(2));
        let mut sorted = one.clone();
        sorted.sort();
        assert_eq!(sorted, (0..64).collect::<Vec<_>>(), "every piece once");
        assert_ne!(one, two, "two downloads take different paths");
        // Two downloads of one file rarely begin with the same pieces.
        let shared = one[..8].iter().filter(|i| two[..8].contains(i)).count();
        assert!(shared <= 3, "{shared} of the first 8 pieces in common");
    }

    #[test]
    fn the_rarest_piece_a_source_has_comes_first() {
        let mut p = PiecePicker::new(4, 0..4, PieceOrder::Sequential);
        // Three sources: two have everything, one has pieces 0 and 2.
        p.add_source(&all(4));
        p.add_source(&all(4));
        let partial = only(4, &[0, 2]);
        p.add_source(&partial);
        // Pieces 1 and 3 are held by two sources, 0 and 2 by three.
        assert_eq!(p.pick(&all(4)), Some(1));
        // The partial source is only ever given what it has.
        assert_eq!(p.pick(&partial), Some(0));
        // Another source gets piece 3: 2 and 3 are now equally common.
        p.source_got(3);
        assert_eq!(p.pick(&partial), Some(2));
        assert_eq!(p.pick(&partial), None, "it has nothing else");
        assert_eq!(p.pick(&all(4)), Some(3));
    }

    #[test]
    fn a_source_with_few_pieces_is_served_from_its_own_list() {
        let mut p = PiecePicker::new(1000, 0..1000, PieceOrder::Sequential);
        let few = only(1000, &[999, 500]);
        p.add_source(&few);
        // Pieces nobody has rank first overall, but this source is only
        // handed what it has, in order.
        assert_eq!(p.pick(&few), Some(500));
        assert_eq!(p.pick(&few), Some(999));
        assert_eq!(p.pick(&few), None);
    }

    #[test]
    fn a_slow_source_can_be_asked_only_for_what_nobody_else_has() {
        let mut p = PiecePicker::new(3, 0..3, PieceOrder::Sequential);
        let fast = only(3, &[0, 1]);
        p.add_source(&fast);
        p.add_source(&all(3));
        assert_eq!(p.pick_held_by_at_most(&all(3), 1), Some(2));
        assert_eq!(p.pick_held_by_at_most(&all(3), 1), None);
        assert_eq!(p.pick(&fast), Some(0));
    }

    #[test]
    fn a_departed_source_no_longer_counts() {
        let mut p = PiecePicker::new(2, 0..2, PieceOrder::Sequential);
        let has_0 = only(2, &[0]);
        p.add_source(&has_0);
        p.add_source(&all(2));
        assert_eq!(p.pick(&all(2)), Some(1), "1 is rarer");
        p.release(1);
        p.remove_source(&has_0);
        p.source_got(1);
        assert_eq!(p.pick(&all(2)), Some(0), "now 0 is rarer");
    }

    #[test]
    fn the_endgame_asks_a_second_source_for_pieces_in_flight_only() {
        let mut p = PiecePicker::new(3, [0, 1, 2], PieceOrder::Sequential);
        let a = all(3);
        assert_eq!(p.pick(&a), Some(0));
        assert_eq!(
            p.pick_again(&a, |_| false),
            None,
            "not while pieces are unasked"
        );
        assert!(!p.in_endgame());
        assert_eq!((p.pick(&a), p.pick(&a)), (Some(1), Some(2)));
        assert!(p.in_endgame());
        // Source B asked for 1 already; it gets a copy of 0, then 2.
        let b_asked = |i: u64| i == 1;
        assert_eq!(p.pick_again(&a, b_asked), Some(0));
        assert_eq!(p.pick_again(&a, |i| i == 1 || i == 0), Some(2));
        assert_eq!(p.pick_again(&a, |i| i == 1), None, "two copies at most");
        // A source without piece 0 is never given a copy of it.
        let mut q = PiecePicker::new(1, [0], PieceOrder::Sequential);
        assert_eq!(q.pick(&a), Some(0));
        assert_eq!(q.pick_again(&only(1, &[]), |_| false), None);
        // The first copy of 0 arrives and verifies: the second is moot.
        p.verified(0);
        p.release(0);
        assert_eq!(p.missing(), 2);
        // Both requests for 2 fail: it is unasked again.
        p.release(2);
        p.release(2);
        assert_eq!(p.pick(&a), Some(2));
    }
}
