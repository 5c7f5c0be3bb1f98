//! Assembling one download on disk: a small pool of worker threads verifies
//! pieces against the outboard and writes them into the partial file, and a
//! checkpoint thread saves the verified-piece map.
//!
//! The [`Assembly`] is owned by the task that reads pieces from the network;
//! workers are stateless (piece in, verdict out), so hashing uses every core
//! while the map and picker stay in one place. Crash rule: the map is saved
//! only after the partial file was synced, and only with pieces written
//! before that sync, so it never claims a piece that is not on disk. The
//! sync runs on its own thread so it never stalls verification.
//!
//! Where the file system allows it, pieces are written with direct I/O from
//! 4 KiB-aligned buffers: the copy into the page cache was the largest
//! single cost of a download (see docs/PROTOCOL.md for the figures).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peershare_core::outboard::VerifyError;
use peershare_core::{FileId, Outboard, PieceLayout};
use tokio::sync::mpsc;

use crate::transfer::download::piece_map::PieceMap;
use crate::transfer::download::piece_picker::{PieceOrder, PiecePicker};
use crate::NodeError;

/// Worker threads verifying and writing pieces, per download.
const WORKERS: usize = 4;
/// Pieces queued per worker.
const WORKER_QUEUE: usize = 1;
/// Save the piece map at least this often while pieces arrive.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// What a worker says about one piece.
pub enum PieceVerdict {
    /// Verified and written; the buffer comes back for reuse.
    Written { index: u64, buffer: PieceBuffer },
    /// The bytes do not match the tree: the source lied. The buffer comes back.
    Corrupt {
        index: u64,
        error: VerifyError,
        buffer: PieceBuffer,
    },
    /// Writing failed on this machine.
    Failed(std::io::Error),
}

/// What a verdict meant for the download.
pub enum Applied {
    /// The piece is verified and written.
    Verified {
        /// The piece.
        index: u64,
        /// Its length (0 if it was counted already).
        bytes: u64,
    },
    /// The piece did not match the tree; it is missing again.
    Corrupt {
        /// The piece.
        index: u64,
        /// How it failed.
        error: VerifyError,
    },
}

/// The on-disk side of one download.
pub struct Assembly {
    layout: PieceLayout,
    id: FileId,
    part: Arc<File>,
    map: PieceMap,
    picker: PiecePicker,
    workers: Vec<mpsc::Sender<(u64, PieceBuffer)>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    verdicts: mpsc::Receiver<PieceVerdict>,
    next_worker: usize,
    queued: usize,
    free: Vec<PieceBuffer>,
    buffers: usize,
    max_buffers: usize,
    checkpoint: Checkpoint,
    last_checkpoint: Instant,
}

impl Assembly {
    /// Starts the workers for a download whose verified pieces are in `map`;
    /// at most `max_buffers` piece buffers exist at once (at least enough to
    /// keep every worker busy).
    pub fn start(
        outboard: Arc<Outboard>,
        part_path: &Path,
        part: File,
        (map, order): (PieceMap, PieceOrder),
        max_buffers: usize,
    ) -> Result<Self, NodeError> {
        let layout = outboard.layout();
        let id = outboard.id();
        let part = Arc::new(part);
        let writer = Arc::new(PartWriter::open(part_path, part.clone()));
        let (verdict_tx, verdicts) = mpsc::channel(WORKERS * (WORKER_QUEUE + 1));
        let mut workers = Vec::with_capacity(WORKERS);
        let mut threads = Vec::with_capacity(WORKERS);
        for n in 0..WORKERS {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            let (outboard, writer, verdict_tx) =
                (outboard.clone(), writer.clone(), verdict_tx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("piece-writer-{n}"))
                .spawn(move || verify_and_write(&outboard, &writer, rx, verdict_tx))?;
            workers.push(tx);
            threads.push(thread);
        }
        let count = layout.piece_count();
        let picker = PiecePicker::new(count, (0..count).filter(|i| !map.has(*i)), order);
        let checkpoint = Checkpoint::start(part.try_clone()?, id, layout);
        Ok(Self {
            layout,
            id,
            part,
            map,
            picker,
            workers,
            threads,
            verdicts,
            next_worker: 0,
            queued: 0,
            free: Vec::new(),
            buffers: 0,
            max_buffers: max_buffers.max(WORKERS * (WORKER_QUEUE + 1) + 1),
            checkpoint,
            last_checkpoint: Instant::now(),
        })
    }

    /// The length of every piece but the last.
    pub fn piece_len(&self) -> u64 {
        self.layout.piece_len()
    }

    /// The piece picker, to choose what to request next.
    pub fn picker(&mut self) -> &mut PiecePicker {
        &mut self.picker
    }

