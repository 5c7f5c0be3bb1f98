//! Verified streaming on the BLAKE3 tree itself.
//!
//! A file is cut into pieces: aligned power-of-two groups of BLAKE3's 1 KiB
//! chunks (1 MiB by default). Because the pieces are aligned, each one is a
//! whole subtree of the file's BLAKE3 tree, with a chaining value of its own.
//! The [`Outboard`] is the list of those piece chaining values: the tree cut
//! at piece level. A receiver first rebuilds the tree above the pieces and
//! checks that it ends in the file's id; from then on every piece is checked
//! against its own chaining value before it counts. Nothing here invents a
//! hash format: ids are plain BLAKE3 (`b3sum`), and the merges use the
//! `blake3::hazmat` API.
//!
//! This module never reads a file whole into memory: hashing reads one piece
//! per worker thread.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use rayon::prelude::*;

use crate::FileId;

/// BLAKE3's chunk length: the smallest unit a piece can be made of.
pub const CHUNK_LEN: u64 = 1024;
/// The default piece length: 1 MiB, 1024 chunks.
pub const DEFAULT_PIECE_LEN: u64 = 1 << 20;
/// The largest piece length a peer may ask for (16 MiB); frames are sized from it.
pub const MAX_PIECE_LEN: u64 = 1 << 24;
/// Bytes per piece chaining value in an outboard.
pub const LEAF_LEN: usize = 32;
/// The most pieces a file may have (16 Mi: 16 TiB in pieces of 1 MiB): a
/// size taken from the network must not make a peer set aside more than
/// 512 MiB of piece tree or 2 MiB of have-map for it.
pub const MAX_PIECES: u64 = 1 << 24;

/// Why a piece or an outboard was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The piece length is not a power of two between 1 KiB and [`MAX_PIECE_LEN`].
    #[error("piece length {0} is not a power of two between 1 KiB and 16 MiB")]
    BadPieceLen(u64),
    /// The file would have more than [`MAX_PIECES`] pieces of this length.
    #[error("a file of {file_len} bytes in pieces of {piece_len} bytes has more than {max} pieces", max = MAX_PIECES)]
    TooManyPieces { file_len: u64, piece_len: u64 },
    /// The outboard has the wrong number of piece hashes for the file size.
    #[error("outboard has {got} piece hashes, a file of this size needs {expected}")]
    WrongLeafCount { expected: u64, got: u64 },
    /// The tree above the pieces does not end in the file id.
    #[error("piece hashes do not add up to the file id: the source sent a wrong tree")]
    RootMismatch,
    /// A piece index past the end of the file.
    #[error("piece {index} does not exist (the file has {count} pieces)")]
    NoSuchPiece { index: u64, count: u64 },
    /// A piece whose length does not match its place in the file.
    #[error("piece {index} should be {expected} bytes, got {got}")]
    WrongPieceLen { index: u64, expected: u64, got: u64 },
    /// A piece whose bytes do not hash to its chaining value.
    #[error("piece {0} does not match its hash: the source sent corrupt data")]
    PieceMismatch(u64),
}

/// How a file of a given length is cut into pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceLayout {
    file_len: u64,
    piece_len: u64,
}

