//! One source's side of a download: the data connection to a peer that
//! granted the transfer, opening it, fetching the piece tree, and pumping
//! piece requests and answers into the [`Assembly`].
//!
//! Every step has a time limit and stops at once when the download's
//! cancellation token fires; pieces already handed to the assembly are
//! still verified, written and recorded in the piece map on the way out.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use peershare_core::outboard::LEAF_LEN;
use peershare_core::wire::data::{ClientFrame, PieceHeader, ServerFrame};
use peershare_core::{FileId, Outboard, PieceLayout};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::assembly::{Assembly, PieceBuffer};
use super::piece_map::PieceMap;
use super::progress::Progress;
use crate::transfer::data_channel::{read_body, read_header, wire_error, DataStream};
use crate::NodeError;

/// Piece requests kept in flight per source.
const WINDOW: usize = 8;
/// How long a source may go without sending a byte.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Presents the ticket and asks for the tree; checks the source names the granted file.
pub async fn open_transfer(
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

/// Reads the piece tree and checks it against the file's id.
pub async fn fetch_tree(
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
pub struct SourceSession<'a> {
    /// The open data connection.
    pub stream: DataStream,
    /// Who is on the other end.
    pub peer: PeerId,
    /// The download's counters.
    pub progress: &'a Progress,
    /// Fires when the download is paused, cancelled or the daemon stops.
    pub stop: &'a CancellationToken,
}

/// Fetches every missing piece from one source, verifying and writing as they come.
pub async fn fetch_pieces(
    mut source: SourceSession<'_>,
    outboard: Arc<Outboard>,
    part_path: &Path,
    part: std::fs::File,
    map: PieceMap,
) -> Result<(), NodeError> {
    let layout = outboard.layout();
    let mut assembly = Assembly::start(outboard, part_path, part, map)?;
    let mut requested: VecDeque<u64> = VecDeque::new();
    source.progress.source_changed(true);
    let result = pump_source(&mut source, &mut assembly, &mut requested, layout).await;
    let finished = assembly.finish().await;
    source.progress.source_changed(false);
    if result.is_ok() {
        let _ = source.stream.shutdown().await;
    }
    let verified = source.progress.verified();
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
        progress.add_verified(assembly.drain_verdicts()?);
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
            let verified = tokio::select! {
                verified = assembly.next_verdict() => verified?,
                _ = source.stop.cancelled() => return Err(NodeError::Stopped),
            };
            progress.add_verified(verified);
            continue;
        };
        let expected = requested.pop_front().expect("checked above");
        let read = tokio::time::timeout(
            STALL_TIMEOUT,
            read_piece(&mut source.stream, layout, &mut buffer),
        );
        let index = tokio::select! {
            read = read => read.map_err(|_| NodeError::Transfer("the source stopped sending".into()))??,
            _ = source.stop.cancelled() => return Err(NodeError::Stopped),
        };
        if index != expected {
            return Err(NodeError::Transfer(format!(
                "source answered piece {index} when piece {expected} was due"
            )));
        }
        progress.add_fetched(buffer.len() as u64);
        assembly.submit(index, buffer).await?;
    }
}

fn source_failed(error: NodeError, peer: PeerId, verified: u64, size: u64) -> NodeError {
    let reason = match error {
        NodeError::Stopped => return NodeError::Stopped,
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
