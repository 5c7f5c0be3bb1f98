//! The uploads running now, for `peershare uploads` and the events stream:
//! who fetches which file, how much was sent and how fast.
//!
//! An upload is listed from the moment its ticket is redeemed until its
//! data connection ends; the [`ListedUpload`] guard removes it, so an
//! upload that fails in any way never stays listed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use libp2p::PeerId;
use peershare_core::FileId;

use crate::events::EventBus;
use crate::transfer::upload::offer::Offer;
use crate::views::{DataPath, EventKind, UploadView};

/// The running uploads; clones share them.
#[derive(Clone)]
pub struct ActiveUploads {
    running: Arc<Mutex<HashMap<u64, Arc<UploadCounters>>>>,
    next_id: Arc<AtomicU64>,
    bus: EventBus,
}

/// What is known of one running upload.
struct UploadCounters {
    id: u64,
    peer: PeerId,
    file_id: FileId,
    name: String,
    size: u64,
    sent: AtomicU64,
    started: Instant,
    started_ms: i64,
    path: DataPath,
}

/// Keeps one upload listed; dropping it ends the listing.
pub struct ListedUpload {
    board: ActiveUploads,
    counters: Arc<UploadCounters>,
}

impl ActiveUploads {
    /// An empty list publishing starts and ends on `bus`.
    pub fn new(bus: EventBus) -> Self {
        Self {
            running: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            bus,
        }
    }

    /// Lists an upload of `file` to `peer` until the returned guard is dropped.
    pub fn start(&self, peer: PeerId, file: &Offer, path: DataPath) -> ListedUpload {
        let counters = Arc::new(UploadCounters {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            file_id: file.id(),
            name: file.name().to_string(),
            size: file.size(),
            sent: AtomicU64::new(0),
            started: Instant::now(),
            started_ms: crate::now_ms(),
            path,
        });
        self.running
            .lock()
            .expect("uploads lock")
            .insert(counters.id, counters.clone());
        self.bus.publish(EventKind::UploadStarted {
            upload: counters.view(),
        });
        ListedUpload {
            board: self.clone(),
            counters,
        }
    }

    /// The running uploads, oldest first (user names left for the caller to fill in).
    pub fn list(&self) -> Vec<UploadView> {
        let running = self.running.lock().expect("uploads lock");
        let mut list: Vec<UploadView> = running.values().map(|c| c.view()).collect();
        list.sort_by_key(|u| u.id);
        list
    }
}

impl ListedUpload {
    /// Counts bytes of piece data sent.
    pub fn sent(&self, bytes: u64) {
        self.counters.sent.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for ListedUpload {
    fn drop(&mut self) {
        self.board
            .running
            .lock()
            .expect("uploads lock")
            .remove(&self.counters.id);
        self.board.bus.publish(EventKind::UploadEnded {
            upload: self.counters.view(),
        });
    }
}

impl UploadCounters {
    fn view(&self) -> UploadView {
        let sent = self.sent.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        UploadView {
            id: self.id,
            peer: self.peer.to_string(),
            user: None,
            file_id: self.file_id,
            name: self.name.clone(),
            size: self.size,
            sent_bytes: sent,
            rate_bytes_per_sec: if secs > 0.0 {
                (sent as f64 / secs) as u64
            } else {
                0
            },
            started_ms: self.started_ms,
            path: Some(self.path.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_is_listed_until_its_guard_drops_and_both_ends_are_published() {
        let bus = EventBus::new();
        let mut events = bus.subscribe();
        let uploads = ActiveUploads::new(bus);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![1u8; 3000]).unwrap();
        let outboard = peershare_core::Outboard::hash_file(&path, 1024).unwrap();
        let file = crate::share::SharedFile {
            path,
            name: "f.bin".into(),
            size: 3000,
            mtime_ns: 0,
            identity: (0, 0),
            outboard: Arc::new(outboard),
            origin: crate::share::ShareOrigin::Folder,
        };
        let peer = PeerId::random();
        let path = DataPath {
            connection: crate::views::ConnectionPath::HolePunched,
            channel: crate::views::DataChannel::Stream,
            relay: None,
        };
        let listed = uploads.start(peer, &Offer::Whole(file), path.clone());
        listed.sent(1024);
        let list = uploads.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].peer, peer.to_string());
        assert_eq!(list[0].path, Some(path));
        assert_eq!(list[0].sent_bytes, 1024);
        drop(listed);
        assert!(uploads.list().is_empty());
        let kinds: Vec<_> = [events.next().await, events.next().await]
            .into_iter()
            .map(|e| match e.unwrap().kind {
                EventKind::UploadStarted { .. } => "started",
                EventKind::UploadEnded { upload } => {
                    assert_eq!(upload.sent_bytes, 1024);
                    "ended"
                }
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["started", "ended"]);
    }
}
