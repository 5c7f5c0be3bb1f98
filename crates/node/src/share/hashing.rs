//! Hashing new and changed shared files on every core, with progress
//! pushed as events (at most a few per second) so a person sees a large
//! folder being hashed instead of an empty share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use peershare_core::scan::ScannedFile;
use peershare_core::Outboard;

use super::hash_stable;
use crate::events::EventBus;
use crate::views::{EventKind, HashingProgress};
use crate::NodeError;

/// Least time between two progress events.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Counts what a rescan has hashed so far.
struct Tally {
    files_total: u64,
    bytes_total: u64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    last_report: Mutex<Instant>,
}

impl Tally {
    fn snapshot(&self) -> HashingProgress {
        HashingProgress {
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total,
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
        }
    }

    fn file_done(&self, size: u64, bus: &EventBus) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(size, Ordering::Relaxed);
        let due = {
            let mut last = self.last_report.lock().expect("tally lock");
            let due = last.elapsed() >= REPORT_EVERY;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            bus.publish(EventKind::SharesHashing(self.snapshot()));
        }
    }
}

/// Hashes `files` on all cores; files that vanish or fail to read are skipped.
pub(super) async fn hash_all<T: Send + 'static>(
    files: Vec<(ScannedFile, T)>,
    piece_len: u64,
    bus: &EventBus,
) -> Result<Vec<((ScannedFile, T), Outboard)>, NodeError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let tally = Tally {
        files_total: files.len() as u64,
        bytes_total: files.iter().map(|(f, _)| f.size).sum(),
        files_done: AtomicU64::new(0),
        bytes_done: AtomicU64::new(0),
        last_report: Mutex::new(Instant::now()),
    };
    bus.publish(EventKind::SharesHashing(tally.snapshot()));
    let bus = bus.clone();
    let (hashed, tally, bus) = tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        let hashed: Vec<_> = files
            .into_par_iter()
            .filter_map(|f| {
                let outboard = hash_stable(&f.0, piece_len);
                tally.file_done(f.0.size, &bus);
                outboard.map(|ob| (f, ob))
            })
            .collect();
        (hashed, tally, bus)
    })
    .await
    .map_err(|e| NodeError::Store(e.to_string()))?;
    bus.publish(EventKind::SharesHashing(tally.snapshot()));
    Ok(hashed)
}
