//! A set of piece indices of one file (which pieces a peer has), and its
//! wire form: a bitmap in which the most significant bit of byte 0 is
//! piece 0, as in BitTorrent's bitfield.
//!
//! The set is sized to the file's piece count and never holds an index past
//! it, so a bitmap from the network cannot make it grow.

/// Which pieces of a file of `count` pieces are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceSet {
    bits: Vec<u8>,
    count: u64,
    held: u64,
}

impl PieceSet {
    /// No piece of a file of `count` pieces.
    pub fn empty(count: u64) -> Self {
        Self {
            bits: vec![0; count.div_ceil(8) as usize],
            count,
            held: 0,
        }
    }

    /// Every piece of a file of `count` pieces.
    pub fn full(count: u64) -> Self {
        let mut set = Self::empty(count);
        set.bits.iter_mut().for_each(|b| *b = 0xff);
        set.clear_tail();
        set.held = count;
        set
    }

    /// How many pieces the file has.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// How many pieces are held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// True when every piece is held.
    pub fn is_full(&self) -> bool {
        self.held == self.count
    }

    /// True if piece `index` is held.
    pub fn contains(&self, index: u64) -> bool {
        index < self.count && self.bits[(index / 8) as usize] & mask(index) != 0
    }

    /// Adds piece `index`; false if it was held already or is past the end.
    pub fn insert(&mut self, index: u64) -> bool {
        if index >= self.count || self.contains(index) {
            return false;
        }
        self.bits[(index / 8) as usize] |= mask(index);
        self.held += 1;
        true
    }

    /// The held pieces, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).filter(|i| self.contains(*i))
    }

    /// The bitmap bytes covering pieces `first .. first + 8 × len`
    /// (`first` a multiple of 8), as sent on the wire.
    pub fn bitmap(&self, first: u64, len: usize) -> &[u8] {
        let start = ((first / 8) as usize).min(self.bits.len());
        let end = (start + len).min(self.bits.len());
        &self.bits[start..end]
    }

    /// Bytes in the whole bitmap.
    pub fn bitmap_len(&self) -> usize {
        self.bits.len()
    }

    /// Merges bitmap bytes received for pieces from `first` (a multiple of
    /// 8); bits past the last piece are ignored.
    pub fn merge_bitmap(&mut self, first: u64, bytes: &[u8]) {
        let start = (first / 8) as usize;
        for (n, byte) in bytes.iter().enumerate() {
            let Some(slot) = self.bits.get_mut(start + n) else {
                break;
            };
            *slot |= byte;
        }
        self.clear_tail();
        self.held = self.bits.iter().map(|b| b.count_ones() as u64).sum();
    }

    fn clear_tail(&mut self) {
        let spare = (self.bits.len() as u64 * 8 - self.count) as u32;
        if let Some(last) = self.bits.last_mut() {
            *last &= 0xffu8.checked_shl(spare).unwrap_or(0);
        }
    }
}

fn mask(index: u64) -> u8 {
    0x80 >> (index % 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_run_from_the_high_bit_of_the_first_byte() {
        let mut set = PieceSet::empty(11);
        assert!(set.insert(0) && set.insert(9) && !set.insert(9) && !set.insert(11));
        assert_eq!(set.bitmap(0, 8), &[0x80, 0x40]);
        assert_eq!(set.held(), 2);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 9]);
    }

    #[test]
    fn a_full_set_has_no_bits_past_the_end_and_merging_ignores_them() {
        let full = PieceSet::full(11);
        assert_eq!(full.bitmap(0, 2), &[0xff, 0xe0]);
        assert!(full.is_full());
        let mut set = PieceSet::empty(11);
        set.merge_bitmap(8, &[0xff, 0xff, 0xff]);
        assert_eq!(set.held(), 3);
        assert!(set.contains(10) && !set.contains(7));
        set.merge_bitmap(0, &[0x01]);
        assert_eq!(set.held(), 4);
        assert!(set.contains(7));
    }

    #[test]
    fn an_empty_file_has_one_piece() {
        let set = PieceSet::full(1);
        assert_eq!(set.bitmap(0, 1), &[0x80]);
    }
}
