//! One source's side of a download, run as a task of its own: ask the peer
//! for the file, open the data connection, check the piece tree against the
//! id, learn which pieces the peer has (a partial source tells of more as
//! they land), then fetch the pieces the download orders (each with the
//! buffer to read it into) and report each one back.
//!
//! Every step has a time limit, a source that sends nothing for a few
//! seconds has stalled, and the task stops at once when its token fires;
//! orders it did not fill go back to the download with their buffers, so
//! another source fetches those pieces. A source that went silent (a step
//! or a read timed out, or the host saw it stop answering) says so when it
//! ends, so the download asks it again later rather than dropping it. It
//! never verifies or writes: the download does, and it never waits on the
//! remote side without a time limit.

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
use crate::net::reachability::is_public_ip;
use crate::transfer::data_channel::{
    self, read_body, read_header, wire_error, write_frame, DataStream, DataTls,
};
use crate::transfer::punch::{self, Rendezvous};
use crate::transfer::rate_limit::RateLimit;
use crate::views::{ConnectionPath, DataChannel, DataPath, NatMapping};
use crate::NodeError;

/// How long a source may go without sending a byte while a piece is due:
/// past it, its pieces go to the other sources.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit on each step before pieces flow: connecting, opening, the
/// tree, the have-map. (Asking has the host's own limits: ping and the
/// transfer request's timeout.)
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes of piece tree set aside before any arrive.
const TREE_RESERVE: usize = 1 << 20;
/// Bytes read from the data connection at once (pieces bypass it).
const READ_BUFFER: usize = 64 * 1024;
/// How long a direct data connection may take to open before the transfer
/// tries a data stream on the libp2p connection instead.
const DIRECT_DATA_PATIENCE: Duration = Duration::from_secs(5);
/// How long a data port may take to answer before the downloader asks the
/// sharer to connect back at the same time (a reachable port answers
/// within a round trip; a router in front of it never does).
const DIAL_BACK_AFTER: Duration = Duration::from_millis(500);
/// How long a downloader punches towards a sharer only a relay joins it
/// to, before the data goes on a stream through the relay.
const PUNCH_PATIENCE: Duration = Duration::from_secs(6);
/// How long the fan goes out before the sharer is asked to punch.
const FAN_HEAD_START: Duration = Duration::from_millis(50);

/// The time limits a source keeps to.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Each step before pieces flow, and each write.
    pub step: Duration,
    /// Silence while a piece is due.
    pub stall: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            step: STEP_TIMEOUT,
            stall: STALL_TIMEOUT,
        }
    }
}

/// Why a source ended early, and whether it went silent (rather than
/// refusing, closing or breaking the protocol).
#[derive(Debug)]
pub struct Failure {
    /// What happened.
    pub error: NodeError,
    /// The source stopped answering: worth asking again later.
    pub silent: bool,
}

impl From<NodeError> for Failure {
    fn from(error: NodeError) -> Self {
        Self {
            error,
            silent: false,
        }
    }
}

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
    // Memory grows with the leaves that arrive, not with what the size claims.
    let mut leaves = Vec::with_capacity((count * LEAF_LEN).min(TREE_RESERVE));
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
        /// How its data travels.
        path: DataPath,
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
        error: Option<Failure>,
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
    /// Its time limits.
    pub patience: Patience,
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

