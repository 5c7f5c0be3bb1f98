//! The live side of one download while the daemon runs: its counters, the
//! token that stops its task, why it was stopped, and when the task ended.
//!
//! Counters are updated by the source sessions and read by the API; a
//! progress event is pushed at most every [`REPORT_EVERY`] per download, so
//! a fast download does not flood subscribers.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use std::collections::BTreeMap;

use libp2p::PeerId;

use crate::events::EventBus;
use crate::transfer::rate_limit::RateLimit;
use crate::views::{DataPath, DownloadProgress, EventKind, SourceFound, SourcePhase, SourceView};

/// Least time between two progress events of one download.
pub const REPORT_EVERY: Duration = Duration::from_millis(200);

/// Why a person stopped a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Keep the verified pieces; `resume` continues.
    Pause,
    /// Delete the partial file.
    Cancel,
}

/// Counters of one download.
pub struct Progress {
    id: i64,
    size: u64,
    verified_bytes: AtomicU64,
    fetched_bytes: AtomicU64,
    sources: AtomicU32,
    /// When bytes started to flow in this run (the rate's start).
    flowing_since: Mutex<Option<Instant>>,
    /// When the task ended (the rate's end).
    ended_at: Mutex<Option<Instant>>,
    last_report: Mutex<Instant>,
    /// Each source of this run, and since when it sends.
    peers: Mutex<BTreeMap<PeerId, (SourceView, Option<Instant>)>>,
    bus: EventBus,
}

impl Progress {
    /// Counters for download `id` of `size` bytes, `verified` of them already on disk.
    pub fn new(id: i64, size: u64, verified: u64, bus: EventBus) -> Self {
        Self {
            id,
            size,
            verified_bytes: AtomicU64::new(verified),
            fetched_bytes: AtomicU64::new(0),
            sources: AtomicU32::new(0),
            flowing_since: Mutex::new(None),
            ended_at: Mutex::new(None),
            last_report: Mutex::new(Instant::now() - REPORT_EVERY),
            peers: Mutex::default(),
            bus,
        }
    }

    /// Bytes verified and on disk.
    pub fn verified(&self) -> u64 {
        self.verified_bytes.load(Ordering::Relaxed)
    }

    /// Sets the verified bytes (after re-checking an inherited partial file).
    pub fn set_verified(&self, bytes: u64) {
        self.verified_bytes.store(bytes, Ordering::Relaxed);
        self.report(false);
    }

    /// Counts newly verified bytes.
    pub fn add_verified(&self, bytes: u64) {
        if bytes > 0 {
            self.verified_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.report(false);
        }
    }

