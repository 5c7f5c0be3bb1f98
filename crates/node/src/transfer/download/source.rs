//! One source's side of a download, run as a task of its own: ask the peer
//! for the file, open the data connection, check the piece tree against the
//! id, learn which pieces the peer has (a partial source tells of more as
//! they land), then fetch the pieces the download orders (each with the
//! buffer to read it into) and report each one back.
//!
//! Every step has a time limit, a source that sends nothing for a few
//! seconds has stalled, and the task stops at once when its token fires;
//! orders it did not fill go back to the download with their buffers, so
//! another source fetches those pieces. It never verifies or writes: the
//! download does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use peershare_core::outboard::LEAF_LEN;
use peershare_core::wire::control::TransferResponse;
use peershare_core::wire::data::{ClientFrame, PieceHeader, ServerFrame};
use peershare_core::{FileId, Outboard, PieceLayout, PieceSet};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::assembly::PieceBuffer;
use crate::net::host::{ip_of, Host};
use crate::transfer::data_channel::{read_body, read_header, wire_error, DataStream, DataTls};
use crate::transfer::rate_limit::RateLimit;
use crate::NodeError;

/// How long a source may go without sending a byte while a piece is due:
/// past it, its pieces go to the other sources.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit on each step before pieces flow: asking, connecting, opening, the tree.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from the data connection at once (pieces bypass it).
const READ_BUFFER: usize = 64 * 1024;

/// Presents the ticket and asks for the tree and the have-map; checks the
/// source names the granted file.
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
    stream.write_all(&ClientFrame::WatchHaves.encode()).await?;
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

/// Reads the have frames that answer a watch: which pieces the source has now.
pub async fn fetch_haves(
    stream: &mut DataStream,
    layout: PieceLayout,
) -> Result<PieceSet, NodeError> {
    let mut have = PieceSet::empty(layout.piece_count());
    let mut covered = 0;
    while covered < have.bitmap_len() {
        match read_server_frame(stream, layout.piece_len()).await? {
            ServerFrame::Have { first, bitmap } if first == covered as u64 * 8 => {
                covered += bitmap.len();
                have.merge_bitmap(first, &bitmap);
            }
            other => return Err(unexpected(other)),
        }
    }
    Ok(have)
}

async fn read_server_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
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

/// An order from the download to one source: fetch piece `index` into `buffer`.
pub struct Order {
    /// The piece.
    pub index: u64,
    /// Where its bytes go.
    pub buffer: PieceBuffer,
}

/// What a source tells its download.
pub enum Report {
    /// The source granted the transfer and sent a tree that matches the id.
    Ready {
        /// The source.
        peer: PeerId,
        /// The file's piece tree, checked against its id.
        outboard: Outboard,
        /// The pieces it has (all of them unless it is downloading the file too).
        have: PieceSet,
        /// Other peers it named as fetching or holding the file.
        hints: Vec<String>,
    },
    /// The source skipped an order that was cancelled (it came from elsewhere).
    Skipped {
        /// The source.
        peer: PeerId,
        /// The order, buffer included.
        order: Order,
    },
    /// A partial source verified more pieces.
    Have {
        /// The source.
        peer: PeerId,
        /// The new pieces (untrusted: any index past the end is ignored).
        indices: Vec<u64>,
    },
    /// A piece arrived, not verified yet.
    Piece {
        /// The source.
        peer: PeerId,
        /// The piece.
        index: u64,
        /// Its bytes.
        buffer: PieceBuffer,
    },
    /// The source is done: stopped, or failed with `error`; `unfilled` are
    /// the orders it did not fill, buffers included.
    Ended {
        /// The source.
        peer: PeerId,
        /// Why it ended, unless it was told to stop.
        error: Option<NodeError>,
        /// Orders it did not fill.
        unfilled: Vec<Order>,
    },
}

/// One source of one download, run as a task: ask the peer for the file,
/// open the data connection, then fill the download's orders.
pub struct SourceTask {
    /// The peer.
    pub peer: PeerId,
    /// Where to reach it.
    pub addrs: Vec<Multiaddr>,
    /// The file.
    pub id: FileId,
    /// Its size.
    pub size: u64,
    /// The libp2p host, to ask for the transfer.
    pub host: Host,
    /// TLS for the data connection.
    pub tls: DataTls,
    /// Pieces to fetch, with their buffers.
    pub orders: mpsc::Receiver<Order>,
    /// Pieces ordered that are no longer wanted (another source sent them).
    pub cancels: mpsc::Receiver<u64>,
    /// Where this source reports.
    pub reports: mpsc::Sender<Report>,
    /// Fires when the download no longer wants this source (or stops).
    pub stop: CancellationToken,
    /// The rate limits it keeps to: the one every download shares, and its download's own.
    pub rates: [Arc<RateLimit>; 2],
}

