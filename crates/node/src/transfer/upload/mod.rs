//! Serving pieces on the data connection (or on a data stream over the
//! libp2p connection, when the downloader could not make one): accept it
//! (or, when a downloader asks on a data stream, connect back to it from the
//! data port, which gets through most routers on both sides),
//! check its ticket against the [`UploadGate`], then answer tree, have and piece
//! requests in order, optionally paced by the upload rate limit. For a
//! download in progress (a partial source) it also pushes each newly
//! verified piece to a downloader that asked to watch.
//!
//! It reads one piece at a time into a reused buffer, so an upload holds at
//! most one piece in memory however large the file. Before every piece it
//! checks the file is still the one that was hashed (or, for a partial
//! file, that the piece is verified here), so a file edited in place is
//! never served under its old id.

pub mod active;
pub mod gate;
pub mod offer;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use peershare_core::outboard::{read_exact_at, LEAF_LEN};
use peershare_core::wire::data::{
    have_frames, ClientFrame, ErrorCode, PieceHeader, ServerFrame, MAX_HAVE_MORE,
    MAX_LEAVES_PER_FRAME,
};
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::task::AbortOnDropHandle;

use self::active::{ActiveUploads, ListedUpload};
use self::offer::Offer;
use crate::lifetime::Lifetime;
use crate::net::reachability::{is_public_ip, Reachability};
use crate::transfer::data_channel::{
    self, read_body, read_header, wire_error, write_frame, DataStream, DataTls,
};
use crate::transfer::punch::{self, PunchBudget, Rendezvous};
use crate::transfer::rate_limit::RateLimit;
use crate::transfer::upload::gate::UploadGate;
use crate::views::{ConnectionPath, DataChannel, DataPath};
use crate::NodeError;

/// How long a new data connection may take to present its ticket.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a sharer keeps connecting back to a downloader that asked it to
/// (the downloader waits about as long before it tries a data stream).
const DIAL_BACK_PATIENCE: Duration = Duration::from_secs(5);
/// How long a sharer punches towards a downloader that asked it to (see
/// [`punch`]; the downloader punches about as long).
const PUNCH_PATIENCE: Duration = Duration::from_secs(5);
/// Data streams that have not presented a valid ticket yet, at most, over
/// every peer: each holds a task until its ticket arrives or times out.
const UNPROVEN_STREAMS: usize = 64;
/// The same, for one peer: one peer cannot take every place.
const UNPROVEN_STREAMS_PER_PEER: usize = 4;
/// How long an upload waits for the next request before giving up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Requests read ahead of their answers (each is a few bytes).
const REQUEST_QUEUE: usize = 64;
/// How long one piece may take to be written to a downloader: one that
/// stops reading must not hold an upload slot the others wait for.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every upload connection needs.
#[derive(Clone)]
pub struct UploadService {
    /// TLS bound to this peer's key.
    pub tls: DataTls,
    /// Where the data listener listens; dial-backs connect from there.
    pub data_addr: SocketAddr,
    /// Tickets and slots.
    pub gate: UploadGate,
    /// The upload rate limit shared by every upload.
    pub rate: Arc<RateLimit>,
    /// Where running uploads are listed.
    pub uploads: ActiveUploads,
    /// Owns every upload connection; ending it closes them.
    pub lifetime: Lifetime,
    /// What punches asked by downloaders may cost.
    pub punches: PunchBudget,
}

/// Accepts data connections until the task is dropped, one task per connection.
pub async fn serve(listener: TcpListener, service: UploadService) {
    // Out of descriptors, accept fails again at once: say so every 10 s, not 10 times a second.
    let mut failures = peershare_core::conn_limit::LogEvery::new(Duration::from_secs(10));
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                if let Some(held_back) = failures.hit() {
                    tracing::warn!(held_back, "data listener cannot accept: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        let path = DataPath {
            connection: ConnectionPath::Direct,
            channel: DataChannel::Tcp,
            relay: None,
        };
        service.lifetime.clone().spawn(async move {
            match serve_connection(tcp, path, service, ()).await {
                Ok(()) => tracing::debug!(%remote, "upload finished"),
                Err(e) => tracing::info!(%remote, "upload ended: {e}"),
            }
        });
    }
}

