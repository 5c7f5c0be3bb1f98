//! peershare-node: the peer as a library.
//!
//! It owns the peer's identity, its shares and hash cache, the libp2p host
//! (browse and transfer requests), the bulk data connection, the upload
//! gate (accept / ask / busy), the download engine (pieces, verification,
//! resume), the membership in an index and the local HTTP API. The
//! `peershare` binary is a thin shell around [`daemon::start`].
//!
//! It never imports the index server: when peers join an index they talk
//! to it over HTTP like any other client ([`index_client`]). It never trusts a name or a size
//! from the network without checking it.

pub mod api;
pub mod assembly;
pub mod browse;
pub mod daemon;
pub mod data_channel;
pub mod dht;
pub mod download;
pub mod gate;
pub mod host;
pub mod identity;
pub mod index_client;
pub mod index_link;
pub mod peer_book;
pub mod peer_tls;
pub mod people;
pub mod piece_map;
pub mod piece_picker;
mod private_file;
pub mod search;
pub mod share;
pub mod store;
pub mod upload;

pub use daemon::{start, IndexSettings, Node, NodeConfig, RunningNode};

use std::path::Path;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes aws-lc the process's TLS provider (HTTP clients need one); later calls do nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Everything that can go wrong inside the peer.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file or socket operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file operation on a named path failed.
    #[error("{path}: {source}")]
    File {
        /// The path involved.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The identity key is unusable.
    #[error("identity: {0}")]
    Identity(String),
    /// The peer database failed.
    #[error("peer database: {0}")]
    Store(String),
    /// A listen address could not be used.
    #[error("cannot listen: {0}")]
    Listen(String),
    /// The shared-folder watcher could not start.
    #[error("folder watcher: {0}")]
    Watch(String),
    /// A request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Something asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The peer could not be reached or did not answer.
    #[error("peer unreachable: {0}")]
    PeerUnreachable(String),
    /// A peer answered against the protocol.
    #[error("a peer broke the protocol: {0}")]
    PeerMisbehaved(String),
    /// The sharing side said no (rejected or busy).
    #[error("{0}")]
    Refused(String),
    /// A transfer failed.
    #[error("{0}")]
    Transfer(String),
    /// The index could not be used.
    #[error("{0}")]
    Index(#[from] index_client::IndexError),
    /// The person has to log in to the index first.
    #[error("{0}")]
    NotLoggedIn(String),
    /// The daemon runs without an index.
    #[error("this daemon runs without an index (--no-index); restart it with --index URL, or without --no-index")]
    NoIndex,
    /// The daemon is shutting down.
    #[error("the daemon is stopping")]
    Stopped,
}

impl NodeError {
    /// An I/O error with the path it happened on.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::File {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<sqlx::Error> for NodeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.to_string())
    }
}
