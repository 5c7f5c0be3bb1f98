//! The download engine: find the file at a source, ask for it, fetch its
//! pieces over the data connection, verify each one, write it into the
//! partial file, and rename the whole file into place once it checks out;
//! and the person's controls over each download (pause, resume, cancel,
//! remove, clean), with every change pushed on the event bus.
//!
//! Each download runs as one task owned by the engine's task tracker and
//! stopped by its own cancellation token (a child of the daemon's), so a
//! pause, a cancel or the daemon stopping ends it at the next piece, after
//! the verified pieces are recorded. A source that answers "busy" queues
//! the download and it tries again after a growing pause. Memory stays at
//! a few pieces whatever the file size (see [`assembly`]).

pub mod assembly;
pub mod piece_map;
pub mod piece_picker;
mod pipeline;
mod progress;
mod source;
pub mod swarm;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use peershare_core::file_name::{sanitize, unique_path};
use peershare_core::outboard::read_exact_at;
use peershare_core::scan::PARTIAL_DIR;
use peershare_core::wire::control::SharedFileEntry;
use peershare_core::words::name_words;
use peershare_core::{FileId, Outboard, PieceLayout};

use self::piece_map::{partial_paths, PieceMap};
use self::progress::{Live, Progress, StopReason};
use self::swarm::{fetch_from_swarm, SwarmParts, SwarmTarget};
use crate::backoff::Backoff;
use crate::discovery::browse::browse_all;
use crate::events::EventBus;
use crate::index_link::IndexLink;
use crate::lifetime::Lifetime;
use crate::net::host::{parse_peer_addr, Host};
use crate::share::SharedFiles;
use crate::store::Store;
use crate::transfer::data_channel::DataTls;
use crate::transfer::partial::PartialFiles;
use crate::transfer::rate_limit::RateLimit;
use crate::views::{
    CleanReport, DownloadOptions, DownloadRecord, DownloadState, DownloadView, EventKind, GetAnswer,
};
use crate::{now_ms, NodeError};

/// First pause before asking a busy source again; it doubles up to the ceiling.
const BUSY_RETRY_FLOOR: Duration = Duration::from_secs(5);
/// Longest pause between tries of a busy source.
const BUSY_RETRY_CEILING: Duration = Duration::from_secs(300);

/// Starts, controls, resumes and reports downloads.
#[derive(Clone)]
pub struct Downloads {
    parts: DownloadsParts,
    live: Arc<Mutex<HashMap<i64, Arc<Live>>>>,
    /// Every holder a `get` already found, by file: the swarm asks them all at once.
    found_holders: Arc<Mutex<HashMap<FileId, Vec<String>>>>,
}

/// The parts a download engine works with.
#[derive(Clone)]
pub struct DownloadsParts {
    /// The peer database (download records).
    pub store: Store,
    /// The libp2p host (listings and transfer requests).
    pub host: Host,
    /// TLS for data connections.
    pub tls: DataTls,
    /// Where finished files land.
    pub downloads_dir: PathBuf,
    /// Where finished files are shared from.
    pub shares: SharedFiles,
    /// Where changes are pushed.
    pub bus: EventBus,
    /// The index, when there is one: more holders of a file being fetched.
    pub index: Option<IndexLink>,
    /// Most sources one download uses at once.
    pub max_sources: usize,
    /// The download rate limit shared by every download.
    pub rate: Arc<RateLimit>,
    /// How long a download with no source left looks for one before it fails.
    pub source_patience: Duration,
    /// Where downloads in progress are offered to other peers.
    pub partials: PartialFiles,
    /// The daemon's lifetime; the engine runs its downloads, and only
    /// those, on a child of it.
    pub lifetime: Lifetime,
}

impl Downloads {
    /// The engine, saving into `downloads_dir` and sharing each finished file through `shares`.
    pub fn new(parts: DownloadsParts) -> Self {
        let lifetime = parts.lifetime.child();
        Self {
            parts: DownloadsParts { lifetime, ..parts },
            live: Arc::default(),
            found_holders: Arc::default(),
        }
    }

    fn partial_dir(&self) -> PathBuf {
        self.parts.downloads_dir.join(PARTIAL_DIR)
    }