/// Accepts data streams other peers open on the libp2p connection (their
/// direct data connection could not be made), one task per stream.
pub async fn serve_streams(
    mut incoming: libp2p_stream::IncomingStreams,
    reachability: Reachability,
    service: UploadService,
) {
    use futures::StreamExt;
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let unproven = UnprovenStreams::default();
    while let Some((peer, stream)) = incoming.next().await {
        let Some(permit) = unproven.admit(peer) else {
            tracing::info!(%peer, "too many data streams without a ticket; dropping one");
            continue;
        };
        let service = service.clone();
        let (connection, relay) = reachability
            .path_to(&peer)
            .unwrap_or((ConnectionPath::Direct, None));
        let path = DataPath {
            connection,
            channel: DataChannel::Stream,
            relay: relay.map(|r| r.to_string()),
        };
        let reachability = reachability.clone();
        service.lifetime.clone().spawn(async move {
            let stream: DataStream = Box::new(stream.compat());
            let served = serve_data_stream(stream, (peer, path), service, permit, reachability);
            match served.await {
                Ok(()) => tracing::debug!(%peer, "upload over a data stream finished"),
                Err(e) => tracing::info!(%peer, "upload over a data stream ended: {e}"),
            }
        });
    }
}

/// Data streams that have not shown a valid ticket yet, counted in total and per peer.
#[derive(Clone, Default)]
struct UnprovenStreams(Arc<Mutex<HashMap<PeerId, usize>>>);

/// One admitted stream's place, given back when dropped.
struct Unproven {
    streams: UnprovenStreams,
    peer: PeerId,
}

impl UnprovenStreams {
    /// A place for one more stream from `peer`, unless the limits are reached.
    fn admit(&self, peer: PeerId) -> Option<Unproven> {
        let mut counts = self.0.lock().expect("unproven streams lock");
        let total: usize = counts.values().sum();
        let mine = counts.entry(peer).or_default();
        if total >= UNPROVEN_STREAMS || *mine >= UNPROVEN_STREAMS_PER_PEER {
            return None;
        }
        *mine += 1;
        Some(Unproven {
            streams: self.clone(),
            peer,
        })
    }
}