impl PieceLayout {
    /// A layout for `file_len` bytes in pieces of `piece_len` (a power of two ≥ 1 KiB).
    pub fn new(file_len: u64, piece_len: u64) -> Result<Self, VerifyError> {
        if !piece_len.is_power_of_two() || !(CHUNK_LEN..=MAX_PIECE_LEN).contains(&piece_len) {
            return Err(VerifyError::BadPieceLen(piece_len));
        }
        if file_len.div_ceil(piece_len) > MAX_PIECES {
            return Err(VerifyError::TooManyPieces {
                file_len,
                piece_len,
            });
        }
        Ok(Self {
            file_len,
            piece_len,
        })
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The nominal length of a piece (the last one may be shorter).
    pub fn piece_len(&self) -> u64 {
        self.piece_len
    }

    /// How many pieces the file has; an empty file has one empty piece.
    pub fn piece_count(&self) -> u64 {
        self.file_len.div_ceil(self.piece_len).max(1)
    }

    /// The byte range of piece `index` in the file.
    pub fn piece_range(&self, index: u64) -> Range<u64> {
        let start = index * self.piece_len;
        start..(start + self.piece_len).min(self.file_len)
    }

    fn check_index(&self, index: u64) -> Result<(), VerifyError> {
        let count = self.piece_count();
        if index >= count {
            return Err(VerifyError::NoSuchPiece { index, count });
        }
        Ok(())
    }
}

/// A file's BLAKE3 tree cut at piece level: one chaining value per piece.
///
/// For a file of a single piece the only entry is the root hash itself, since
/// BLAKE3 finalises a lone subtree as the root.
#[derive(Clone, PartialEq, Eq)]
pub struct Outboard {
    layout: PieceLayout,
    id: FileId,
    leaves: Vec<ChainingValue>,
}

impl std::fmt::Debug for Outboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outboard")
            .field("id", &self.id)
            .field("layout", &self.layout)
            .finish()
    }
}

impl Outboard {
    /// Checks piece hashes received from a peer against the expected id.
    pub fn from_leaves(
        layout: PieceLayout,
        leaves: Vec<ChainingValue>,
        expected: &FileId,
    ) -> Result<Self, VerifyError> {
        let expected_count = layout.piece_count();
        if leaves.len() as u64 != expected_count {
            return Err(VerifyError::WrongLeafCount {
                expected: expected_count,
                got: leaves.len() as u64,
            });
        }
        if root_of(&leaves) != *expected {
            return Err(VerifyError::RootMismatch);
        }
        Ok(Self {
            layout,
            id: *expected,
            leaves,
        })
    }

    /// Rebuilds an outboard from bytes stored by [`Outboard::leaf_bytes`], checking it.
    pub fn from_leaf_bytes(
        layout: PieceLayout,
        bytes: &[u8],
        expected: &FileId,
    ) -> Result<Self, VerifyError> {
        if !bytes.len().is_multiple_of(LEAF_LEN) {
            return Err(VerifyError::WrongLeafCount {
                expected: layout.piece_count(),
                got: (bytes.len() / LEAF_LEN) as u64,
            });
        }
        let leaves = bytes
            .chunks_exact(LEAF_LEN)
            .map(|c| c.try_into().expect("chunks_exact gives 32 bytes"))
            .collect();
        Self::from_leaves(layout, leaves, expected)
    }

    /// Hashes a file on disk, all cores, one piece per worker in memory.
    pub fn hash_file(path: &Path, piece_len: u64) -> io::Result<Self> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let layout = PieceLayout::new(file_len, piece_len)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let leaves = (0..layout.piece_count())
            .into_par_iter()
            .map_init(
                || vec![0u8; piece_len as usize],
                |buf, index| {
                    let range = layout.piece_range(index);
                    let piece = &mut buf[..(range.end - range.start) as usize];
                    read_exact_at(&file, piece, range.start)?;
                    Ok(piece_hash(&layout, index, piece))
                },
            )
            .collect::<io::Result<Vec<_>>>()?;
        let id = root_of(&leaves);
        Ok(Self { layout, id, leaves })
    }

    /// Hashes bytes already in memory (small inputs and tests).
    pub fn hash_bytes(data: &[u8], piece_len: u64) -> Result<Self, VerifyError> {
        let layout = PieceLayout::new(data.len() as u64, piece_len)?;
        let leaves: Vec<_> = (0..layout.piece_count())
            .map(|index| {
                let r = layout.piece_range(index);
                piece_hash(&layout, index, &data[r.start as usize..r.end as usize])
            })
            .collect();
        let id = root_of(&leaves);
        Ok(Self { layout, id, leaves })
    }

    /// The file's id (its BLAKE3 root).
    pub fn id(&self) -> FileId {
        self.id
    }

    /// How the file is cut into pieces.
    pub fn layout(&self) -> PieceLayout {
        self.layout
    }

    /// The piece chaining values, concatenated (32 bytes each), for storage or the wire.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        self.leaves.concat()
    }

    /// Checks one piece's bytes before they count.
    pub fn verify_piece(&self, index: u64, data: &[u8]) -> Result<(), VerifyError> {
        self.layout.check_index(index)?;
        let range = self.layout.piece_range(index);
        let expected_len = range.end - range.start;
        if data.len() as u64 != expected_len {
            return Err(VerifyError::WrongPieceLen {
                index,
                expected: expected_len,
                got: data.len() as u64,
            });
        }
        if piece_hash(&self.layout, index, data) != self.leaves[index as usize] {
            return Err(VerifyError::PieceMismatch(index));
        }
        Ok(())
    }
}

