//! The download engine: find the file at a source, ask for it, fetch its
//! pieces over the data connection, verify each one, write it into the
//! partial file, and rename the whole file into place once it checks out.
//!
//! Pieces are requested one by one from each source (pipelined), never as
//! one opaque stream, so several sources can share a download. Network
//! reading and verification run side by side: the connection task reads
//! pieces into a small pool of buffers and a blocking task verifies and
//! writes them, so memory stays at a few pieces whatever the file size.
//! A source that sends a piece that does not verify is dropped.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use peershare_core::file_name::{sanitize, unique_path};
use peershare_core::outboard::{read_exact_at, LEAF_LEN};
use peershare_core::scan::PARTIAL_DIR;
use peershare_core::wire::control::{SharedFileEntry, TransferResponse};
use peershare_core::wire::data::{ClientFrame, PieceHeader, ServerFrame};
use peershare_core::words::name_words;
use peershare_core::{FileId, Outboard, PieceLayout};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::assembly::{Assembly, PieceBuffer};
use crate::browse::browse_all;
use crate::data_channel::{read_body, read_header, wire_error, DataStream, DataTls};
use crate::host::{ip_of, parse_peer_addr, Host};
use crate::piece_map::{open_partial, partial_paths, PieceMap};
use crate::share::ShareIndex;
use crate::store::{DownloadRecord, DownloadState, Store};
use crate::NodeError;

/// Piece requests kept in flight per source.
const WINDOW: usize = 8;
/// How long a source may go without sending a byte.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Live counters of a running download.
#[derive(Default)]
pub struct Progress {
    verified_bytes: AtomicU64,
    fetched_bytes: AtomicU64,
    running: AtomicBool,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
}

/// A download as shown to people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadView {
    /// The stored record.
    #[serde(flatten)]
    pub record: DownloadRecord,
    /// Bytes verified and on disk.
    pub verified_bytes: u64,
    /// Bytes received from the network in this run (a resume fetches fewer than `size`).
    pub fetched_bytes: u64,
    /// Average receive rate of this run, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// True while a task is working on it.
    pub running: bool,
}

/// Starts, resumes and reports downloads.
#[derive(Clone)]
pub struct Downloads {
    store: Store,
    host: Host,
    tls: DataTls,
    downloads_dir: PathBuf,
    shares: ShareIndex,
    live: Arc<Mutex<HashMap<i64, Arc<Progress>>>>,
}

impl Downloads {
    /// The engine, saving into `downloads_dir` and sharing each finished file through `shares`.
    pub fn new(
        store: Store,
        host: Host,
        tls: DataTls,
        downloads_dir: PathBuf,
        shares: ShareIndex,
    ) -> Self {
        Self {
            store,
            host,
            tls,
            downloads_dir,
            shares,
            live: Arc::default(),
        }
    }

    fn partial_dir(&self) -> PathBuf {
        self.downloads_dir.join(PARTIAL_DIR)
    }

    /// Starts (or resumes) downloading `file` (a name or an id) from the peer at `peer_addr`.
    pub async fn start(&self, peer_addr: &str, file: &str) -> Result<DownloadView, NodeError> {
        let (peer, dial) = parse_peer_addr(peer_addr)?;
        let entry = self.resolve(peer, &dial, file).await?;
        let record = match self.store.unfinished_download(&entry.id).await? {
            Some(existing) if self.is_running(existing.id) => return self.view(existing),
            Some(existing) => {
                self.store
                    .reactivate_download(existing.id, peer_addr)
                    .await?;
                self.store.download(existing.id).await?.unwrap_or(existing)
            }
            None => {
                let name = sanitize(&entry.name);
                self.store
                    .insert_download(&entry.id, &name, entry.size, peer_addr)
                    .await?
            }
        };
        self.spawn(record.clone(), peer, dial);
        self.view(record)
    }