    /// Starts (or resumes, or attaches to) a download of `file` (a name or an id) from the peer at `peer_addr`.
    pub async fn start(
        &self,
        peer_addr: &str,
        file: &str,
        again: bool,
        options: DownloadOptions,
    ) -> Result<GetAnswer, NodeError> {
        let (peer, dial) = parse_peer_addr(peer_addr)?;
        if let Ok(id) = file.parse::<FileId>() {
            if let Some(answer) = self.already(&id, again).await? {
                return Ok(answer);
            }
        }
        let entry = self.resolve(peer, &dial, file).await?;
        if let Some(answer) = self.already(&entry.id, again).await? {
            return Ok(answer);
        }
        let record = match self.parts.store.unfinished_download(&entry.id).await? {
            Some(existing) => {
                let store = &self.parts.store;
                store.reactivate_download(existing.id, peer_addr).await?;
                if options != DownloadOptions::default() {
                    store.set_download_options(existing.id, &options).await?;
                }
                self.record(existing.id).await?
            }
            None => {
                let name = sanitize(&entry.name);
                self.parts
                    .store
                    .insert_download(&entry.id, &name, entry.size, peer_addr, &options)
                    .await?
            }
        };
        self.spawn(record.clone());
        let download = self.view(record);
        self.announce(&download);
        Ok(GetAnswer::Started { download })
    }