impl Drop for Unproven {
    fn drop(&mut self) {
        let mut counts = self.streams.0.lock().expect("unproven streams lock");
        if let Some(count) = counts.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

async fn serve_connection<Permit>(
    tcp: tokio::net::TcpStream,
    path: DataPath,
    service: UploadService,
    unproven: Permit,
) -> Result<(), NodeError> {
    let (mut stream, peer) = tokio::time::timeout(OPEN_TIMEOUT, service.tls.accept(tcp))
        .await
        .map_err(|_| NodeError::Transfer("handshake timed out".into()))??;
    match read_opening(&mut stream).await? {
        Opening::Open(ticket) => {
            drop(unproven);
            serve_ticket(stream, ticket, (peer, path), service).await
        }
        Opening::DialBack { .. } | Opening::Punch { .. } => {
            let msg = "a dial-back or punch is asked on a data stream, not on a data connection";
            refuse(&mut stream, ErrorCode::Protocol, msg).await
        }
    }
}

/// Serves one data stream on the libp2p connection to `peer`, which came
/// by `path`: the transfer itself, or a dial-back to the downloader's data
/// port; `unproven` is held until a ticket checks out.
async fn serve_data_stream(
    mut stream: DataStream,
    (peer, path): (PeerId, DataPath),
    service: UploadService,
    unproven: Unproven,
    reachability: Reachability,
) -> Result<(), NodeError> {
    match read_opening(&mut stream).await? {
        Opening::Open(ticket) => {
            drop(unproven);
            serve_ticket(stream, ticket, (peer, path), service).await
        }
        Opening::DialBack { ticket, port } => {
            drop(stream);
            let to = (peer, ticket, port);
            dial_back(to, service, unproven, &reachability).await
        }
        Opening::Punch { ticket, ip, port } => {
            let asked = punch_back((peer, ticket), (ip, port), &service);
            let permit = match asked {
                Ok(permit) => permit,
                Err(e) => {
                    refuse(&mut stream, ErrorCode::Protocol, &e.to_string()).await?;
                    return Err(e);
                }
            };
            drop(stream);
            let rendezvous = Rendezvous {
                local: service.data_addr,
                ip,
                port,
            };
            let gate = service.gate.clone();
            let used = move || !gate.holds(ticket, &peer);
            // Every connection that forms is served: the downloader keeps
            // one of them, maybe not the first seen here.
            let mut unproven = Some(unproven);
            let serve_each = |tcp: tokio::net::TcpStream| {
                tracing::debug!(%peer, remote = ?tcp.peer_addr().ok(), "punch connected");
                let path = DataPath {
                    connection: ConnectionPath::HolePunched,
                    channel: DataChannel::Tcp,
                    relay: None,
                };
                let served = serve_connection(tcp, path, service.clone(), unproven.take());
                service.lifetime.spawn(async move {
                    if let Err(e) = served.await {
                        tracing::debug!(%peer, "a punched connection ended: {e}");
                    }
                });
                punch::Flow::More
            };
            let ended = punch::punch_each(rendezvous, PUNCH_PATIENCE, used, serve_each).await;
            drop(permit);
            tracing::debug!(%peer, %ip, "punch ended: {ended}");
            Ok(())
        }
    }
}

/// Whether a punch asked by `peer` may go ahead: only for a ticket granted
/// to it and unused, only towards a public IP, and only within the
/// [`PunchBudget`] (the IP cannot be checked: the two are joined through a
/// relay).
fn punch_back(
    (peer, ticket): (PeerId, u64),
    (ip, port): (std::net::IpAddr, u16),
    service: &UploadService,
) -> Result<punch::PunchPermit, NodeError> {
    if port == 0 || !service.gate.holds(ticket, &peer) {
        return Err(NodeError::Transfer(
            "punch asked without a valid ticket".into(),
        ));
    }
    if !is_public_ip(ip) {
        return Err(NodeError::Transfer(format!(
            "punch asked towards {ip}, which is no public address"
        )));
    }
    service.punches.take().ok_or_else(|| {
        NodeError::Transfer("too many punches lately; the data will come on a stream".into())
    })
}

/// Connects from the data port to `port` at the address `peer` is seen at
/// on a direct libp2p connection, while the downloader connects to the data
/// port; then serves the transfer there as on any data connection.
///
/// Only for a ticket granted to `peer` and unused, and only to where `peer`
/// itself is: a dial-back cannot be aimed at anybody else. It stops as soon
/// as the ticket is used (the downloader's own connection got in).
async fn dial_back(
    (peer, ticket, port): (PeerId, u64, u16),
    service: UploadService,
    unproven: Unproven,
    reachability: &Reachability,
) -> Result<(), NodeError> {
    if port == 0 || !service.gate.holds(ticket, &peer) {
        return Err(NodeError::Transfer(
            "dial-back asked without a valid ticket".into(),
        ));
    }
    let ip = reachability.direct_ip(&peer).ok_or_else(|| {
        NodeError::Transfer("dial-back asked with no direct connection to the peer".into())
    })?;
    let remote = SocketAddr::new(ip, port);
    let gate = service.gate.clone();
    let used = move || !gate.holds(ticket, &peer);
    let tcp = data_channel::connect_from(service.data_addr, remote, DIAL_BACK_PATIENCE, used)
        .await
        .map_err(|e| NodeError::Transfer(format!("dial-back to {remote} failed: {e}")))?;
    tracing::debug!(%peer, %remote, "dial-back connected");
    let path = DataPath {
        connection: ConnectionPath::HolePunched,
        channel: DataChannel::Tcp,
        relay: None,
    };
    serve_connection(tcp, path, service, unproven).await
}

/// Serves the transfer `ticket` names on `stream` from `peer` (already authenticated).
async fn serve_ticket(
    mut stream: DataStream,
    ticket: u64,
    (peer, path): (PeerId, DataPath),
    service: UploadService,
) -> Result<(), NodeError> {
    let Some((file, _slot)) = service.gate.redeem(ticket, &peer) else {
        return refuse(
            &mut stream,
            ErrorCode::BadTicket,
            "unknown or expired ticket",
        )
        .await;
    };
    let handle = match &file {
        // Never through a link, and only the very file that was hashed.
        Offer::Whole(shared) => shared.open_unchanged(),
        Offer::Partial(_) => open_no_follow(file.path()),
    };
    let handle = match handle {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(%peer, name = %file.name(), "not serving: {e}");
            let msg = format!("{} cannot be served now: {e}", file.name());
            return refuse(&mut stream, ErrorCode::NotFound, &msg).await;
        }
    };
    tracing::info!(%peer, name = %file.name(), "upload started");
    let listed = service.uploads.start(peer, &file, path);
    let ready = ServerFrame::Ready {
        id: file.id(),
        size: file.size(),
        piece_len: file.outboard().layout().piece_len(),
    };
    write_frame(&mut stream, &ready.encode()).await?;
    let pacing = Pacing {
        rate: service.rate,
        slots: service.gate.piece_slots(),
    };
    Upload::new(file, handle, stream, peer, listed, pacing)
        .run()
        .await
}

/// The first frame of a data connection or stream.
enum Opening {
    /// The ticket: serve the transfer here.
    Open(u64),
    /// Connect back to the downloader's `port` and serve the transfer there.
    DialBack { ticket: u64, port: u16 },
    /// Punch towards the downloader at `ip` and `port`, and serve the transfer there.
    Punch {
        ticket: u64,
        ip: std::net::IpAddr,
        port: u16,
    },
}

/// Reads the first frame, within [`OPEN_TIMEOUT`].
async fn read_opening(stream: &mut DataStream) -> Result<Opening, NodeError> {
    let read = async {
        let header = read_header(stream, 0).await?;
        let body = read_body(stream, header).await?;
        match ClientFrame::decode(header, &body) {
            Ok(ClientFrame::Open { ticket }) => Ok(Opening::Open(ticket)),
            Ok(ClientFrame::DialBack { ticket, port }) => Ok(Opening::DialBack { ticket, port }),
            Ok(ClientFrame::Punch { ticket, ip, port }) => Ok(Opening::Punch { ticket, ip, port }),
            _ => Err(NodeError::Transfer(
                "first frame was neither Open, DialBack nor Punch".into(),
            )),
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, read)
        .await
        .map_err(|_| NodeError::Transfer("no ticket in time".into()))?
}

async fn refuse<W: AsyncWrite + Unpin>(
    stream: &mut W,
    code: ErrorCode,
    message: &str,
) -> Result<(), NodeError> {
    let frame = ServerFrame::Error {
        code,
        message: message.into(),
    };
    write_frame(stream, &frame.encode()).await?;
    let _ = stream.shutdown().await;
    Err(NodeError::Transfer(message.into()))
}

/// Pieces asked on one connection and not answered yet, and those of them
/// the downloader withdrew (it got them elsewhere). Shared by the reader,
/// which sees a withdrawal as soon as it arrives, and the answering loop.
#[derive(Default)]
struct Withdrawals {
    unanswered: HashMap<u64, u32>,
    withdrawn: HashSet<u64>,
}

impl Withdrawals {
    fn asked(&mut self, index: u64) {
        *self.unanswered.entry(index).or_default() += 1;
    }

    /// A cancel counts only for a piece asked and not answered yet, so the
    /// set stays as small as the requests read ahead.
    fn cancel(&mut self, index: u64) {
        if self.unanswered.contains_key(&index) {
            self.withdrawn.insert(index);
        }
    }

    /// Piece `index` is being answered now: true if it was withdrawn.
    fn answering(&mut self, index: u64) -> bool {
        if let Some(n) = self.unanswered.get_mut(&index) {
            *n -= 1;
            if *n == 0 {
                self.unanswered.remove(&index);
            }
        }
        self.withdrawn.remove(&index)
    }
}

/// Reads the downloader's requests into `requests` until the stream ends
/// (the channel then closes) or breaks the protocol (an error is sent last).
/// Cancels are taken here, at once, not queued behind the requests they withdraw.
async fn read_requests(
    mut reader: ReadHalf<DataStream>,
    requests: mpsc::Sender<Result<ClientFrame, NodeError>>,
    withdrawals: Arc<Mutex<Withdrawals>>,
) {
    loop {
        let frame = match read_header(&mut reader, 0).await {
            Err(NodeError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
            Err(e) => Err(e),
            Ok(header) => match read_body(&mut reader, header).await {
                Ok(body) => ClientFrame::decode(header, &body).map_err(wire_error),
                Err(e) => Err(e),
            },
        };
        match frame {
            Ok(ClientFrame::Cancel { index }) => {
                withdrawals.lock().expect("withdrawals lock").cancel(index);
                continue;
            }
            Ok(ClientFrame::GetPiece { index }) => {
                withdrawals.lock().expect("withdrawals lock").asked(index)
            }
            _ => {}
        }
        let broken = frame.is_err();
        if requests.send(frame).await.is_err() || broken {
            return;
        }
    }
}

/// A downloader watching a partial file: the change feed and how far it was told.
struct Watching {
    changes: watch::Receiver<u64>,
    told: usize,
}

/// What paces every upload: the shared rate limit and the upload slots.
struct Pacing {
    rate: Arc<RateLimit>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// One granted upload on one connection.
struct Upload {
    file: Offer,
    handle: Arc<std::fs::File>,
    writer: WriteHalf<DataStream>,
    requests: mpsc::Receiver<Result<ClientFrame, NodeError>>,
    withdrawals: Arc<Mutex<Withdrawals>>,
    _reader: AbortOnDropHandle<()>,
    peer: PeerId,
    pacing: Pacing,
    buffer: Vec<u8>,
    listed: ListedUpload,
    watching: Option<Watching>,
    /// The have-map was sent (it is sent at most once per connection).
    watched: bool,
}

impl Upload {
    fn new(
        file: Offer,
        handle: std::fs::File,
        stream: DataStream,
        peer: PeerId,
        listed: ListedUpload,
        pacing: Pacing,
    ) -> Self {
        let capacity = PieceHeader::LEN + file.outboard().layout().piece_len() as usize;
        let (reader, writer) = tokio::io::split(stream);
        let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
        let withdrawals = Arc::new(Mutex::new(Withdrawals::default()));
        let reader = AbortOnDropHandle::new(tokio::spawn(read_requests(
            reader,
            requests_tx,
            withdrawals.clone(),
        )));
        Self {
            file,
            handle: Arc::new(handle),
            writer,
            requests,
            withdrawals,
            _reader: reader,
            peer,
            pacing,
            buffer: Vec::with_capacity(capacity),
            listed,
            watching: None,
            watched: false,
        }
    }

    async fn run(mut self) -> Result<(), NodeError> {
        loop {
            let request = tokio::select! {
                request = tokio::time::timeout(IDLE_TIMEOUT, self.requests.recv()) => request,
                () = next_change(&mut self.watching) => {
                    self.tell_new_pieces().await?;
                    continue;
                }
            };
            let frame = match request {
                Err(_) => return Err(NodeError::Transfer("downloader went quiet".into())),
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => frame?,
            };
            match frame {
                ClientFrame::GetTree => self.send_tree().await?,
                ClientFrame::GetPiece { index } => self.answer_piece(index).await?,
                // Taken by the reader; never queued.
                ClientFrame::Cancel { .. } => {}
                ClientFrame::WatchHaves if self.watched => {
                    // Once per connection: a bitmap per 5-byte request would be cheap amplification.
                    let msg = "the have-map was already sent on this connection";
                    return refuse(&mut self.writer, ErrorCode::Protocol, msg).await;
                }
                ClientFrame::WatchHaves => self.send_haves().await?,
                ClientFrame::Open { .. }
                | ClientFrame::DialBack { .. }
                | ClientFrame::Punch { .. } => {
                    let msg = "unexpected frame after Open";
                    return refuse(&mut self.writer, ErrorCode::Protocol, msg).await;
                }
            }
        }
    }

    async fn send_tree(&mut self) -> Result<(), NodeError> {
        let leaves = self.file.outboard().leaf_bytes();
        for (n, run) in leaves.chunks(MAX_LEAVES_PER_FRAME * LEAF_LEN).enumerate() {
            let frame = ServerFrame::Tree {
                first: (n * MAX_LEAVES_PER_FRAME) as u64,
                leaves: run.to_vec(),
            };
            self.writer.write_all(&frame.encode()).await?;
        }
        self.writer.flush().await?;
        Ok(())
    }

    /// Sends which pieces are here; for a partial file, new ones follow as they land.
    async fn send_haves(&mut self) -> Result<(), NodeError> {
        self.watched = true;
        if let Offer::Partial(partial) = &self.file {
            // Subscribed before the snapshot, so no piece lands unseen in between.
            let mut changes = partial.subscribe();
            changes.borrow_and_update();
            self.watching = Some(Watching { changes, told: 0 });
        }
        let (have, told) = self.file.have();
        if let Some(watching) = &mut self.watching {
            watching.told = told;
        }
        for frame in have_frames(&have) {
            self.writer.write_all(&frame.encode()).await?;
        }
        self.writer.flush().await?;
        Ok(())
    }

    /// Tells a watching downloader of the pieces that landed since it was last told.
    async fn tell_new_pieces(&mut self) -> Result<(), NodeError> {
        let (Offer::Partial(partial), Some(watching)) = (&self.file, &mut self.watching) else {
            return Ok(());
        };
        if partial.is_withdrawn() {
            let msg = "the download of this file stopped here";
            return refuse(&mut self.writer, ErrorCode::NotFound, msg).await;
        }
        let (new, told) = partial.landed_since(watching.told);
        watching.told = told;
        for run in new.chunks(MAX_HAVE_MORE) {
            let frame = ServerFrame::HaveMore {
                indices: run.to_vec(),
            };
            self.writer.write_all(&frame.encode()).await?;
        }
        self.writer.flush().await?;
        Ok(())
    }

    /// Answers a GetPiece: the piece, or `Skipped` if the downloader withdrew it.
    async fn answer_piece(&mut self, index: u64) -> Result<(), NodeError> {
        let withdrawn = self
            .withdrawals
            .lock()
            .expect("withdrawals lock")
            .answering(index);
        if !withdrawn {
            return self.send_piece(index).await;
        }
        let frame = ServerFrame::Skipped { index };
        write_frame(&mut self.writer, &frame.encode()).await
    }

    async fn send_piece(&mut self, index: u64) -> Result<(), NodeError> {
        let layout = self.file.outboard().layout();
        if index >= layout.piece_count() {
            let msg = format!("piece {index} does not exist");
            return refuse(&mut self.writer, ErrorCode::Protocol, &msg).await;
        }
        if let Some((code, msg)) = self.cannot_serve(index) {
            return refuse(&mut self.writer, code, &msg).await;
        }
        // Taken per piece and given back after it, first come first served.
        let _slot = self
            .pacing
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| NodeError::Stopped)?;
        let range = layout.piece_range(index);
        let len = (range.end - range.start) as usize;
        let mut buffer = std::mem::take(&mut self.buffer);
        let handle = self.handle.clone();
        let read = tokio::task::spawn_blocking(move || {
            // Resizing only ever grows once: zero-filling every piece costs measurable CPU.
            buffer.resize(PieceHeader::LEN + len, 0);
            buffer[..PieceHeader::LEN].copy_from_slice(&PieceHeader::encode(index, len));
            let result = read_exact_at(&handle, &mut buffer[PieceHeader::LEN..], range.start);
            (buffer, result)
        })
        .await
        .map_err(|e| NodeError::Transfer(e.to_string()))?;
        self.buffer = read.0;
        if let Err(e) = read.1 {
            tracing::warn!(peer = %self.peer, "cannot read {}: {e}", self.file.path().display());
            return refuse(
                &mut self.writer,
                ErrorCode::Internal,
                "the sharer cannot read the file",
            )
            .await;
        }
        self.pacing.rate.pace(self.buffer.len()).await;
        let write = async {
            self.writer.write_all(&self.buffer).await?;
            self.writer.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| NodeError::Transfer("the downloader stopped reading".into()))??;
        self.listed.sent(len as u64);
        Ok(())
    }

    /// Why piece `index` may not be sent now, if it may not.
    fn cannot_serve(&self, index: u64) -> Option<(ErrorCode, String)> {
        match &self.file {
            Offer::Whole(file) => {
                let unchanged = self.handle.metadata().is_ok_and(|m| file.is_unchanged(&m));
                (!unchanged).then(|| {
                    let msg = "the file changed since it was hashed; it is no longer shared under this id";
                    (ErrorCode::NotFound, msg.to_string())
                })
            }
            Offer::Partial(partial) if partial.is_withdrawn() => Some((
                ErrorCode::NotFound,
                "the download of this file stopped here".into(),
            )),
            Offer::Partial(partial) => (!partial.has(index)).then(|| {
                let msg =
                    format!("piece {index} is not verified here yet; ask only for pieces it has");
                (ErrorCode::Protocol, msg)
            }),
        }
    }
}

/// Waits for a watched partial file to change; never completes when none is watched.
async fn next_change(watching: &mut Option<Watching>) {
    let Some(w) = watching else {
        return std::future::pending().await;
    };
    if w.changes.changed().await.is_err() {
        std::future::pending().await
    }
}

/// Opens `path` for reading without following a link.
fn open_no_follow(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pieces_asked_and_unanswered_can_be_withdrawn_and_each_once() {
        let mut w = Withdrawals::default();
        w.cancel(3);
        w.asked(3);
        assert!(
            !w.answering(3),
            "a cancel before the request does not count"
        );
        w.asked(5);
        w.asked(5);
        w.cancel(5);
        assert!(w.answering(5), "the first answer is skipped");
        assert!(!w.answering(5), "the second request is served");
        assert!(w.unanswered.is_empty() && w.withdrawn.is_empty());
        w.cancel(5);
        assert!(w.withdrawn.is_empty(), "nothing left to withdraw");
    }

    #[test]
    fn unproven_streams_are_limited_per_peer_and_in_total() {
        let streams = UnprovenStreams::default();
        let greedy = PeerId::random();
        let mut held: Vec<Unproven> = (0..UNPROVEN_STREAMS_PER_PEER)
            .map(|_| streams.admit(greedy).expect("within the peer's share"))
            .collect();
        assert!(
            streams.admit(greedy).is_none(),
            "one peer gets only its share"
        );
        held.pop();
        assert!(
            streams.admit(greedy).is_some(),
            "a place given back is free again"
        );
        let mut others = Vec::new();
        while let Some(place) = streams.admit(PeerId::random()) {
            others.push(place);
        }
        assert_eq!(others.len() + held.len(), UNPROVEN_STREAMS);
    }
}