async fn serve_orders(task: &mut SourceTask, pending: &mut VecDeque<Order>) -> Result<(), Failure> {
    let (stream, layout) = open_source(task).await?;
    let patience = task.patience;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut stall_at = Instant::now() + patience.stall;
    loop {
        tokio::select! {
            order = task.orders.recv() => {
                let Some(order) = order else {
                    // A source that reads nothing would hold the close forever.
                    let _ = tokio::time::timeout(patience.step, writer.shutdown()).await;
                    return Ok(());
                };
                if pending.is_empty() {
                    stall_at = Instant::now() + patience.stall;
                }
                ask_for(&mut writer, &order, patience).await?;
                pending.push_back(order);
                while let Ok(order) = task.orders.try_recv() {
                    ask_for(&mut writer, &order, patience).await?;
                    pending.push_back(order);
                }
                timed(patience, "asking for pieces", async { writer.flush().await.map_err(NodeError::from) }).await?;
            }
            // Waiting for bytes is cancel-safe (they stay buffered); the frame is then read whole.
            ended = async { reader.fill_buf().await.map(|b| b.is_empty()) } => {
                if ended.map_err(NodeError::from)? {
                    return Err(NodeError::Transfer("the source closed the connection".into()).into());
                }
                if !read_frame(task, &mut reader, layout, pending).await? {
                    return Ok(());
                }
                stall_at = Instant::now() + patience.stall;
            }
            Some(index) = task.cancels.recv() => {
                if pending.iter().any(|o| o.index == index) {
                    let cancel = ClientFrame::Cancel { index }.encode();
                    timed(patience, "withdrawing a piece", async {
                        writer.write_all(&cancel).await?;
                        writer.flush().await.map_err(NodeError::from)
                    })
                    .await?;
                }
            }
            () = tokio::time::sleep_until(stall_at), if !pending.is_empty() => return Err(stalled(patience)),
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
) -> Result<bool, Failure> {
    let stall = task.patience.stall;
    let header = stalling(stall, read_header(reader, layout.piece_len())).await?;
    let report = if header.is_piece() {
        let Some(due) = pending.front_mut() else {
            return Err(NodeError::Transfer("source sent a piece nobody asked for".into()).into());
        };
        let len = header.body_len as usize - 8;
        let index = read_piece_body(reader, len, &mut due.buffer, stall).await?;
        if index != due.index {
            return Err(NodeError::Transfer(format!(
                "source answered piece {index} when piece {} was due",
                due.index
            ))
            .into());
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
        let body = stalling(stall, read_body(reader, header)).await?;
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
            other => return Err(unexpected(other).into()),
        }
    };
    Ok(task.reports.send(report).await.is_ok())
}

/// Asks the peer for the file, connects, checks what it offers and fetches the tree.
async fn open_source(task: &SourceTask) -> Result<(DataStream, PieceLayout), Failure> {
    let answer = match task
        .host
        .request_transfer(task.peer, task.addrs.clone(), task.id)
        .await
    {
        Ok(answer) => answer,
        Err(error) => {
            // The host knows whether the peer went quiet (pings or the request
            // timed out, a dial hung) or refused, closed or is gone.
            let silent = matches!(error, NodeError::PeerUnreachable(_))
                && task.host.stopped_answering(&task.peer);
            let error = match silent {
                true => NodeError::PeerUnreachable(format!(
                    "{} stopped answering while asked for the file",
                    task.peer
                )),
                false => error,
            };
            return Err(Failure { error, silent });
        }
    };
    let grant = granted(answer.response, task.size)?;
    let ip = answer
        .remote_ip
        .or_else(|| task.addrs.iter().find_map(ip_of));
    let (stream, path) = reach_source(task, answer.path, ip, &grant).await?;
    let place = SourcePlace {
        id: task.id,
        size: task.size,
    };
    let opened = open_on(stream, &place, &grant, task.patience).await?;
    let ready = Report::Ready {
        peer: task.peer,
        outboard: opened.outboard,
        have: opened.have,
        hints: grant.hints,
        path,
    };
    task.reports
        .send(ready)
        .await
        .map_err(|_| NodeError::Stopped)?;
    Ok((opened.stream, opened.layout))
}

/// Opens the data connection when a connection to the sharer that is not
/// relayed is open (or opens by hole punching within the host's patience)
/// and its data port can be reached, by a plain connect or with the sharer
/// connecting back at the same time (within [`DIRECT_DATA_PATIENCE`]); or
/// by punching, when only a relay joins the two or this peer's router
/// changes ports for every destination (a dial-back would then knock on a
/// port that router never opened); otherwise, or when that fails (a
/// firewall), a data stream on the libp2p connection. docs/PROTOCOL.md
/// tells the whole choice.
async fn reach_source(
    task: &SourceTask,
    answered_on: Option<ConnectionPath>,
    ip: Option<std::net::IpAddr>,
    grant: &Grant,
) -> Result<(DataStream, DataPath), Failure> {
    let reachability = task.host.reachability();
    let (best, relay) = task.host.prepare_data_path(task.peer).await?;
    // The answer may have come through a relay before hole punching was
    // done, or on a connection whose far end is recorded as no address.
    let ip = match answered_on {
        Some(ConnectionPath::Relayed) => None,
        _ => ip.filter(|ip| !ip.is_unspecified()),
    };
    let ip = ip.or_else(|| reachability.direct_ip(&task.peer));
    let worth_trying =
        best != ConnectionPath::Relayed && !reachability.is_data_port_closed(&task.peer);
    // Only towards the internet: on a LAN no router stands between the two.
    let ports_change_here =
        reachability.own_mapping() == NatMapping::Changes && ip.is_some_and(is_public_ip);
    let worth_punching = best == ConnectionPath::Relayed || ports_change_here;
    if let (true, Some(ip)) = (worth_trying, ip) {
        let addr = SocketAddr::new(ip, grant.data_port);
        let patience = DIRECT_DATA_PATIENCE.min(task.patience.step);
        let behind_router =
            best == ConnectionPath::HolePunched || answered_on == Some(ConnectionPath::Relayed);
        let knock = match ports_change_here {
            true => Knock::PlainOnly,
            false if behind_router => Knock::DialBackAtOnce,
            false => Knock::DialBackLater,
        };
        let connecting = connect_data(task, addr, grant.ticket, (best, knock));
        match tokio::time::timeout(patience, connecting).await {
            Ok(Ok((stream, connection))) => {
                let path = DataPath {
                    connection,
                    channel: DataChannel::Tcp,
                    relay: None,
                };
                return Ok((stream, path));
            }
            Ok(Err(e)) => tracing::info!(peer = %task.peer, "{e}; trying a data stream instead"),
            Err(_) => tracing::info!(
                peer = %task.peer, %addr,
                "the data connection did not open in time; trying a data stream instead"
            ),
        }
        if !worth_punching {
            reachability.data_port_closed(task.peer);
        }
    }
    if worth_punching && !reachability.is_data_port_closed(&task.peer) {
        // The punch has its own patience; this bounds the handshake after it.
        let punching = punch_source(task, grant, best);
        let limit = PUNCH_PATIENCE + task.patience.step.min(DIRECT_DATA_PATIENCE);
        let punched = tokio::time::timeout(limit, punching)
            .await
            .unwrap_or_else(|_| Err(NodeError::Transfer("the punched connection hung".into())));
        match punched {
            Ok(stream) => {
                let path = DataPath {
                    connection: ConnectionPath::HolePunched,
                    channel: DataChannel::Tcp,
                    relay: None,
                };
                return Ok((stream, path));
            }
            Err(e) => {
                tracing::info!(peer = %task.peer, "{e}; the data will go on a stream");
                reachability.data_port_closed(task.peer);
            }
        }
    }
    let stream = task
        .host
        .open_data_stream(task.peer, task.size, (best, relay))
        .await?;
    let path = DataPath {
        connection: best,
        channel: DataChannel::Stream,
        relay: relay.map(|r| r.to_string()),
    };
    Ok((stream, path))
}

/// When [`connect_data`] asks the sharer to connect back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Knock {
    /// After [`DIAL_BACK_AFTER`] without an answer.
    DialBackLater,
    /// At once: a router is known to stand in front of the sharer.
    DialBackAtOnce,
    /// Never: this peer's router changes ports for every destination, so
    /// the sharer would knock on a port it never opened. A plain connect
    /// gets [`DIAL_BACK_AFTER`].
    PlainOnly,
}

/// Connects to the sharer's data port at `addr`. When it does not answer
/// (as `knock` says), it asks the sharer, on the libp2p connection's
/// `path`, to connect back while it keeps connecting: each router then lets
/// the other side's packets in. Says whether the connection needed that.
async fn connect_data(
    task: &SourceTask,
    addr: SocketAddr,
    ticket: u64,
    (path, knock): (ConnectionPath, Knock),
) -> Result<(DataStream, ConnectionPath), NodeError> {
    let cannot = |e: std::io::Error| {
        NodeError::Transfer(format!("cannot open a data connection to {addr}: {e}"))
    };
    let local = data_channel::fresh_local_port(addr).map_err(cannot)?;
    let connecting = data_channel::connect_from(local, addr, DIRECT_DATA_PATIENCE, || false);
    tokio::pin!(connecting);
    let wait = match knock {
        Knock::DialBackAtOnce => Duration::ZERO,
        Knock::DialBackLater | Knock::PlainOnly => DIAL_BACK_AFTER,
    };
    let (tcp, connection) = match tokio::time::timeout(wait, &mut connecting).await {
        Ok(done) => (done.map_err(cannot)?, ConnectionPath::Direct),
        Err(_) if knock == Knock::PlainOnly => {
            return Err(NodeError::Transfer(format!(
                "the data port at {addr} did not answer, and this peer's router changes ports \
                 for every destination, so it cannot be connected back to; punching instead"
            )));
        }
        Err(_) => {
            // Held open until the connection forms: the sharer stops trying when it closes.
            let _asked = match ask_dial_back(task, path, ticket, local.port()).await {
                Ok(stream) => Some(stream),
                Err(e) => {
                    tracing::info!(peer = %task.peer, "cannot ask for a dial-back: {e}");
                    None
                }
            };
            (
                connecting.await.map_err(cannot)?,
                ConnectionPath::HolePunched,
            )
        }
    };
    Ok((task.tls.client(tcp, task.peer).await?, connection))
}

/// Asks the sharer, on a data stream on `path`, to connect to `port` from its data port.
async fn ask_dial_back(
    task: &SourceTask,
    path: ConnectionPath,
    ticket: u64,
    port: u16,
) -> Result<DataStream, NodeError> {
    ask_sharer(task, path, ClientFrame::DialBack { ticket, port }).await
}

/// Sends `frame` to the sharer on a new data stream on `path`, and keeps the stream.
async fn ask_sharer(
    task: &SourceTask,
    path: ConnectionPath,
    frame: ClientFrame,
) -> Result<DataStream, NodeError> {
    let mut stream = task
        .host
        .open_data_stream(task.peer, 0, (path, None))
        .await?;
    write_frame(&mut stream, &frame.encode()).await?;
    Ok(stream)
}

/// Opens the data connection when a router on one side changes ports for
/// every destination (so only a relay joins the two, or a dial-back cannot
/// reach this peer): both ends punch towards each other's public IP at
/// once ([`punch`]), asked on the libp2p connection's `path`. Needs both
/// IPs: the sharer's from its grant, this peer's as peers see it.
async fn punch_source(
    task: &SourceTask,
    grant: &Grant,
    path: ConnectionPath,
) -> Result<DataStream, NodeError> {
    let their_ip = grant
        .public_ip
        .filter(|ip| is_public_ip(*ip))
        .ok_or_else(|| NodeError::Transfer("the sharer knows no public IP of its own".into()))?;
    let own_ip = task
        .host
        .reachability()
        .own_public_ip()
        .ok_or_else(|| NodeError::Transfer("no peer has told this one its public IP".into()))?;
    let theirs = SocketAddr::new(their_ip, grant.data_port);
    let cannot =
        |e: std::io::Error| NodeError::Transfer(format!("cannot punch through to {their_ip}: {e}"));
    let local = data_channel::fresh_local_port(theirs).map_err(cannot)?;
    let rendezvous = Rendezvous {
        local,
        ip: their_ip,
        port: grant.data_port,
    };
    let punching = punch::punch(rendezvous, PUNCH_PATIENCE, || false);
    tokio::pin!(punching);
    if let Ok(early) = tokio::time::timeout(FAN_HEAD_START, &mut punching).await {
        return task.tls.client(early.map_err(cannot)?, task.peer).await;
    }
    let ask = ClientFrame::Punch {
        ticket: grant.ticket,
        ip: own_ip,
        port: local.port(),
    };
    let mut asked = ask_sharer(task, path, ask).await?;
    let tcp = tokio::select! {
        punched = &mut punching => punched.map_err(cannot)?,
        refused = refusal(&mut asked) => return Err(refused),
    };
    task.tls.client(tcp, task.peer).await
}

/// Waits for the sharer to refuse what was asked on `stream`; never
/// returns when it goes ahead (it closes the stream and punches).
async fn refusal(stream: &mut DataStream) -> NodeError {
    match read_server_frame(stream, 0).await {
        Ok(frame @ ServerFrame::Error { .. }) => unexpected(frame),
        _ => std::future::pending().await,
    }
}

/// Where a granted transfer is fetched from.
pub struct SourcePlace {
    /// The file.
    pub id: FileId,
    /// Its size.
    pub size: u64,
}

/// A data connection ready for piece requests.
pub struct Opened {
    /// The connection.
    pub stream: DataStream,
    /// How the source cuts the file.
    pub layout: PieceLayout,
    /// The piece tree, checked against the id.
    pub outboard: Outboard,
    /// The pieces the source has now.
    pub have: PieceSet,
}

/// Presents the ticket on an open data stream, and reads the tree and the
/// have-map, each step within `patience.step`.
pub async fn open_on(
    mut stream: DataStream,
    place: &SourcePlace,
    grant: &Grant,
    patience: Patience,
) -> Result<Opened, Failure> {
    let layout = PieceLayout::new(place.size, grant.piece_len)
        .map_err(|e| NodeError::Transfer(e.to_string()))?;
    timed(
        patience,
        "opening the transfer",
        open_transfer(&mut stream, grant.ticket, &place.id, layout),
    )
    .await?;
    let outboard = timed(
        patience,
        "fetching the piece tree",
        fetch_tree(&mut stream, layout, &place.id),
    )
    .await?;
    let have = timed(
        patience,
        "learning which pieces it has",
        fetch_haves(&mut stream, layout),
    )
    .await?;
    Ok(Opened {
        stream,
        layout,
        outboard,
        have,
    })
}

async fn ask_for(
    stream: &mut WriteHalf<DataStream>,
    order: &Order,
    patience: Patience,
) -> Result<(), Failure> {
    let request = ClientFrame::GetPiece { index: order.index }.encode();
    timed(patience, "asking for a piece", async {
        stream.write_all(&request).await.map_err(NodeError::from)
    })
    .await
}

/// Runs one step before pieces flow, or one write, within `patience.step`;
/// running out of time is going silent.
async fn timed<T>(
    patience: Patience,
    what: &str,
    step: impl std::future::Future<Output = Result<T, NodeError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(patience.step, step).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(Failure {
            error: NodeError::Transfer(format!(
                "the source did not answer within {} while {what}",
                seconds(patience.step)
            )),
            silent: true,
        }),
    }
}

