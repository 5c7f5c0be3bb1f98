//! HTTPS for the index: loads the PEM certificate chain and private key named
//! in the settings into a rustls server configuration (aws-lc-rs, TLS 1.2 and
//! 1.3, HTTP/1.1), and a [`TlsListener`] that hands the HTTP server only
//! connections whose handshake finished.
//!
//! Handshakes run in their own tasks, each bounded in time, and at most
//! [`MAX_HANDSHAKES`] at once, so a slow or silent client never holds up
//! the accept loop. This module never serves plain HTTP on a TLS port and
//! never logs key material.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use peershare_core::conn_limit::{ConnLimits, Guarded, Limited, Tcp};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::error::IndexError;

/// Handshakes in progress at most; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 256;
/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the certificate chain and key and checks that they go together.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, IndexError> {
    let tls_err = |path: &Path, message: String| IndexError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(cert, format!("not a readable PEM certificate file ({e})")))?;
    if chain.is_empty() {
        return Err(tls_err(
            cert,
            "holds no certificate (no BEGIN CERTIFICATE section)".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(key, format!("not a readable PEM private key file ({e})")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            tls_err(
                key,
                format!("does not fit the certificate {} ({e})", cert.display()),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection this listener yields: TLS over a TCP stream that counts
/// against the connection caps and closes when idle.
pub type TlsIo = TlsStream<Guarded<TcpStream>>;

/// Accepts TCP connections and yields them once their TLS handshake is done.
///
/// Connections are capped in total and per address, and closed when idle
/// (before, during and after the handshake), per [`ConnLimits`].
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsIo, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`, with the connection
    /// limits of a listener given an eighth of the file descriptors.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        Self::with_limits(listener, config, ConnLimits::budgeted(8))
    }

    /// Starts accepting on `listener` with `config` and `limits`.
    pub fn with_limits(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        limits: ConnLimits,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let listener = Limited::new(Tcp::new(listener), limits);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(Self {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    mut listener: Limited<Tcp>,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsIo, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = handshakes.clone().acquire_owned().await else {
            return;
        };
        // Over the caps, connections are closed at once; accept errors (out
        // of file descriptors) are waited out and logged rarely.
        let (tcp, addr) = listener.accept().await;
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!("TLS handshake with {addr} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {addr} timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
