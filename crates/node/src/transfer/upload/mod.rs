//! Serving pieces on the data connection: accept a connection, check its
//! ticket against the [`UploadGate`], then answer tree and piece requests in
//! order, optionally paced by the upload rate limit.
//!
//! It reads one piece at a time into a reused buffer, so an upload holds at
//! most one piece in memory however large the file. Before every piece it
//! checks the file is still the one that was hashed, so a file edited in
//! place is never served under its old id.

pub mod active;
pub mod gate;

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use peershare_core::outboard::{read_exact_at, LEAF_LEN};
use peershare_core::wire::data::{
    ClientFrame, ErrorCode, PieceHeader, ServerFrame, MAX_LEAVES_PER_FRAME,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use self::active::{ActiveUploads, ListedUpload};
use crate::lifetime::Lifetime;
use crate::share::SharedFile;
use crate::transfer::data_channel::{read_body, read_header, write_frame, DataStream, DataTls};
use crate::transfer::rate_limit::RateLimit;
use crate::transfer::upload::gate::UploadGate;
use crate::NodeError;

/// How long a new data connection may take to present its ticket.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an upload waits for the next request before giving up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What every upload connection needs.
#[derive(Clone)]
pub struct UploadService {
    /// TLS bound to this peer's key.
    pub tls: DataTls,
    /// Tickets and slots.
    pub gate: UploadGate,
    /// The upload rate limit shared by every upload.
    pub rate: Arc<RateLimit>,
    /// Where running uploads are listed.
    pub uploads: ActiveUploads,
    /// Owns every upload connection; ending it closes them.
    pub lifetime: Lifetime,
}

/// Accepts data connections until the task is dropped, one task per connection.
pub async fn serve(listener: TcpListener, service: UploadService) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("data listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        service.lifetime.clone().spawn(async move {
            match serve_connection(tcp, service).await {
                Ok(()) => tracing::debug!(%remote, "upload finished"),
                Err(e) => tracing::info!(%remote, "upload ended: {e}"),
            }
        });
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    service: UploadService,
) -> Result<(), NodeError> {
    let (mut stream, peer) = tokio::time::timeout(OPEN_TIMEOUT, service.tls.accept(tcp))
        .await
        .map_err(|_| NodeError::Transfer("handshake timed out".into()))??;
    let ticket = tokio::time::timeout(OPEN_TIMEOUT, read_open(&mut stream))
        .await
        .map_err(|_| NodeError::Transfer("no ticket in time".into()))??;
    let Some((file, _slot)) = service.gate.redeem(ticket, &peer) else {
        return refuse(
            &mut stream,
            ErrorCode::BadTicket,
            "unknown or expired ticket",
        )
        .await;
    };
    tracing::info!(%peer, name = %file.name, "upload started");
    let listed = service.uploads.start(peer, &file);
    let ready = ServerFrame::Ready {
        id: file.id(),
        size: file.size,
        piece_len: file.outboard.layout().piece_len(),
    };
    write_frame(&mut stream, &ready.encode()).await?;
    Upload::new(file, stream, peer, service.rate, listed)?
        .run()
        .await
}

async fn read_open(stream: &mut DataStream) -> Result<u64, NodeError> {
    let header = read_header(stream, 0).await?;
    let body = read_body(stream, header).await?;
    match ClientFrame::decode(header, &body) {
        Ok(ClientFrame::Open { ticket }) => Ok(ticket),
        _ => Err(NodeError::Transfer("first frame was not Open".into())),
    }
}

async fn refuse(stream: &mut DataStream, code: ErrorCode, message: &str) -> Result<(), NodeError> {
    let frame = ServerFrame::Error {
        code,
        message: message.into(),
    };
    write_frame(stream, &frame.encode()).await?;
    let _ = stream.shutdown().await;
    Err(NodeError::Transfer(message.into()))
}

/// One granted upload on one connection.
struct Upload {
    file: SharedFile,
    handle: Arc<std::fs::File>,
    stream: DataStream,
    peer: PeerId,
    rate: Arc<RateLimit>,
    buffer: Vec<u8>,
    listed: ListedUpload,
}

impl Upload {
    fn new(
        file: SharedFile,
        stream: DataStream,
        peer: PeerId,
        rate: Arc<RateLimit>,
        listed: ListedUpload,
    ) -> Result<Self, NodeError> {
        let handle = std::fs::File::open(&file.path).map_err(|e| NodeError::io(&file.path, e))?;
        let capacity = PieceHeader::LEN + file.outboard.layout().piece_len() as usize;
        Ok(Self {
            file,
            handle: Arc::new(handle),
            stream,
            peer,
            rate,
            buffer: Vec::with_capacity(capacity),
            listed,
        })
    }

    async fn run(mut self) -> Result<(), NodeError> {
        loop {
            let header =
                match tokio::time::timeout(IDLE_TIMEOUT, read_header(&mut self.stream, 0)).await {
                    Err(_) => return Err(NodeError::Transfer("downloader went quiet".into())),
                    Ok(Err(NodeError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(())
                    }
                    Ok(other) => other?,
                };
            let body = read_body(&mut self.stream, header).await?;
            match ClientFrame::decode(header, &body) {
                Ok(ClientFrame::GetTree) => self.send_tree().await?,
                Ok(ClientFrame::GetPiece { index }) => self.send_piece(index).await?,
                _ => {
                    let msg = "unexpected frame after Open";
                    return refuse(&mut self.stream, ErrorCode::Protocol, msg).await;
                }
            }
        }
    }

    async fn send_tree(&mut self) -> Result<(), NodeError> {
        let leaves = self.file.outboard.leaf_bytes();
        for (n, run) in leaves.chunks(MAX_LEAVES_PER_FRAME * LEAF_LEN).enumerate() {
            let frame = ServerFrame::Tree {
                first: (n * MAX_LEAVES_PER_FRAME) as u64,
                leaves: run.to_vec(),
            };
            self.stream.write_all(&frame.encode()).await?;
        }
        self.stream.flush().await?;
        Ok(())
    }

    async fn send_piece(&mut self, index: u64) -> Result<(), NodeError> {
        let layout = self.file.outboard.layout();
        if index >= layout.piece_count() {
            let msg = format!("piece {index} does not exist");
            return refuse(&mut self.stream, ErrorCode::Protocol, &msg).await;
        }
        if !self.unchanged() {
            let msg = "the file changed since it was hashed; it is no longer shared under this id";
            return refuse(&mut self.stream, ErrorCode::NotFound, msg).await;
        }
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
            tracing::warn!(peer = %self.peer, "cannot read {}: {e}", self.file.path.display());
            return refuse(
                &mut self.stream,
                ErrorCode::Internal,
                "the sharer cannot read the file",
            )
            .await;
        }
        self.rate.pace(self.buffer.len()).await;
        self.stream.write_all(&self.buffer).await?;
        self.stream.flush().await?;
        self.listed.sent(len as u64);
        Ok(())
    }

    /// True while the open file still has the size and mtime it was hashed with.
    fn unchanged(&self) -> bool {
        self.handle
            .metadata()
            .is_ok_and(|m| self.file.is_unchanged(&m))
    }
}
