//! The bulk data connection: TCP with TLS 1.3, both ends proving their
//! libp2p identity with the certificate libp2p-tls makes from the peer key.
//!
//! It exists because libp2p's multiplexed streams cost too much per byte
//! for bulk data on small machines (docs/PROTOCOL.md has the figures).
//! Where it cannot be made (the sharer sits behind a NAT, its data port is
//! filtered), the same frames travel on a libp2p stream instead
//! ([`crate::net::host::Host::open_data_stream`]); both are a [`DataStream`].
//! Between a NAT and the other side, it can often still be made by
//! connecting from both ends at once ([`connect_from`]): each router then
//! sees its own side's packets go out first and lets the other's in.
//! This module only sets connections up and reads/writes frames; what is
//! sent over them is decided by [`crate::transfer::upload`] and [`crate::transfer::download`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::PeerId;
use peershare_core::wire::data::{FrameHeader, WireError, DATA_ALPN, HEADER_LEN};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::transfer::peer_tls;
use crate::NodeError;

/// Socket buffer size asked of the kernel for data connections.
const SOCKET_BUFFER: u32 = 4 << 20;
/// How long a connection attempt from a fixed port waits before trying
/// again after the other end refused it (its side was not connecting yet).
const RETRY_REFUSED: Duration = Duration::from_millis(200);
/// Connections the data listener holds waiting to be accepted.
const LISTEN_BACKLOG: u32 = 1024;

/// TLS settings for both directions, made once from the peer key.
#[derive(Clone)]
pub struct DataTls {
    keypair: Keypair,
    server: tokio_rustls::TlsAcceptor,
}

/// Whatever carries data frames: a TLS connection or a libp2p stream.
pub trait DataIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> DataIo for T {}

/// A data stream from either side, over either path.
pub type DataStream = Box<dyn DataIo>;

impl DataTls {
    /// Builds the TLS configuration bound to this peer's key.
    pub fn new(keypair: &Keypair) -> Result<Self, NodeError> {
        let server = peer_tls::server_config(keypair, DATA_ALPN)?;
        Ok(Self {
            keypair: keypair.clone(),
            server: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Connects to `addr` and checks that the far end is `peer`.
    pub async fn connect(&self, addr: SocketAddr, peer: PeerId) -> Result<DataStream, NodeError> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            NodeError::Transfer(format!("cannot open a data connection to {addr}: {e}"))
        })?;
        self.client(tcp, peer).await
    }

    /// Runs the client's handshake on a connection made to `peer`.
    pub async fn client(&self, tcp: TcpStream, peer: PeerId) -> Result<DataStream, NodeError> {
        let config = peer_tls::client_config(&self.keypair, peer, DATA_ALPN)?;
        tune(&tcp);
        let name = ServerName::try_from("peershare").expect("a valid DNS name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| NodeError::Transfer(format!("data connection handshake failed: {e}")))?;
        Ok(Box::new(tls))
    }

    /// Completes an incoming connection and says which peer it is.
    pub async fn accept(&self, tcp: TcpStream) -> Result<(DataStream, PeerId), NodeError> {
        tune(&tcp);
        let tls =
            self.server.accept(tcp).await.map_err(|e| {
                NodeError::Transfer(format!("data connection handshake failed: {e}"))
            })?;
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| NodeError::Transfer("peer presented no certificate".into()))?;
        let peer = peer_tls::peer_of(cert)?;
        Ok((Box::new(tls), peer))
    }
}

/// Binds the data listener.
///
/// Its port may be shared with the sockets that connect out from it
/// ([`connect_from`], for a dial-back), which Linux allows only to sockets
/// that all ask to reuse the port. Any other program holding the port,
/// another daemon included, makes the bind fail as it should.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    let failed = |e| NodeError::listen("the data connection", addr, e, "--data-listen HOST:PORT");
    if addr.port() != 0 {
        // Without port reuse: fails when anything else listens there.
        let probe = new_socket(addr).map_err(failed)?;
        probe.set_reuseaddr(true).map_err(failed)?;
        probe.bind(addr).map_err(failed)?;
    }
    let socket = port_sharing_socket(addr).map_err(failed)?;
    socket.listen(LISTEN_BACKLOG).map_err(failed)
}

/// Connects from `local` to `remote`, trying again while the other end
/// refuses, until a connection is made, `patience` runs out or `give_up`
/// says so. With both ends doing this towards each other at about the same
/// time, the connection forms even when each sits behind a router that
/// only lets in replies to what went out (a TCP simultaneous open).
pub async fn connect_from(
    local: SocketAddr,
    remote: SocketAddr,
    patience: Duration,
    give_up: impl Fn() -> bool,
) -> std::io::Result<TcpStream> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let attempt = port_sharing_socket(local)?.connect(remote);
        let error = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => e,
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        if give_up() || tokio::time::Instant::now() + RETRY_REFUSED >= deadline {
            return Err(error);
        }
        tokio::time::sleep(RETRY_REFUSED).await;
    }
}

/// A local address to connect from, on a port of its own, for [`connect_from`].
pub fn fresh_local_port(remote: SocketAddr) -> std::io::Result<SocketAddr> {
    let any = match remote {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    // Without port reuse, so that the port is one nobody else holds.
    let socket = new_socket(any)?;
    socket.bind(any)?;
    socket.local_addr()
}

/// A socket of `addr`'s family.
pub(crate) fn new_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
}

/// A socket bound to `addr` that other port-sharing sockets of this user may bind too.
pub(crate) fn port_sharing_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = new_socket(addr)?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let sock = socket2_ref(tcp);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER as usize);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER as usize);
}

fn socket2_ref(tcp: &TcpStream) -> socket2::SockRef<'_> {
    socket2::SockRef::from(tcp)
}

/// Reads one frame header, checking it against the limits for `piece_len`.
pub async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    piece_len: u64,
) -> Result<FrameHeader, NodeError> {
    let mut bytes = [0u8; HEADER_LEN];
    reader.read_exact(&mut bytes).await?;
    FrameHeader::parse(bytes, piece_len).map_err(wire_error)
}

/// Reads the body of a small frame into a fresh buffer.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    header: FrameHeader,
) -> Result<Vec<u8>, NodeError> {
    let mut body = vec![0u8; header.body_len as usize];
    reader.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes a whole frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> Result<(), NodeError> {
    writer.write_all(frame).await?;
    writer.flush().await?;
    Ok(())
}

/// A protocol violation on the data connection.
pub fn wire_error(e: WireError) -> NodeError {
    NodeError::Transfer(format!("peer broke the data protocol: {e}"))
}