/// Runs a source until the download stops it or it fails; always ends with [`Report::Ended`].
pub async fn run_source(mut task: SourceTask) {
    let mut pending: VecDeque<Order> = VecDeque::new();
    let outcome = task
        .stop
        .clone()
        .run_until_cancelled(serve_orders(&mut task, &mut pending))
        .await;
    let error = match outcome {
        Some(Ok(())) | None => None,
        Some(Err(e)) => Some(e),
    };
    task.orders.close();
    while let Ok(order) = task.orders.try_recv() {
        pending.push_back(order);
    }
    let _ = task
        .reports
        .send(Report::Ended {
            peer: task.peer,
            error,
            unfilled: pending.into(),
        })
        .await;
}

async fn serve_orders(
    task: &mut SourceTask,
    pending: &mut VecDeque<Order>,
) -> Result<(), NodeError> {
    let (stream, layout) = open_source(task).await?;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut stall_at = Instant::now() + STALL_TIMEOUT;
    loop {
        tokio::select! {
            order = task.orders.recv() => {
                let Some(order) = order else {
                    let _ = writer.shutdown().await;
                    return Ok(());
                };
                if pending.is_empty() {
                    stall_at = Instant::now() + STALL_TIMEOUT;
                }
                ask_for(&mut writer, &order).await?;
                pending.push_back(order);
                while let Ok(order) = task.orders.try_recv() {
                    ask_for(&mut writer, &order).await?;
                    pending.push_back(order);
                }
                timed("asking for pieces", async { writer.flush().await.map_err(NodeError::from) }).await?;
            }
            // Waiting for bytes is cancel-safe (they stay buffered); the frame is then read whole.
            ended = async { reader.fill_buf().await.map(|b| b.is_empty()) } => {
                if ended? {
                    return Err(NodeError::Transfer("the source closed the connection".into()));
                }
                if !read_frame(task, &mut reader, layout, pending).await? {
                    return Ok(());
                }
                stall_at = Instant::now() + STALL_TIMEOUT;
            }
            Some(index) = task.cancels.recv() => {
                if pending.iter().any(|o| o.index == index) {
                    let cancel = ClientFrame::Cancel { index }.encode();
                    timed("withdrawing a piece", async {
                        writer.write_all(&cancel).await?;
                        writer.flush().await.map_err(NodeError::from)
                    })
                    .await?;
                }
            }
            () = tokio::time::sleep_until(stall_at), if !pending.is_empty() => return Err(stalled()),
        }
    }
}

/// Reads one frame: a piece for the order that is due, or news of pieces;
/// false once the download no longer listens.
async fn read_frame(
    task: &SourceTask,
    reader: &mut BufReader<ReadHalf<DataStream>>,
    layout: PieceLayout,
    pending: &mut VecDeque<Order>,
) -> Result<bool, NodeError> {
    let header = stalling(read_header(reader, layout.piece_len())).await?;
    let report = if header.is_piece() {
        let Some(due) = pending.front_mut() else {
            return Err(NodeError::Transfer(
                "source sent a piece nobody asked for".into(),
            ));
        };
        let index = read_piece_body(reader, header.body_len as usize - 8, &mut due.buffer).await?;
        if index != due.index {
            return Err(NodeError::Transfer(format!(
                "source answered piece {index} when piece {} was due",
                due.index
            )));
        }
        for rate in &task.rates {
            rate.pace(due.buffer.len()).await;
        }
        let order = pending.pop_front().expect("a piece was due");
        Report::Piece {
            peer: task.peer,
            index,
            buffer: order.buffer,
        }
    } else {
        let body = stalling(read_body(reader, header)).await?;
        match ServerFrame::decode(header, &body).map_err(wire_error)? {
            ServerFrame::HaveMore { indices } => Report::Have {
                peer: task.peer,
                indices,
            },
            ServerFrame::Skipped { index } if pending.front().is_some_and(|o| o.index == index) => {
                let order = pending.pop_front().expect("an order was due");
                Report::Skipped {
                    peer: task.peer,
                    order,
                }
            }
            other => return Err(unexpected(other)),
        }
    };
    Ok(task.reports.send(report).await.is_ok())
}