    /// True when every piece is verified and written.
    pub fn is_complete(&self) -> bool {
        self.map.is_complete()
    }

    /// Whether piece `index` is verified and written.
    pub fn has(&self, index: u64) -> bool {
        self.map.has(index)
    }

    /// The pieces verified and written so far.
    pub fn verified_pieces(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.map.count()).filter(|i| self.map.has(*i))
    }

    /// Returns a buffer that was not used (a duplicate, an order a source did not fill).
    pub fn give_back(&mut self, buffer: PieceBuffer) {
        self.free.push(buffer);
    }

    /// A buffer to read the next piece into, if one is free (or may be made).
    pub fn take_buffer(&mut self) -> Option<PieceBuffer> {
        if let Some(buffer) = self.free.pop() {
            return Some(buffer);
        }
        (self.buffers < self.max_buffers).then(|| {
            self.buffers += 1;
            PieceBuffer::new(self.layout.piece_len() as usize)
        })
    }

    /// Hands a received piece to a worker. While as many pieces as the
    /// workers can hold are queued, it first waits for verdicts (so a worker
    /// never waits on a full verdict queue); those it applied are returned.
    pub async fn submit(
        &mut self,
        index: u64,
        buffer: PieceBuffer,
    ) -> Result<Vec<Applied>, NodeError> {
        let mut applied = Vec::new();
        while let Ok(verdict) = self.verdicts.try_recv() {
            applied.push(self.apply(verdict)?);
        }
        while self.queued >= WORKERS * (WORKER_QUEUE + 1) {
            applied.push(self.next_verdict().await?);
        }
        let worker = &self.workers[self.next_worker % self.workers.len()];
        self.next_worker += 1;
        worker
            .send((index, buffer))
            .await
            .map_err(|_| NodeError::Transfer("a piece writer stopped".into()))?;
        self.queued += 1;
        Ok(applied)
    }

    /// Pieces handed to workers and not yet reported on.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Waits for one verdict and applies it.
    pub async fn next_verdict(&mut self) -> Result<Applied, NodeError> {
        let verdict = self
            .verdicts
            .recv()
            .await
            .ok_or_else(|| NodeError::Transfer("the piece writers stopped".into()))?;
        self.apply(verdict)
    }

    fn apply(&mut self, verdict: PieceVerdict) -> Result<Applied, NodeError> {
        self.queued = self.queued.saturating_sub(1);
        match verdict {
            PieceVerdict::Written { index, buffer } => {
                self.free.push(buffer);
                if self.map.has(index) {
                    return Ok(Applied::Verified { index, bytes: 0 });
                }
                self.picker.verified(index);
                self.map.set(index);
                if self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
                    && self.checkpoint.offer(&self.map)
                {
                    self.last_checkpoint = Instant::now();
                }
                let r = self.layout.piece_range(index);
                Ok(Applied::Verified {
                    index,
                    bytes: r.end - r.start,
                })
            }
            PieceVerdict::Corrupt {
                index,
                error,
                buffer,
            } => {
                self.free.push(buffer);
                if !self.map.has(index) {
                    self.picker.release(index);
                }
                Ok(Applied::Corrupt { index, error })
            }
            PieceVerdict::Failed(e) => Err(NodeError::Io(e)),
        }
    }

    /// Stops the workers, applies their last verdicts, syncs and saves the map.
    pub async fn finish(mut self) -> Result<(), NodeError> {
        self.workers.clear();
        let mut first_error = None;
        while let Some(verdict) = self.verdicts.recv().await {
            if let Err(e) = self.apply(verdict) {
                first_error.get_or_insert(e);
            }
        }
        let Self {
            part,
            map,
            threads,
            checkpoint,
            id,
            layout,
            ..
        } = self;
        tokio::task::spawn_blocking(move || -> Result<(), NodeError> {
            for thread in threads {
                let _ = thread.join();
            }
            checkpoint.finish()?;
            part.sync_data()?;
            map.save(&id, layout)
        })
        .await
        .map_err(|e| NodeError::Transfer(e.to_string()))??;
        first_error.map_or(Ok(()), Err)
    }
}

/// A worker: verify each piece, write it, report.
fn verify_and_write(
    outboard: &Outboard,
    writer: &PartWriter,
    mut pieces: mpsc::Receiver<(u64, PieceBuffer)>,
    verdicts: mpsc::Sender<PieceVerdict>,
) {
    while let Some((index, buffer)) = pieces.blocking_recv() {
        let offset = outboard.layout().piece_range(index).start;
        let verdict = match outboard.verify_piece(index, buffer.as_slice()) {
            Err(error) => PieceVerdict::Corrupt {
                index,
                error,
                buffer,
            },
            Ok(()) => match writer.write_at(buffer.as_slice(), offset) {
                Ok(()) => PieceVerdict::Written { index, buffer },
                Err(e) => PieceVerdict::Failed(e),
            },
        };
        let stop = matches!(verdict, PieceVerdict::Failed(_));
        if verdicts.blocking_send(verdict).is_err() || stop {
            return;
        }
    }
}