    /// Counts bytes received from a source.
    pub fn add_fetched(&self, bytes: u64) {
        self.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A source started (`true`) or stopped sending pieces.
    pub fn source_changed(&self, started: bool) {
        if started {
            self.sources.fetch_add(1, Ordering::Relaxed);
            self.flowing_since
                .lock()
                .expect("progress lock")
                .get_or_insert_with(Instant::now);
        } else {
            let _ = self
                .sources
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        self.report(true);
    }

    /// Source `peer` is now in `phase` (with why, for busy and dropped ones).
    pub fn source_phase(&self, peer: PeerId, phase: SourcePhase, note: Option<String>) {
        {
            let mut peers = self.peers.lock().expect("progress lock");
            let (view, since) = peers.entry(peer).or_insert_with(|| {
                let view = SourceView {
                    peer_id: peer.to_string(),
                    user: None,
                    found_by: SourceFound::Named,
                    phase,
                    pieces: 0,
                    bytes: 0,
                    rate_bytes_per_sec: 0,
                    note: None,
                    path: None,
                };
                (view, None)
            });
            view.phase = phase;
            view.note = note;
            if phase == SourcePhase::Fetching {
                since.get_or_insert_with(Instant::now);
            }
        }
        self.report(true);
    }

    /// Records the path source `peer`'s data takes.
    pub fn source_path(&self, peer: PeerId, path: DataPath) {
        if let Some((view, _)) = self.peers.lock().expect("progress lock").get_mut(&peer) {
            view.path = Some(path);
        }
    }

    /// Records how the download came to know source `peer`.
    pub fn source_found(&self, peer: PeerId, how: SourceFound) {
        if let Some((view, _)) = self.peers.lock().expect("progress lock").get_mut(&peer) {
            view.found_by = how;
        }
    }

    /// Source `peer` sent a piece of `bytes`.
    pub fn source_piece(&self, peer: PeerId, bytes: u64) {
        let mut peers = self.peers.lock().expect("progress lock");
        if let Some((view, _)) = peers.get_mut(&peer) {
            view.pieces += 1;
            view.bytes += bytes;
        }
    }

    /// Every source with its rate as of now.
    fn peers(&self, end: Instant) -> Vec<SourceView> {
        let peers = self.peers.lock().expect("progress lock");
        peers
            .values()
            .map(|(view, since)| {
                let secs = since.map_or(0.0, |s| end.saturating_duration_since(s).as_secs_f64());
                let mut view = view.clone();
                view.rate_bytes_per_sec = if secs > 0.0 {
                    (view.bytes as f64 / secs) as u64
                } else {
                    0
                };
                view
            })
            .collect()
    }

    /// Marks the end of the task: the rate stops counting time.
    pub fn ended(&self) {
        self.sources.store(0, Ordering::Relaxed);
        *self.ended_at.lock().expect("progress lock") = Some(Instant::now());
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> DownloadProgress {
        let fetched = self.fetched_bytes.load(Ordering::Relaxed);
        let verified = self.verified();
        let end = self
            .ended_at
            .lock()
            .expect("progress lock")
            .unwrap_or_else(Instant::now);
        let elapsed = self
            .flowing_since
            .lock()
            .expect("progress lock")
            .map(|s| end.saturating_duration_since(s).as_secs_f64())
            .unwrap_or(0.0);
        let rate = if elapsed > 0.0 {
            (fetched as f64 / elapsed) as u64
        } else {
            0
        };
        let left = self.size.saturating_sub(verified);
        DownloadProgress {
            id: self.id,
            size: self.size,
            verified_bytes: verified,
            fetched_bytes: fetched,
            rate_bytes_per_sec: rate,
            eta_secs: (rate > 0 && left > 0).then(|| left.div_ceil(rate)),
            sources: self.sources.load(Ordering::Relaxed),
            peers: self.peers(end),
        }
    }

    /// Publishes a progress event unless one went out less than [`REPORT_EVERY`] ago.
    fn report(&self, always: bool) {
        {
            let mut last = self.last_report.lock().expect("progress lock");
            if !always && last.elapsed() < REPORT_EVERY {
                return;
            }
            *last = Instant::now();
        }
        self.bus
            .publish(EventKind::DownloadProgress(self.snapshot()));
    }
}

/// One download's task, as the engine holds it.
pub struct Live {
    /// Its counters.
    pub progress: Progress,
    /// Fires to stop the task (a person's pause or cancel, or the daemon stopping).
    pub control: CancellationToken,
    /// This download's own rate limit (under the global one), changeable while it runs.
    pub rate: Arc<RateLimit>,
    stop_reason: Mutex<Option<StopReason>>,
    running: AtomicBool,
    ended: watch::Sender<bool>,
}

impl Live {
    /// A running task's handle, limited to `max_rate` bytes per second if given.
    pub fn new(progress: Progress, control: CancellationToken, max_rate: Option<u64>) -> Self {
        Self {
            progress,
            control,
            rate: Arc::new(RateLimit::new(max_rate)),
            stop_reason: Mutex::new(None),
            running: AtomicBool::new(true),
            ended: watch::Sender::new(false),
        }
    }

    /// True until the task ended.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Asks the task to stop for `reason`, and waits until it has.
    pub async fn stop(&self, reason: StopReason) {
        self.stop_reason
            .lock()
            .expect("live lock")
            .get_or_insert(reason);
        self.control.cancel();
        let mut ended = self.ended.subscribe();
        let _ = ended.wait_for(|e| *e).await;
    }

    /// Why a person stopped it; `None` when the daemon is stopping.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.stop_reason.lock().expect("live lock")
    }

    /// Called by the task as its last act.
    pub fn mark_ended(&self) {
        self.progress.ended();
        self.running.store(false, Ordering::Relaxed);
        self.ended.send_replace(true);
    }
}