/// The chaining value of one piece, or the root hash when the file is a single piece.
fn piece_hash(layout: &PieceLayout, index: u64, data: &[u8]) -> ChainingValue {
    if layout.piece_count() == 1 {
        return *blake3::hash(data).as_bytes();
    }
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * layout.piece_len());
    hasher.update(data);
    hasher.finalize_non_root()
}

/// The file id implied by a full row of piece hashes.
fn root_of(leaves: &[ChainingValue]) -> FileId {
    match leaves {
        [] => FileId::from(blake3::hash(b"")),
        [only] => FileId::from_bytes(*only),
        _ => {
            let (left, right) = split(leaves);
            FileId::from(merge_subtrees_root(
                &subtree_cv(left),
                &subtree_cv(right),
                Mode::Hash,
            ))
        }
    }
}

/// The chaining value of a non-root subtree made of `leaves`.
fn subtree_cv(leaves: &[ChainingValue]) -> ChainingValue {
    if let [only] = leaves {
        return *only;
    }
    let (left, right) = split(leaves);
    merge_subtrees_non_root(&subtree_cv(left), &subtree_cv(right), Mode::Hash)
}

/// BLAKE3's split rule: the left subtree holds the largest power of two of
/// pieces that is strictly less than the whole. Aligned power-of-two pieces
/// make this the same split the chunk-level tree uses.
fn split(leaves: &[ChainingValue]) -> (&[ChainingValue], &[ChainingValue]) {
    let left = (leaves.len() - 1).next_power_of_two().max(1);
    let left = if left >= leaves.len() { left / 2 } else { left };
    leaves.split_at(left)
}