/// Asks the peer for the file, connects, checks what it offers and fetches the tree.
async fn open_source(task: &SourceTask) -> Result<(DataStream, PieceLayout), NodeError> {
    let answer = task
        .host
        .request_transfer(task.peer, task.addrs.clone(), task.id)
        .await?;
    let Grant {
        ticket,
        data_port,
        piece_len,
        hints,
    } = granted(answer.response, task.size)?;
    let layout =
        PieceLayout::new(task.size, piece_len).map_err(|e| NodeError::Transfer(e.to_string()))?;
    let ip = answer
        .remote_ip
        .or_else(|| task.addrs.iter().find_map(ip_of))
        .ok_or_else(|| NodeError::Transfer("no IP address to open a data connection to".into()))?;
    let mut stream = timed(
        "connecting to the source",
        task.tls.connect(SocketAddr::new(ip, data_port), task.peer),
    )
    .await?;
    timed(
        "opening the transfer",
        open_transfer(&mut stream, ticket, &task.id, layout),
    )
    .await?;
    let outboard = timed(
        "fetching the piece tree",
        fetch_tree(&mut stream, layout, &task.id),
    )
    .await?;
    let have = timed(
        "learning which pieces it has",
        fetch_haves(&mut stream, layout),
    )
    .await?;
    let ready = Report::Ready {
        peer: task.peer,
        outboard,
        have,
        hints,
    };
    task.reports
        .send(ready)
        .await
        .map_err(|_| NodeError::Stopped)?;
    Ok((stream, layout))
}

async fn ask_for(stream: &mut WriteHalf<DataStream>, order: &Order) -> Result<(), NodeError> {
    let request = ClientFrame::GetPiece { index: order.index }.encode();
    timed("asking for a piece", async {
        stream.write_all(&request).await.map_err(NodeError::from)
    })
    .await
}

/// Runs one step before pieces flow, or one write, within [`STEP_TIMEOUT`].
async fn timed<T>(
    what: &str,
    step: impl std::future::Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    tokio::time::timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| {
            NodeError::Transfer(format!(
                "the source did not answer within {} s while {what}",
                STEP_TIMEOUT.as_secs()
            ))
        })?
}

/// What a grant gives the downloader.
pub struct Grant {
    /// The one-use ticket for the data connection.
    pub ticket: u64,
    /// The source's data port.
    pub data_port: u16,
    /// The source's piece length.
    pub piece_len: u64,
    /// Others the source named as fetching or holding the file.
    pub hints: Vec<String>,
}

/// The grant in a source's answer, or why there is none.
pub fn granted(response: TransferResponse, size: u64) -> Result<Grant, NodeError> {
    match response {
        TransferResponse::Granted {
            ticket,
            data_port,
            size: offered,
            piece_len,
            swarm,
            ..
        } if offered == size => Ok(Grant {
            ticket,
            data_port,
            piece_len,
            hints: swarm,
        }),
        TransferResponse::Granted { size: offered, .. } => Err(NodeError::Transfer(format!(
            "peer offers {offered} bytes for a file listed as {size} bytes"
        ))),
        TransferResponse::Rejected { reason } => {
            Err(NodeError::Refused(format!("rejected by peer: {reason}")))
        }
        TransferResponse::Busy => Err(NodeError::Busy(
            "the source is busy: all its upload slots are in use".into(),
        )),
        TransferResponse::NotFound => Err(NodeError::NotFound(
            "the peer no longer shares this file (or it changed since it was listed)".into(),
        )),
    }
}

fn stalled() -> NodeError {
    NodeError::Transfer(format!(
        "the source stopped sending (nothing for {} s)",
        STALL_TIMEOUT.as_secs()
    ))
}

/// Runs one read of a frame already begun; a source that sends nothing
/// for [`STALL_TIMEOUT`] has stalled.
async fn stalling<T>(
    read: impl std::future::Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    tokio::time::timeout(STALL_TIMEOUT, read)
        .await
        .map_err(|_| stalled())?
}

/// Reads the rest of a piece frame (its index, then `len` bytes) into `buffer`; returns its index.
async fn read_piece_body<R: AsyncRead + Unpin>(
    stream: &mut R,
    len: usize,
    buffer: &mut PieceBuffer,
) -> Result<u64, NodeError> {
    let mut index = [0u8; 8];
    stalling(async { Ok(stream.read_exact(&mut index).await?) }).await?;
    let body = buffer.fill(len);
    let mut filled = 0;
    while filled < len {
        let read = stalling(async { Ok(stream.read(&mut body[filled..]).await?) }).await?;
        if read == 0 {
            return Err(NodeError::Transfer(
                "the source closed the connection in the middle of a piece".into(),
            ));
        }
        filled += read;
    }
    Ok(PieceHeader::index(index))
}