    /// Starts downloading `file` from the first of `sources` (full peer addresses) that answers.
    pub async fn start_from_any(
        &self,
        sources: &[String],
        file: &str,
    ) -> Result<DownloadView, NodeError> {
        let mut last = NodeError::NotFound(format!("no source for {file:?}"));
        for source in sources {
            match self.start(source, file).await {
                Ok(view) => return Ok(view),
                Err(e) => {
                    tracing::info!(%source, "source not usable: {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Resumes every download left active by an earlier run of the daemon.
    pub async fn resume_unfinished(&self) -> Result<usize, NodeError> {
        let mut resumed = 0;
        for record in self.store.downloads().await? {
            if record.state != DownloadState::Active {
                continue;
            }
            match parse_peer_addr(&record.source) {
                Ok((peer, dial)) => {
                    tracing::info!(id = record.id, name = %record.name, "resuming download");
                    self.spawn(record, peer, dial);
                    resumed += 1;
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.store
                        .finish_download(record.id, DownloadState::Failed, Some(&msg), None)
                        .await?;
                }
            }
        }
        Ok(resumed)
    }

    /// All downloads with live progress, newest first.
    pub async fn list(&self) -> Result<Vec<DownloadView>, NodeError> {
        self.store
            .downloads()
            .await?
            .into_iter()
            .map(|r| self.view(r))
            .collect()
    }

    /// One download with live progress.
    pub async fn get(&self, id: i64) -> Result<Option<DownloadView>, NodeError> {
        match self.store.download(id).await? {
            Some(r) => Ok(Some(self.view(r)?)),
            None => Ok(None),
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
            let listed = browse_all(&self.host, peer, dial.clone(), &name_words(file)).await?;
            matches = entries_named(listed.files, file);
        }
        if matches.is_empty() {
            let listed = browse_all(&self.host, peer, dial.clone(), &BTreeSet::new()).await?;
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

    fn is_running(&self, id: i64) -> bool {
        self.live
            .lock()
            .expect("live lock")
            .get(&id)
            .is_some_and(|p| p.running.load(Ordering::Relaxed))
    }

    fn view(&self, record: DownloadRecord) -> Result<DownloadView, NodeError> {
        let progress = self
            .live
            .lock()
            .expect("live lock")
            .get(&record.id)
            .cloned();
        let (verified, fetched, running, rate) = match progress {
            Some(p) => {
                let fetched = p.fetched_bytes.load(Ordering::Relaxed);
                let end = p
                    .finished
                    .lock()
                    .expect("progress lock")
                    .unwrap_or_else(Instant::now);
                let elapsed = p
                    .started
                    .lock()
                    .expect("progress lock")
                    .map(|s| end.saturating_duration_since(s).as_secs_f64())
                    .unwrap_or(0.0);
                let rate = if elapsed > 0.0 {
                    (fetched as f64 / elapsed) as u64
                } else {
                    0
                };
                (
                    p.verified_bytes.load(Ordering::Relaxed),
                    fetched,
                    p.running.load(Ordering::Relaxed),
                    rate,
                )
            }
            None => (0, 0, false, 0),
        };
        let verified = if record.state == DownloadState::Done {
            record.size
        } else {
            verified
        };
        Ok(DownloadView {
            record,
            verified_bytes: verified,
            fetched_bytes: fetched,
            rate_bytes_per_sec: rate,
            running,
        })
    }

    fn spawn(&self, record: DownloadRecord, peer: PeerId, dial: Multiaddr) {
        let progress = Arc::new(Progress::default());
        progress.running.store(true, Ordering::Relaxed);
        *progress.started.lock().expect("progress lock") = Some(Instant::now());
        self.live
            .lock()
            .expect("live lock")
            .insert(record.id, progress.clone());
        let engine = self.clone();
        tokio::spawn(async move {
            let outcome = engine.run(&record, peer, dial, &progress).await;
            *progress.finished.lock().expect("progress lock") = Some(Instant::now());
            let result = match outcome {
                Ok((path, outboard)) => {
                    tracing::info!(name = %record.name, path = %path.display(), "download complete");
                    let text = path.to_string_lossy().into_owned();
                    let recorded = engine
                        .store
                        .finish_download(record.id, DownloadState::Done, None, Some(&text))
                        .await;
                    match recorded {
                        Ok(()) => engine.shares.add_downloaded(&path, outboard).await,
                        failed => failed,
                    }
                }
                Err(e) => {
                    tracing::warn!(name = %record.name, "download failed: {e}");
                    let msg = e.to_string();
                    engine
                        .store
                        .finish_download(record.id, DownloadState::Failed, Some(&msg), None)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!("cannot record the end of a download: {e}");
            }
            progress.running.store(false, Ordering::Relaxed);
        });
    }

    async fn run(
        &self,
        record: &DownloadRecord,
        peer: PeerId,
        dial: Multiaddr,
        progress: &Progress,
    ) -> Result<(PathBuf, Arc<Outboard>), NodeError> {
        let partial_dir = self.partial_dir();
        std::fs::create_dir_all(&partial_dir).map_err(|e| NodeError::io(&partial_dir, e))?;
        let (part_path, map_path) = partial_paths(&partial_dir, &record.file_id);

        let answer = self
            .host
            .request_transfer(peer, vec![dial.clone()], record.file_id)
            .await?;
        let (ticket, data_port, piece_len) = match answer.response {
            TransferResponse::Granted {
                ticket,
                data_port,
                size,
                piece_len,
                ..
            } if size == record.size => (ticket, data_port, piece_len),
            TransferResponse::Granted { size, .. } => {
                return Err(NodeError::Transfer(format!(
                    "peer offers {size} bytes for a file listed as {} bytes",
                    record.size
                )))
            }
            TransferResponse::Rejected { reason } => {
                return Err(NodeError::Refused(format!("rejected by peer: {reason}")))
            }
            TransferResponse::Busy => {
                return Err(NodeError::Refused(
                    "peer busy: all its upload slots are in use; try again later".into(),
                ))
            }
            TransferResponse::NotFound => {
                return Err(NodeError::NotFound(
                    "the peer no longer shares this file (or it changed since it was listed)"
                        .into(),
                ))
            }
        };
        let layout = PieceLayout::new(record.size, piece_len)
            .map_err(|e| NodeError::Transfer(e.to_string()))?;
        let ip = answer.remote_ip.or_else(|| ip_of(&dial)).ok_or_else(|| {
            NodeError::Transfer("no IP address to open a data connection to".into())
        })?;
        let mut stream = self
            .tls
            .connect(SocketAddr::new(ip, data_port), peer)
            .await?;
        open_transfer(&mut stream, ticket, &record.file_id, layout).await?;
        let outboard = Arc::new(fetch_tree(&mut stream, layout, &record.file_id).await?);

        let map = verify_inherited(&part_path, map_path, outboard.clone()).await?;
        progress
            .verified_bytes
            .store(verified_bytes(&map, layout), Ordering::Relaxed);
        if !map.is_complete() {
            let part = open_partial(&part_path, record.size)?;
            let source = SourceSession {
                stream,
                peer,
                progress,
            };
            fetch_pieces(source, outboard.clone(), &part_path, part, map).await?;
        } else {
            let _ = stream.shutdown().await;
        }
        let path = self.finalize(record, &part_path, &partial_dir).await?;
        Ok((path, outboard))
    }

    /// Moves the complete partial file into place under a free name.
    ///
    /// Every piece was checked against the id's tree before it was written
    /// (or, if an earlier run wrote it, before it was trusted again), so the
    /// whole file is not read once more here.
    async fn finalize(
        &self,
        record: &DownloadRecord,
        part_path: &Path,
        partial_dir: &Path,
    ) -> Result<PathBuf, NodeError> {
        let (_, map_path) = partial_paths(partial_dir, &record.file_id);
        let target = move_into_place(part_path, &self.downloads_dir, &record.name)?;
        let _ = std::fs::remove_file(&map_path);
        Ok(target)
    }
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

async fn open_transfer(
    stream: &mut DataStream,
    ticket: u64,
    id: &FileId,
    layout: PieceLayout,
) -> Result<(), NodeError> {
    stream
        .write_all(&ClientFrame::Open { ticket }.encode())
        .await?;
    stream.write_all(&ClientFrame::GetTree.encode()).await?;
    stream.flush().await?;
    match read_server_frame(stream, layout.piece_len()).await? {
        ServerFrame::Ready {
            id: got,
            size,
            piece_len,
        } if got == *id && size == layout.file_len() && piece_len == layout.piece_len() => Ok(()),
        ServerFrame::Ready { .. } => Err(NodeError::Transfer(
            "the source announced a different file than it granted".into(),
        )),
        other => Err(unexpected(other)),
    }
}

async fn fetch_tree(
    stream: &mut DataStream,
    layout: PieceLayout,
    id: &FileId,
) -> Result<Outboard, NodeError> {
    let count = layout.piece_count() as usize;
    let mut leaves = Vec::with_capacity(count * LEAF_LEN);
    while leaves.len() < count * LEAF_LEN {
        match read_server_frame(stream, layout.piece_len()).await? {
            ServerFrame::Tree { first, leaves: run }
                if first as usize * LEAF_LEN == leaves.len()
                    && leaves.len() + run.len() <= count * LEAF_LEN =>
            {
                leaves.extend_from_slice(&run)
            }
            other => return Err(unexpected(other)),
        }
    }
    Outboard::from_leaf_bytes(layout, &leaves, id).map_err(|e| {
        NodeError::Transfer(format!(
            "source sent a tree that does not match the id: {e}"
        ))
    })
}

async fn read_server_frame(
    stream: &mut DataStream,
    piece_len: u64,
) -> Result<ServerFrame, NodeError> {
    let header = read_header(stream, piece_len).await?;
    if header.is_piece() {
        return Err(NodeError::Transfer(
            "source sent a piece nobody asked for".into(),
        ));
    }
    let body = read_body(stream, header).await?;
    ServerFrame::decode(header, &body).map_err(wire_error)
}

fn unexpected(frame: ServerFrame) -> NodeError {
    match frame {
        ServerFrame::Error { code, message } => {
            NodeError::Transfer(format!("source refused ({code:?}): {message}"))
        }
        _ => NodeError::Transfer("source sent an unexpected frame".into()),
    }
}

/// One source's connection, while it sends pieces.
struct SourceSession<'a> {
    stream: DataStream,
    peer: PeerId,
    progress: &'a Progress,
}

/// Fetches every missing piece from one source, verifying and writing as they come.
async fn fetch_pieces(
    mut source: SourceSession<'_>,
    outboard: Arc<Outboard>,
    part_path: &Path,
    part: std::fs::File,
    map: PieceMap,
) -> Result<(), NodeError> {
    let layout = outboard.layout();
    let mut assembly = Assembly::start(outboard, part_path, part, map)?;
    let mut requested: VecDeque<u64> = VecDeque::new();
    let result = pump_source(&mut source, &mut assembly, &mut requested, layout).await;
    let finished = assembly.finish().await;
    if result.is_ok() {
        let _ = source.stream.shutdown().await;
    }
    let verified = source.progress.verified_bytes.load(Ordering::Relaxed);
    result
        .and(finished)
        .map_err(|e| source_failed(e, source.peer, verified, layout.file_len()))
}

/// Keeps `WINDOW` piece requests in flight and feeds what arrives to the assembly.
async fn pump_source(
    source: &mut SourceSession<'_>,
    assembly: &mut Assembly,
    requested: &mut VecDeque<u64>,
    layout: PieceLayout,
) -> Result<(), NodeError> {
    let progress = source.progress;
    loop {
        let verified = assembly.drain_verdicts()?;
        progress
            .verified_bytes
            .fetch_add(verified, Ordering::Relaxed);
        if assembly.is_complete() {
            return Ok(());
        }
        let mut asked = false;
        while requested.len() < WINDOW {
            let Some(index) = assembly.picker().pick() else {
                break;
            };
            source
                .stream
                .write_all(&ClientFrame::GetPiece { index }.encode())
                .await?;
            requested.push_back(index);
            asked = true;
        }
        if asked {
            source.stream.flush().await?;
        }
        let free_buffer = match requested.front() {
            Some(_) => assembly.take_buffer(),
            None => None,
        };
        let Some(mut buffer) = free_buffer else {
            if assembly.queued() == 0 {
                return Err(NodeError::Transfer(
                    "nothing left to request or verify".into(),
                ));
            }
            // Every asked-for piece is in, or every buffer is queued: wait for a writer.
            let verified = assembly.next_verdict().await?;
            progress
                .verified_bytes
                .fetch_add(verified, Ordering::Relaxed);
            continue;
        };
        let expected = requested.pop_front().expect("checked above");
        let index = tokio::time::timeout(
            STALL_TIMEOUT,
            read_piece(&mut source.stream, layout, &mut buffer),
        )
        .await
        .map_err(|_| NodeError::Transfer("the source stopped sending".into()))??;
        if index != expected {
            return Err(NodeError::Transfer(format!(
                "source answered piece {index} when piece {expected} was due"
            )));
        }
        progress
            .fetched_bytes
            .fetch_add(buffer.len() as u64, Ordering::Relaxed);
        assembly.submit(index, buffer).await?;
    }
}

fn source_failed(error: NodeError, peer: PeerId, verified: u64, size: u64) -> NodeError {
    let reason = match error {
        NodeError::Io(e) => format!("connection lost ({e})"),
        other => other.to_string(),
    };
    NodeError::Transfer(format!(
        "source {peer} failed after {verified} of {size} bytes: {reason}. \
         The verified pieces are kept: run the same `peershare get` again to resume"
    ))
}

/// Reads one piece frame into `buffer`; returns its index.
async fn read_piece(
    stream: &mut DataStream,
    layout: PieceLayout,
    buffer: &mut PieceBuffer,
) -> Result<u64, NodeError> {
    let header = read_header(stream, layout.piece_len()).await?;
    if !header.is_piece() {
        let body = read_body(stream, header).await?;
        return Err(unexpected(
            ServerFrame::decode(header, &body).map_err(wire_error)?,
        ));
    }
    let mut index = [0u8; 8];
    stream.read_exact(&mut index).await?;
    let len = header.body_len as usize - 8;
    stream.read_exact(buffer.fill(len)).await?;
    Ok(PieceHeader::index(index))
}