/// Reads exactly `buf.len()` bytes at `offset` without moving a shared cursor.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            let n = file.seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL_PIECE: u64 = 4 * CHUNK_LEN;

    #[test]
    fn a_size_from_the_network_cannot_ask_for_more_than_max_pieces() {
        let most = PieceLayout::new(MAX_PIECES * CHUNK_LEN, CHUNK_LEN).unwrap();
        assert_eq!(most.piece_count(), MAX_PIECES);
        for (file_len, piece_len) in [
            (MAX_PIECES * CHUNK_LEN + 1, CHUNK_LEN),
            (u64::MAX, CHUNK_LEN),
            (u64::MAX, MAX_PIECE_LEN),
        ] {
            assert_eq!(
                PieceLayout::new(file_len, piece_len),
                Err(VerifyError::TooManyPieces {
                    file_len,
                    piece_len
                })
            );
        }
        // 16 TiB in the default pieces is still a file.
        assert!(PieceLayout::new(16 << 40, DEFAULT_PIECE_LEN).is_ok());
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    fn round_trip(len: usize, piece_len: u64) {
        let bytes = data(len, 7);
        let sender = Outboard::hash_bytes(&bytes, piece_len).unwrap();
        assert_eq!(sender.id(), FileId::from(blake3::hash(&bytes)), "len {len}");
        let receiver =
            Outboard::from_leaf_bytes(sender.layout(), &sender.leaf_bytes(), &sender.id()).unwrap();
        for index in 0..receiver.layout().piece_count() {
            let r = receiver.layout().piece_range(index);
            receiver
                .verify_piece(index, &bytes[r.start as usize..r.end as usize])
                .unwrap();
        }
    }

    #[test]
    fn edge_sizes_round_trip() {
        let p = SMALL_PIECE as usize;
        for len in [
            0,
            1,
            1023,
            1024,
            1025,
            p - 1,
            p,
            p + 1,
            2 * p,
            3 * p + 5,
            17 * p - 1,
        ] {
            round_trip(len, SMALL_PIECE);
        }
        let big = DEFAULT_PIECE_LEN as usize;
        for len in [big - 1, big, big + 1, 5 * big + 3] {
            round_trip(len, DEFAULT_PIECE_LEN);
        }
    }

    #[test]
    fn hash_file_matches_b3sum_definition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes = data(9 * SMALL_PIECE as usize + 100, 3);
        std::fs::write(&path, &bytes).unwrap();
        let ob = Outboard::hash_file(&path, SMALL_PIECE).unwrap();
        assert_eq!(ob.id(), FileId::from(blake3::hash(&bytes)));
        assert_eq!(ob, Outboard::hash_bytes(&bytes, SMALL_PIECE).unwrap());
    }

    #[test]
    fn wrong_tree_is_refused() {
        let bytes = data(5 * SMALL_PIECE as usize, 1);
        let ob = Outboard::hash_bytes(&bytes, SMALL_PIECE).unwrap();
        let mut leaves = ob.leaf_bytes();
        leaves[40] ^= 1;
        assert_eq!(
            Outboard::from_leaf_bytes(ob.layout(), &leaves, &ob.id()),
            Err(VerifyError::RootMismatch)
        );
        assert!(matches!(
            Outboard::from_leaf_bytes(ob.layout(), &leaves[..64], &ob.id()),
            Err(VerifyError::WrongLeafCount { .. })
        ));
        let other = FileId::from(blake3::hash(b"other"));
        assert_eq!(
            Outboard::from_leaf_bytes(ob.layout(), &ob.leaf_bytes(), &other),
            Err(VerifyError::RootMismatch)
        );
    }

    #[test]
    fn bad_piece_lengths_and_indexes_are_refused() {
        assert!(PieceLayout::new(10, 1000).is_err());
        assert!(PieceLayout::new(10, 512).is_err());
        assert!(PieceLayout::new(10, MAX_PIECE_LEN * 2).is_err());
        let ob = Outboard::hash_bytes(&data(3000, 0), CHUNK_LEN).unwrap();
        assert!(matches!(
            ob.verify_piece(3, &[0; 952]),
            Err(VerifyError::NoSuchPiece { .. })
        ));
        assert!(matches!(
            ob.verify_piece(0, &[0; 10]),
            Err(VerifyError::WrongPieceLen { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_size_round_trips(len in 0usize..(40 * CHUNK_LEN as usize), log in 10u32..14) {
            round_trip(len, 1 << log);
        }

        #[test]
        fn any_flipped_bit_is_detected(
            len in 1usize..(24 * CHUNK_LEN as usize),
            bit in any::<prop::sample::Index>(),
        ) {
            let mut bytes = data(len, 9);
            let ob = Outboard::hash_bytes(&bytes, SMALL_PIECE).unwrap();
            let bit = bit.index(len * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let index = (bit / 8) as u64 / SMALL_PIECE;
            let r = ob.layout().piece_range(index);
            prop_assert_eq!(
                ob.verify_piece(index, &bytes[r.start as usize..r.end as usize]),
                Err(VerifyError::PieceMismatch(index))
            );
        }
    }
}