/// Saves snapshots of the piece map in the background, each after a sync.
struct Checkpoint {
    snapshots: std::sync::mpsc::SyncSender<PieceMap>,
    thread: std::thread::JoinHandle<Result<(), NodeError>>,
}

impl Checkpoint {
    fn start(part: File, id: FileId, layout: PieceLayout) -> Self {
        let (snapshots, rx) = std::sync::mpsc::sync_channel::<PieceMap>(1);
        let thread = std::thread::spawn(move || {
            for snapshot in rx {
                part.sync_data()?;
                snapshot.save(&id, layout)?;
            }
            Ok(())
        });
        Self { snapshots, thread }
    }

    /// Hands over a snapshot unless the previous one is still being saved.
    fn offer(&self, map: &PieceMap) -> bool {
        self.snapshots.try_send(map.clone()).is_ok()
    }

    /// Waits for the last snapshot to be saved.
    fn finish(self) -> Result<(), NodeError> {
        drop(self.snapshots);
        self.thread
            .join()
            .map_err(|_| NodeError::Transfer("the checkpoint thread panicked".into()))?
    }
}

/// Alignment of direct I/O buffers, offsets and lengths.
const DIRECT_ALIGN: usize = 4096;

/// A piece buffer whose bytes start on a 4 KiB boundary, for direct I/O.
///
/// It over-allocates by one alignment unit and starts its slice at the first
/// aligned address, which needs no unsafe code: a `Vec` never moves its
/// bytes unless it grows, and this one never grows.
pub struct PieceBuffer {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl PieceBuffer {
    /// A buffer for pieces of up to `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let bytes = vec![0u8; capacity + DIRECT_ALIGN];
        let start = bytes.as_ptr().align_offset(DIRECT_ALIGN);
        Self {
            bytes,
            start,
            len: 0,
        }
    }

    /// The piece bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    /// Room for a piece of `len` bytes, to read into.
    pub fn fill(&mut self, len: usize) -> &mut [u8] {
        assert!(
            len + DIRECT_ALIGN <= self.bytes.len(),
            "piece larger than its buffer"
        );
        self.len = len;
        &mut self.bytes[self.start..self.start + len]
    }

    /// The piece's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty piece.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Writes pieces into the partial file, directly where the file system allows.
struct PartWriter {
    direct: Option<File>,
    direct_failed: std::sync::atomic::AtomicBool,
    buffered: Arc<File>,
}

impl PartWriter {
    fn open(path: &Path, buffered: Arc<File>) -> Self {
        Self {
            direct: open_direct(path),
            direct_failed: std::sync::atomic::AtomicBool::new(false),
            buffered,
        }
    }

    /// Writes `data` at `offset`: the aligned prefix directly, the tail through the page cache.
    fn write_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let aligned = data.len() & !(DIRECT_ALIGN - 1);
        let direct = self
            .direct
            .as_ref()
            .filter(|_| !self.direct_failed.load(Ordering::Relaxed))
            .filter(|_| offset.is_multiple_of(DIRECT_ALIGN as u64) && aligned > 0);
        let Some(direct) = direct else {
            return write_at(&self.buffered, data, offset);
        };
        if let Err(e) = write_at(direct, &data[..aligned], offset) {
            // Some file systems accept O_DIRECT at open and refuse it on write.
            tracing::debug!("direct write refused ({e}); writing through the page cache");
            self.direct_failed.store(true, Ordering::Relaxed);
            return write_at(&self.buffered, data, offset);
        }
        write_at(&self.buffered, &data[aligned..], offset + aligned as u64)
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(data, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < data.len() {
            done += file.seek_write(&data[done..], offset + done as u64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_sized() {
        let mut b = PieceBuffer::new(1 << 20);
        assert_eq!(b.fill(5000).as_ptr() as usize % DIRECT_ALIGN, 0);
        assert_eq!(b.len(), 5000);
        assert_eq!(b.as_slice().len(), 5000);
    }

    #[test]
    fn part_writer_writes_aligned_and_unaligned_pieces_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.part");
        let len = 3 * 8192 + 1234;
        let part = crate::transfer::download::piece_map::open_partial(&path, len as u64).unwrap();
        let writer = PartWriter::open(&path, Arc::new(part));
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        for (n, chunk) in data.chunks(8192).enumerate() {
            let mut b = PieceBuffer::new(8192);
            b.fill(chunk.len()).copy_from_slice(chunk);
            writer.write_at(b.as_slice(), (n * 8192) as u64).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