    /// Starts downloading file `id` from the first of `sources` (full peer addresses) that answers.
    pub async fn start_from_any(
        &self,
        sources: &[String],
        id: &FileId,
        again: bool,
        options: DownloadOptions,
    ) -> Result<GetAnswer, NodeError> {
        if let Some(answer) = self.already(id, again).await? {
            return Ok(answer);
        }
        self.found_holders
            .lock()
            .expect("holders lock")
            .insert(*id, sources.to_vec());
        let mut last = NodeError::NotFound(format!("no source for {id}"));
        for source in sources {
            match self.start(source, &id.to_hex(), again, options).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::info!(%source, "source not usable: {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// A running download of `id` to attach to, or the finished file already here.
    async fn already(&self, id: &FileId, again: bool) -> Result<Option<GetAnswer>, NodeError> {
        if let Some(existing) = self.parts.store.unfinished_download(id).await? {
            if self.is_running(existing.id) {
                return Ok(Some(GetAnswer::Attached {
                    download: self.view(existing),
                }));
            }
        }
        if again {
            return Ok(None);
        }
        Ok(self
            .parts
            .shares
            .get_unchanged(id)
            .map(|file| GetAnswer::AlreadyHere {
                file_id: *id,
                path: file.path.display().to_string(),
            }))
    }

    /// Sets download `id`'s own rate limit (`None` or 0 lifts it), at once if it runs.
    pub async fn set_rate(
        &self,
        id: i64,
        max_rate: Option<u64>,
    ) -> Result<DownloadView, NodeError> {
        let record = self.record(id).await?;
        let max_rate = max_rate.filter(|r| *r > 0);
        let options = DownloadOptions {
            sequential: record.sequential,
            max_rate,
        };
        self.parts.store.set_download_options(id, &options).await?;
        if let Some(live) = self.live.lock().expect("live lock").get(&id) {
            live.rate.set(max_rate);
        }
        let view = self.view_of(id).await?;
        self.announce(&view);
        Ok(view)
    }

    /// Resumes every download left active or queued by an earlier run of the daemon.
    pub async fn resume_unfinished(&self) -> Result<usize, NodeError> {
        let mut resumed = 0;
        for record in self.parts.store.downloads().await? {
            if !matches!(record.state, DownloadState::Active | DownloadState::Queued) {
                continue;
            }
            tracing::info!(id = record.id, name = %record.name, "resuming download");
            self.spawn(record);
            resumed += 1;
        }
        Ok(resumed)
    }

    /// All downloads with live progress, newest first.
    pub async fn list(&self) -> Result<Vec<DownloadView>, NodeError> {
        let records = self.parts.store.downloads().await?;
        Ok(records.into_iter().map(|r| self.view(r)).collect())
    }

    /// One download with live progress.
    pub async fn get(&self, id: i64) -> Result<Option<DownloadView>, NodeError> {
        Ok(self.parts.store.download(id).await?.map(|r| self.view(r)))
    }

    /// Stops download `id`, keeping its verified pieces for `resume`.
    pub async fn pause(&self, id: i64) -> Result<DownloadView, NodeError> {
        let record = self.record(id).await?;
        if matches!(record.state, DownloadState::Done | DownloadState::Cancelled) {
            return Err(NodeError::BadRequest(format!(
                "download {id} is {}: there is nothing to pause",
                record.state.as_str()
            )));
        }
        if let Some(live) = self.running(id) {
            live.stop(StopReason::Pause).await;
        } else if record.state != DownloadState::Paused {
            self.parts
                .store
                .set_download_state(id, DownloadState::Paused, Some(&paused_note(id)), None)
                .await?;
            self.announce_id(id).await?;
        }
        self.view_of(id).await
    }

    /// Starts a paused, queued or failed download `id` again from its verified pieces.
    pub async fn resume(&self, id: i64) -> Result<DownloadView, NodeError> {
        let record = self.record(id).await?;
        match record.state {
            DownloadState::Done | DownloadState::Cancelled => Err(NodeError::BadRequest(format!(
                "download {id} is {}: get the file again to download it anew",
                record.state.as_str()
            ))),
            _ if self.is_running(id) => self.view_of(id).await,
            _ => {
                self.parts
                    .store
                    .reactivate_download(id, &record.source)
                    .await?;
                let record = self.record(id).await?;
                self.spawn(record.clone());
                let view = self.view(record);
                self.announce(&view);
                Ok(view)
            }
        }
    }

    /// Stops download `id` and deletes its partial file.
    pub async fn cancel(&self, id: i64) -> Result<DownloadView, NodeError> {
        let record = self.record(id).await?;
        match record.state {
            DownloadState::Done => {
                return Err(NodeError::BadRequest(format!(
                    "download {id} is finished: `peershare downloads remove {id}` forgets it \
                     (the file stays)"
                )))
            }
            DownloadState::Cancelled => return self.view_of(id).await,
            _ => {}
        }
        match self.running(id) {
            Some(live) => live.stop(StopReason::Cancel).await,
            None => {
                self.discard_partial(&record.file_id);
                self.parts
                    .store
                    .set_download_state(id, DownloadState::Cancelled, None, None)
                    .await?;
                self.announce_id(id).await?;
            }
        }
        self.view_of(id).await
    }

    /// Forgets the entry of a finished, failed or cancelled download; never touches the file.
    pub async fn remove(&self, id: i64) -> Result<(), NodeError> {
        let record = self.record(id).await?;
        if !record.state.is_final() || self.is_running(id) {
            return Err(NodeError::BadRequest(format!(
                "download {id} is {}: cancel it first (`peershare downloads cancel {id}`)",
                record.state.as_str()
            )));
        }
        self.parts.store.remove_download(id).await?;
        self.live.lock().expect("live lock").remove(&id);
        self.parts.bus.publish(EventKind::DownloadRemoved { id });
        Ok(())
    }

    /// Deletes every partial file (and piece map) that no download owns.
    pub async fn clean(&self) -> Result<CleanReport, NodeError> {
        let dir = self.partial_dir();
        // The folder is read before the records: a download created in between
        // has no partial file in this listing yet.
        let entries: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(NodeError::io(&dir, e)),
        };
        let owned: HashSet<FileId> = self
            .parts
            .store
            .downloads()
            .await?
            .into_iter()
            .filter(|r| r.state.owns_partial())
            .map(|r| r.file_id)
            .collect();
        let mut report = CleanReport::default();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = partial_file_id(&name) else {
                continue;
            };
            if owned.contains(&id) {
                continue;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    report.bytes_freed += meta.len();
                    report.removed.push(name);
                }
                Err(e) => tracing::warn!("cannot delete {}: {e}", entry.path().display()),
            }
        }
        report.removed.sort();
        Ok(report)
    }