/// A duration for people: whole seconds, or milliseconds below one.
fn seconds(d: Duration) -> String {
    match d.as_secs() {
        0 => format!("{} ms", d.as_millis()),
        s => format!("{s} s"),
    }
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
    /// The source's public IP, as it says peers see it.
    pub public_ip: Option<std::net::IpAddr>,
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
            public_ip,
            ..
        } if offered == size => Ok(Grant {
            ticket,
            data_port,
            piece_len,
            hints: swarm,
            public_ip,
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

fn stalled(patience: Patience) -> Failure {
    Failure {
        error: NodeError::Transfer(format!(
            "the source stopped sending (nothing for {})",
            seconds(patience.stall)
        )),
        silent: true,
    }
}

/// Runs one read of a frame already begun; a source that sends nothing
/// for `stall` has stalled.
async fn stalling<T>(
    stall: Duration,
    read: impl std::future::Future<Output = Result<T, NodeError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(stall, read).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(stalled(Patience {
            stall,
            ..Patience::default()
        })),
    }
}

/// Reads the rest of a piece frame (its index, then `len` bytes) into `buffer`; returns its index.
async fn read_piece_body<R: AsyncRead + Unpin>(
    stream: &mut R,
    len: usize,
    buffer: &mut PieceBuffer,
    stall: Duration,
) -> Result<u64, Failure> {
    let mut index = [0u8; 8];
    stalling(stall, async { Ok(stream.read_exact(&mut index).await?) }).await?;
    let body = buffer.fill(len);
    let mut filled = 0;
    while filled < len {
        let read = stalling(stall, async { Ok(stream.read(&mut body[filled..]).await?) }).await?;
        if read == 0 {
            return Err(NodeError::Transfer(
                "the source closed the connection in the middle of a piece".into(),
            )
            .into());
        }
        filled += read;
    }
    Ok(PieceHeader::index(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use peershare_core::wire::data::HEADER_LEN;
    use tokio::net::TcpListener;

    const SIZE: u64 = 3 << 20;
    const PIECE_LEN: u64 = 1 << 20;
    /// Short limits, so a silent source is caught in a test's time.
    const QUICK: Patience = Patience {
        step: Duration::from_millis(500),
        stall: Duration::from_millis(500),
    };

    /// What the source does once TLS is up, after reading the client's opening frames.
    #[derive(Clone, Copy)]
    enum Then {
        /// Sends the header of its Ready frame, then nothing.
        HeaderOnly,
        /// Sends a whole Ready frame, then nothing (no tree).
        ReadyOnly,
    }

    fn place() -> SourcePlace {
        SourcePlace {
            id: FileId::from(blake3::hash(b"a file")),
            size: SIZE,
        }
    }

    fn grant() -> Grant {
        Grant {
            ticket: 7,
            data_port: 0,
            piece_len: PIECE_LEN,
            hints: Vec::new(),
            public_ip: None,
        }
    }

    /// Opens a transfer with `QUICK` limits; returns the failure and how long it took.
    async fn open_against(addr: std::net::SocketAddr, peer: PeerId) -> (Failure, Duration) {
        let mine = DataTls::new(&Keypair::generate_ed25519()).expect("tls");
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            let stream = timed(QUICK, "connecting to the source", mine.connect(addr, peer)).await?;
            open_on(stream, &place(), &grant(), QUICK).await
        })
        .await
        .expect("the open ends by itself, within its step limits");
        match outcome {
            Ok(_) => panic!("a silent source cannot open"),
            Err(failure) => (failure, started.elapsed()),
        }
    }

    #[tokio::test]
    async fn a_source_that_accepts_and_never_sends_fails_the_connect_step() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts TCP and then says nothing, not even the TLS handshake.
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(socket);
        });
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let (failure, took) = open_against(addr, peer).await;
        held.abort();
        assert!(failure.silent, "silence is reported as such: {failure:?}");
        let text = failure.error.to_string();
        assert!(
            text.contains("connecting to the source"),
            "the error names the step: {text}"
        );
        assert!(
            took < Duration::from_secs(10),
            "ended by the step limit: {took:?}"
        );
    }

    /// A data listener that completes TLS as `key`, reads the client's
    /// opening frames, then does `then` and falls silent.
    async fn silent_source(key: Keypair, then: Then) -> (std::net::SocketAddr, PeerId) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = key.public().to_peer_id();
        let tls = DataTls::new(&key).expect("tls");
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (mut stream, _) = tls.accept(socket).await.expect("handshake");
            // Open (8-byte body), GetTree and WatchHaves, all sent at once.
            let mut opening = vec![0u8; 3 * HEADER_LEN + 8];
            stream.read_exact(&mut opening).await.unwrap();
            let ready = ServerFrame::Ready {
                id: FileId::from(blake3::hash(b"a file")),
                size: SIZE,
                piece_len: PIECE_LEN,
            }
            .encode();
            let sent = match then {
                Then::HeaderOnly => &ready[..HEADER_LEN],
                Then::ReadyOnly => &ready[..],
            };
            stream.write_all(sent).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        });
        (addr, peer)
    }

    #[tokio::test]
    async fn a_source_that_sends_a_header_and_stops_fails_the_open_step() {
        let (addr, peer) = silent_source(Keypair::generate_ed25519(), Then::HeaderOnly).await;
        let (failure, took) = open_against(addr, peer).await;
        assert!(failure.silent, "{failure:?}");
        let text = failure.error.to_string();
        assert!(
            text.contains("opening the transfer") && text.contains("500 ms"),
            "the error names the step and its limit: {text}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test]
    async fn a_source_that_grants_and_sends_no_tree_fails_the_tree_step() {
        let (addr, peer) = silent_source(Keypair::generate_ed25519(), Then::ReadyOnly).await;
        let (failure, took) = open_against(addr, peer).await;
        assert!(failure.silent, "{failure:?}");
        let text = failure.error.to_string();
        assert!(
            text.contains("fetching the piece tree"),
            "the error names the step: {text}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_read_is_silence_after_the_stall_limit() {
        let (mut quiet, _other_end) = tokio::io::duplex(64);
        let started = Instant::now();
        let failure = stalling(STALL_TIMEOUT, async {
            let mut byte = [0u8; 1];
            quiet.read_exact(&mut byte).await?;
            Ok(())
        })
        .await
        .expect_err("nothing arrives");
        assert!(failure.silent);
        assert!(failure.error.to_string().contains("nothing for 5 s"));
        assert_eq!(started.elapsed(), STALL_TIMEOUT);
    }
}
