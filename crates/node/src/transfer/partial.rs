//! Downloads in progress offered to other peers (partial sources): which
//! files are being fetched here, which of their pieces are verified and on
//! disk, and which peers asked for them.
//!
//! A download offers its file once its piece tree is checked and withdraws
//! it when it ends (the [`PartialOffer`] guard). A piece is added only after
//! the assembly wrote it, so an upload never reads a piece that is not on
//! disk, and the set only grows while the file is offered. Every change is
//! pushed on a watch channel, so uploads tell their downloaders at once.
//! This module never reads or writes file bytes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use libp2p::PeerId;
use peershare_core::{FileId, Outboard, PieceSet};
use tokio::sync::{mpsc, watch};

/// Peers that asked for one partial file and are not yet seen by its download.
const ASKERS_QUEUE: usize = 64;

/// The downloads in progress that serve their verified pieces; clones share them.
#[derive(Clone, Default)]
pub struct PartialFiles {
    files: Arc<Mutex<HashMap<FileId, Arc<PartialFile>>>>,
}

/// One download in progress, as the sharing side sees it.
pub struct PartialFile {
    /// The name it will have once whole (already sanitised).
    pub name: String,
    /// The partial file on this machine.
    pub path: PathBuf,
    /// Its checked piece tree.
    pub outboard: Arc<Outboard>,
    landed: RwLock<Landed>,
    changes: watch::Sender<u64>,
    withdrawn: AtomicBool,
    askers: mpsc::Sender<PeerId>,
}

/// The pieces on disk, as a set and in the order they landed.
struct Landed {
    set: PieceSet,
    order: Vec<u64>,
}

/// Keeps one download offered; dropping it withdraws the file unless it is whole.
pub struct PartialOffer {
    files: PartialFiles,
    file: Arc<PartialFile>,
    askers: mpsc::Receiver<PeerId>,
}

impl PartialFiles {
    /// Offers the download of `outboard`'s file, whose pieces `have` are on disk at `path`.
    pub fn offer(
        &self,
        name: String,
        path: PathBuf,
        outboard: Arc<Outboard>,
        have: impl IntoIterator<Item = u64>,
    ) -> PartialOffer {
        let mut set = PieceSet::empty(outboard.layout().piece_count());
        let order: Vec<u64> = have.into_iter().filter(|i| set.insert(*i)).collect();
        let (askers_tx, askers) = mpsc::channel(ASKERS_QUEUE);
        let file = Arc::new(PartialFile {
            name,
            path,
            outboard,
            changes: watch::Sender::new(order.len() as u64),
            landed: RwLock::new(Landed { set, order }),
            withdrawn: AtomicBool::new(false),
            askers: askers_tx,
        });
        self.files
            .lock()
            .expect("partial files lock")
            .insert(file.id(), file.clone());
        PartialOffer {
            files: self.clone(),
            file,
            askers,
        }
    }

    /// The download in progress of `id`, if there is one.
    pub fn get(&self, id: &FileId) -> Option<Arc<PartialFile>> {
        self.files
            .lock()
            .expect("partial files lock")
            .get(id)
            .cloned()
    }
}

impl PartialFile {
    /// The file's id.
    pub fn id(&self) -> FileId {
        self.outboard.id()
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.outboard.layout().file_len()
    }

    /// True if piece `index` is on disk and may be served.
    pub fn has(&self, index: u64) -> bool {
        self.landed.read().expect("landed lock").set.contains(index)
    }

    /// The pieces on disk now, and the cursor to ask for later ones with.
    pub fn snapshot(&self) -> (PieceSet, usize) {
        let landed = self.landed.read().expect("landed lock");
        (landed.set.clone(), landed.order.len())
    }

    /// Pieces that landed since `cursor`, and the cursor after them.
    pub fn landed_since(&self, cursor: usize) -> (Vec<u64>, usize) {
        let landed = self.landed.read().expect("landed lock");
        let from = cursor.min(landed.order.len());
        (landed.order[from..].to_vec(), landed.order.len())
    }

    /// A receiver that wakes when a piece lands or the file is withdrawn.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// True once the download stopped before the file was whole: serve nothing more.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Relaxed)
    }

    /// Tells the download that `peer` asked for this file: it is probably
    /// fetching it too, so it may have pieces to give back.
    pub fn asked_by(&self, peer: PeerId) {
        let _ = self.askers.try_send(peer);
    }
}

impl PartialOffer {
    /// Records that piece `index` is verified and written: it may be served now.
    pub fn landed(&self, index: u64) {
        let mut landed = self.file.landed.write().expect("landed lock");
        if landed.set.insert(index) {
            landed.order.push(index);
            let count = landed.order.len() as u64;
            drop(landed);
            self.file.changes.send_replace(count);
        }
    }

    /// The next peer that asked for this file (cancel-safe).
    pub async fn next_asker(&mut self) -> Option<PeerId> {
        self.askers.recv().await
    }
}

impl Drop for PartialOffer {
    fn drop(&mut self) {
        let mut files = self.files.files.lock().expect("partial files lock");
        if files
            .get(&self.file.id())
            .is_some_and(|f| Arc::ptr_eq(f, &self.file))
        {
            files.remove(&self.file.id());
        }
        drop(files);
        let whole = self.file.landed.read().expect("landed lock").set.is_full();
        if !whole {
            self.file.withdrawn.store(true, Ordering::Relaxed);
            self.file.changes.send_modify(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outboard(pieces: usize) -> Arc<Outboard> {
        Arc::new(Outboard::hash_bytes(&vec![7u8; pieces * 1024], 1024).unwrap())
    }

    #[tokio::test]
    async fn landed_pieces_are_pushed_in_order_and_a_stopped_download_is_withdrawn() {
        let files = PartialFiles::default();
        let ob = outboard(4);
        let id = ob.id();
        let offer = files.offer("f".into(), "/nowhere".into(), ob, [2]);
        let file = files.get(&id).expect("offered");
        let mut changes = file.subscribe();
        let (set, cursor) = file.snapshot();
        assert_eq!((set.held(), cursor), (1, 1));
        offer.landed(0);
        offer.landed(0);
        changes.changed().await.unwrap();
        assert_eq!(file.landed_since(cursor), (vec![0], 2));
        assert!(file.has(0) && file.has(2) && !file.has(1));
        drop(offer);
        assert!(files.get(&id).is_none());
        assert!(file.is_withdrawn());
        changes.changed().await.unwrap();
    }

    #[test]
    fn a_whole_file_stays_servable_after_its_download_ends() {
        let files = PartialFiles::default();
        let ob = outboard(2);
        let offer = files.offer("f".into(), "/nowhere".into(), ob.clone(), []);
        let file = files.get(&ob.id()).unwrap();
        offer.landed(0);
        offer.landed(1);
        drop(offer);
        assert!(!file.is_withdrawn());
    }

    #[tokio::test]
    async fn askers_reach_the_download_and_never_block_the_asker() {
        let files = PartialFiles::default();
        let ob = outboard(1);
        let mut offer = files.offer("f".into(), "/nowhere".into(), ob.clone(), []);
        let file = files.get(&ob.id()).unwrap();
        let peer = PeerId::random();
        for _ in 0..ASKERS_QUEUE * 2 {
            file.asked_by(peer);
        }
        assert_eq!(offer.next_asker().await, Some(peer));
    }
}