    /// Stops every download task (they record their verified pieces) and waits up to `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        if !self.parts.lifetime.end(grace).await {
            tracing::warn!("some downloads did not stop in time; they resume at the next start");
        }
    }

    /// Finds `file` (an id or a name) among the files `peer` shares.
    async fn resolve(
        &self,
        peer: PeerId,
        dial: &Multiaddr,
        file: &str,
    ) -> Result<SharedFileEntry, NodeError> {
        let wanted_id: Option<FileId> = file.parse().ok();
        // A name narrows the listing to the entries holding its words; when
        // that finds nothing (a name longer than the words a peer indexes), or
        // for an id, the whole listing is read.
        let mut matches = Vec::new();
        if wanted_id.is_none() {
            let listed =
                browse_all(&self.parts.host, peer, dial.clone(), &name_words(file)).await?;
            matches = entries_named(listed.files, file);
        }
        if matches.is_empty() {
            let listed = browse_all(&self.parts.host, peer, dial.clone(), &BTreeSet::new()).await?;
            matches = match wanted_id {
                Some(id) => listed.files.into_iter().filter(|e| e.id == id).collect(),
                None => entries_named(listed.files, file),
            };
        }
        matches.dedup_by_key(|e| e.id);
        match matches.len() {
            0 => Err(NodeError::NotFound(format!(
                "{peer} shares no file named {file:?}; `peershare browse <address>` lists what it shares"
            ))),
            1 => Ok(matches.remove(0)),
            _ => Err(NodeError::BadRequest(format!(
                "{} files are named {file:?}: ask for one by id ({})",
                matches.len(),
                matches
                    .iter()
                    .map(|e| format!("{} = {}", e.name, e.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    async fn record(&self, id: i64) -> Result<DownloadRecord, NodeError> {
        self.parts.store.download(id).await?.ok_or_else(|| {
            NodeError::NotFound(format!(
                "no download number {id}; `peershare downloads` lists them"
            ))
        })
    }

    async fn view_of(&self, id: i64) -> Result<DownloadView, NodeError> {
        Ok(self.view(self.record(id).await?))
    }

    fn running(&self, id: i64) -> Option<Arc<Live>> {
        self.live
            .lock()
            .expect("live lock")
            .get(&id)
            .filter(|l| l.is_running())
            .cloned()
    }

    fn is_running(&self, id: i64) -> bool {
        self.running(id).is_some()
    }

    fn view(&self, record: DownloadRecord) -> DownloadView {
        let live = self
            .live
            .lock()
            .expect("live lock")
            .get(&record.id)
            .cloned();
        let running = live.as_ref().is_some_and(|l| l.is_running());
        let progress = live.as_ref().map(|l| l.progress.snapshot());
        let verified = match (&progress, record.state) {
            (_, DownloadState::Done) => record.size,
            (Some(p), _) if running => p.verified_bytes,
            (_, state) if state.owns_partial() => self.verified_on_disk(&record),
            _ => 0,
        };
        DownloadView {
            verified_bytes: verified,
            fetched_bytes: progress.as_ref().map_or(0, |p| p.fetched_bytes),
            rate_bytes_per_sec: progress.as_ref().map_or(0, |p| p.rate_bytes_per_sec),
            eta_secs: progress
                .as_ref()
                .and_then(|p| p.eta_secs)
                .filter(|_| running),
            sources: progress.as_ref().map_or(0, |p| p.sources),
            peers: progress.map(|p| p.peers).unwrap_or_default(),
            running,
            record,
        }
    }

    /// Bytes of `record`'s file verified in its partial file, from the saved piece map.
    fn verified_on_disk(&self, record: &DownloadRecord) -> u64 {
        let (_, map_path) = partial_paths(&self.partial_dir(), &record.file_id);
        PieceMap::load_saved(map_path, &record.file_id, record.size)
            .map_or(0, |(map, layout)| verified_bytes(&map, layout))
    }

    fn announce(&self, download: &DownloadView) {
        self.parts.bus.publish(EventKind::DownloadChanged {
            download: download.clone(),
        });
    }

    async fn announce_id(&self, id: i64) -> Result<(), NodeError> {
        let view = self.view_of(id).await?;
        self.announce(&view);
        Ok(())
    }

    fn discard_partial(&self, id: &FileId) {
        let (part, map) = partial_paths(&self.partial_dir(), id);
        for path in [part, map] {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot delete {}: {e}", path.display());
                }
            }
        }
    }

    fn spawn(&self, record: DownloadRecord) {
        let progress = Progress::new(
            record.id,
            record.size,
            self.verified_on_disk(&record),
            self.parts.bus.clone(),
        );
        let live = Arc::new(Live::new(
            progress,
            self.parts.lifetime.token().child_token(),
            record.max_rate,
        ));
        self.live
            .lock()
            .expect("live lock")
            .insert(record.id, live.clone());
        let engine = self.clone();
        self.parts.lifetime.spawn_cooperative(async move {
            engine.drive(&record, &live).await;
            live.mark_ended();
            if let Err(e) = engine.announce_id(record.id).await {
                tracing::warn!("cannot report the end of download {}: {e}", record.id);
            }
        });
    }

    /// Runs one download to its end: done, failed, stopped; a busy source queues it for a retry.
    async fn drive(&self, record: &DownloadRecord, live: &Live) {
        let mut backoff = Backoff::new(BUSY_RETRY_FLOOR, BUSY_RETRY_CEILING);
        let outcome = loop {
            match self.run(record, live).await {
                Err(NodeError::Busy(reason)) => {
                    let pause = backoff.next_pause();
                    if let Err(e) = self.queue(record.id, &reason, pause).await {
                        break Err(e);
                    }
                    if live
                        .control
                        .run_until_cancelled(tokio::time::sleep(pause))
                        .await
                        .is_none()
                    {
                        break Err(NodeError::Stopped);
                    }
                    if let Err(e) = self
                        .parts
                        .store
                        .reactivate_download(record.id, &record.source)
                        .await
                    {
                        break Err(e);
                    }
                    let _ = self.announce_id(record.id).await;
                }
                other => break other,
            }
        };
        let recorded = match outcome {
            Ok((path, outboard)) => self.finished(record, &path, outboard).await,
            Err(NodeError::Stopped) => self.stopped(record, live.stop_reason()).await,
            Err(e) => {
                tracing::warn!(name = %record.name, "download failed: {e}");
                let msg = e.to_string();
                self.parts
                    .store
                    .finish_download(record.id, DownloadState::Failed, Some(&msg), None)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!("cannot record the end of a download: {e}");
        }
    }

    async fn queue(&self, id: i64, reason: &str, pause: Duration) -> Result<(), NodeError> {
        let next_try = now_ms() + pause.as_millis() as i64;
        let note = format!("{reason}; next try in {} s", pause.as_secs());
        tracing::info!(id, "download queued: {note}");
        self.parts
            .store
            .set_download_state(id, DownloadState::Queued, Some(&note), Some(next_try))
            .await?;
        self.announce_id(id).await
    }

    async fn finished(
        &self,
        record: &DownloadRecord,
        path: &Path,
        outboard: Arc<Outboard>,
    ) -> Result<(), NodeError> {
        tracing::info!(name = %record.name, path = %path.display(), "download complete");
        let text = path.to_string_lossy().into_owned();
        self.parts
            .store
            .finish_download(record.id, DownloadState::Done, None, Some(&text))
            .await?;
        self.parts.shares.add_downloaded(path, outboard).await
    }

    async fn stopped(
        &self,
        record: &DownloadRecord,
        reason: Option<StopReason>,
    ) -> Result<(), NodeError> {
        match reason {
            Some(StopReason::Pause) => {
                tracing::info!(id = record.id, "download paused");
                self.parts
                    .store
                    .set_download_state(
                        record.id,
                        DownloadState::Paused,
                        Some(&paused_note(record.id)),
                        None,
                    )
                    .await
            }
            Some(StopReason::Cancel) => {
                tracing::info!(id = record.id, "download cancelled");
                self.discard_partial(&record.file_id);
                self.parts
                    .store
                    .set_download_state(record.id, DownloadState::Cancelled, None, None)
                    .await
            }
            // The daemon is stopping: the record stays as it is and resumes at the next start.
            None => Ok(()),
        }
    }

    async fn run(
        &self,
        record: &DownloadRecord,
        live: &Live,
    ) -> Result<(PathBuf, Arc<Outboard>), NodeError> {
        let partial_dir = self.partial_dir();
        std::fs::create_dir_all(&partial_dir).map_err(|e| NodeError::io(&partial_dir, e))?;
        let (part_path, map_path) = partial_paths(&partial_dir, &record.file_id);
        let parts = SwarmParts {
            host: self.parts.host.clone(),
            index: self.parts.index.clone(),
            tls: self.parts.tls.clone(),
            max_sources: self.parts.max_sources,
            rate: self.parts.rate.clone(),
            source_patience: self.parts.source_patience,
            partials: self.parts.partials.clone(),
            own_rate: live.rate.clone(),
        };
        let more_sources = self
            .found_holders
            .lock()
            .expect("holders lock")
            .remove(&record.file_id)
            .unwrap_or_default();
        let target = SwarmTarget {
            id: record.file_id,
            size: record.size,
            part_path: &part_path,
            map_path: map_path.clone(),
            first_source: &record.source,
            more_sources,
            name: &record.name,
            sequential: record.sequential,
        };
        let outboard = fetch_from_swarm(&parts, target, &live.progress, &live.control).await?;
        let path = move_into_place(&part_path, &self.parts.downloads_dir, &record.name)?;
        let _ = std::fs::remove_file(&map_path);
        Ok((path, outboard))
    }
}

fn paused_note(id: i64) -> String {
    format!("paused; `peershare downloads resume {id}` continues")
}

/// The file id a partial-folder entry belongs to (`<id>.part`, `<id>.map`, `<id>.map-tmp`).
fn partial_file_id(name: &str) -> Option<FileId> {
    let (stem, ext) = name.split_once('.')?;
    matches!(ext, "part" | "map" | "map-tmp")
        .then(|| stem.parse().ok())
        .flatten()
}

/// Loads the piece map of an earlier run and re-checks the pieces it claims,
/// so a partial file damaged while the daemon was down is repaired, not trusted.
async fn verify_inherited(
    part_path: &Path,
    map_path: PathBuf,
    outboard: Arc<Outboard>,
) -> Result<PieceMap, NodeError> {
    let part_path = part_path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let layout = outboard.layout();
        let map = PieceMap::load(map_path, &outboard.id(), layout);
        if map.have() == 0 {
            return Ok(map);
        }
        let part = std::fs::File::open(&part_path).ok();
        let good: Vec<u64> = {
            use rayon::prelude::*;
            (0..map.count())
                .into_par_iter()
                .filter(|i| map.has(*i))
                .filter(|i| {
                    let r = layout.piece_range(*i);
                    let mut buf = vec![0u8; (r.end - r.start) as usize];
                    part.as_ref().is_some_and(|f| {
                        read_exact_at(f, &mut buf, r.start).is_ok()
                            && outboard.verify_piece(*i, &buf).is_ok()
                    })
                })
                .collect()
        };
        if good.len() as u64 != map.have() {
            tracing::warn!(
                claimed = map.have(),
                intact = good.len(),
                "some pieces of a partial download were damaged; fetching them again"
            );
        }
        Ok(map.keep_only(&good))
    })
    .await
    .map_err(|e| NodeError::Transfer(e.to_string()))?
}

/// The entries named exactly `name`, else those whose last path part is `name`.
fn entries_named(entries: Vec<SharedFileEntry>, name: &str) -> Vec<SharedFileEntry> {
    let (exact, others): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.name == name);
    if !exact.is_empty() {
        return exact;
    }
    others
        .into_iter()
        .filter(|e| e.name.rsplit('/').next() == Some(name))
        .collect()
}

fn verified_bytes(map: &PieceMap, layout: PieceLayout) -> u64 {
    (0..map.count())
        .filter(|i| map.has(*i))
        .map(|i| {
            let r = layout.piece_range(i);
            r.end - r.start
        })
        .sum()
}

/// Renames the verified partial file to a free name in `dir`; never overwrites.
fn move_into_place(part: &Path, dir: &Path, name: &str) -> Result<PathBuf, NodeError> {
    loop {
        let target = unique_path(dir, name);
        match std::fs::hard_link(part, &target) {
            Ok(()) => {
                let _ = std::fs::remove_file(part);
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                // File systems without hard links: a rename after the free-name check.
                std::fs::rename(part, &target).map_err(|e| NodeError::io(&target, e))?;
                return Ok(target);
            }
        }
    }
}
