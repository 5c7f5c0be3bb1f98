//! The verified-piece map of a partial download, and the partial file it
//! describes, both in the downloads folder's `.peershare-partial/` folder.
//!
//! Crash rule: the map never claims a piece whose bytes are not on disk.
//! Pieces are written first; the map is saved only after the partial file
//! was synced, and saved atomically (write aside, then rename). A crash
//! loses at most the pieces since the last save, which are fetched again.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use peershare_core::{FileId, PieceLayout};

use crate::NodeError;

const MAGIC: &[u8; 8] = b"PSPMAP01";

/// Which pieces of a download are verified and on disk.
#[derive(Clone)]
pub struct PieceMap {
    path: PathBuf,
    bits: Vec<u8>,
    count: u64,
    have: u64,
}

impl PieceMap {
    /// Loads the map at `path`, or starts an empty one if there is none or it does not fit.
    pub fn load(path: PathBuf, id: &FileId, layout: PieceLayout) -> Self {
        let count = layout.piece_count();
        let bytes = count.div_ceil(8) as usize;
        let header = header(id, layout);
        let bits = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() == header.len() + bytes && b.starts_with(&header))
            .map(|b| b[header.len()..].to_vec())
            .unwrap_or_else(|| vec![0; bytes]);
        let have = (0..count).filter(|i| bit(&bits, *i)).count() as u64;
        Self {
            path,
            bits,
            count,
            have,
        }
    }

    /// Loads a saved map of `id` (`size` bytes) whatever its piece length, with its layout;
    /// `None` if there is none or it does not fit.
    pub fn load_saved(path: PathBuf, id: &FileId, size: u64) -> Option<(Self, PieceLayout)> {
        let mut head = [0u8; 8 + 32 + 8 + 8];
        let mut file = File::open(&path).ok()?;
        std::io::Read::read_exact(&mut file, &mut head).ok()?;
        let piece_len = u64::from_be_bytes(head[48..56].try_into().ok()?);
        let layout = PieceLayout::new(size, piece_len).ok()?;
        let map = Self::load(path, id, layout);
        Some((map, layout))
    }

    /// True if piece `index` is verified.
    pub fn has(&self, index: u64) -> bool {
        index < self.count && bit(&self.bits, index)
    }

    /// Records piece `index` as verified (in memory until [`PieceMap::save`]).
    pub fn set(&mut self, index: u64) {
        if index < self.count && !self.has(index) {
            self.bits[(index / 8) as usize] |= 1 << (index % 8);
            self.have += 1;
        }
    }

    /// The same map with only the pieces in `intact` kept (after re-checking them).
    pub fn keep_only(mut self, intact: &[u64]) -> Self {
        self.bits.iter_mut().for_each(|b| *b = 0);
        self.have = 0;
        for &index in intact {
            self.set(index);
        }
        self
    }

    /// How many pieces are verified.
    pub fn have(&self) -> u64 {
        self.have
    }

    /// How many pieces the file has.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have == self.count
    }

    /// Saves the map atomically; call only after the partial file was synced.
    pub fn save(&self, id: &FileId, layout: PieceLayout) -> Result<(), NodeError> {
        let tmp = self.path.with_extension("map-tmp");
        let mut file = File::create(&tmp).map_err(|e| NodeError::io(&tmp, e))?;
        file.write_all(&header(id, layout))
            .and_then(|_| file.write_all(&self.bits))
            .and_then(|_| file.sync_data())
            .map_err(|e| NodeError::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| NodeError::io(&self.path, e))
    }

    /// Removes the map file (after the download completed).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bit(bits: &[u8], index: u64) -> bool {
    bits[(index / 8) as usize] & (1 << (index % 8)) != 0
}

fn header(id: &FileId, layout: PieceLayout) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(id.as_bytes());
    h.extend_from_slice(&layout.file_len().to_be_bytes());
    h.extend_from_slice(&layout.piece_len().to_be_bytes());
    h
}

/// The partial file and map paths of a download of `id` in `partial_dir`.
pub fn partial_paths(partial_dir: &Path, id: &FileId) -> (PathBuf, PathBuf) {
    let hex = id.to_hex();
    (
        partial_dir.join(format!("{hex}.part")),
        partial_dir.join(format!("{hex}.map")),
    )
}

/// Opens (creating and sizing if needed) the partial file.
pub fn open_partial(path: &Path, len: u64) -> Result<File, NodeError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| NodeError::io(path, e))?;
    if file.metadata().map_err(|e| NodeError::io(path, e))?.len() != len {
        file.set_len(len).map_err(|e| NodeError::io(path, e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_survives_reload_and_rejects_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = FileId::from(blake3::hash(b"a"));
        let layout = PieceLayout::new(10 * 1024, 1024).unwrap();
        let (_, map_path) = partial_paths(dir.path(), &id);
        let mut map = PieceMap::load(map_path.clone(), &id, layout);
        assert_eq!((map.have(), map.count()), (0, 10));
        map.set(3);
        map.set(9);
        map.set(9);
        map.save(&id, layout).unwrap();
        let again = PieceMap::load(map_path.clone(), &id, layout);
        assert!(again.has(3) && again.has(9) && !again.has(4));
        assert_eq!(again.have(), 2);
        let other = FileId::from(blake3::hash(b"b"));
        assert_eq!(PieceMap::load(map_path, &other, layout).have(), 0);
    }
}
