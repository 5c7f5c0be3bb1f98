//! peershare-node: the peer as a library, one folder per subsystem.
//!
//! - [`daemon`]: starting and stopping a node, its identity and settings;
//!   [`node`]: the handle to the running parts.
//! - [`store`]: the peer's own database (`peer.db`: hash cache, downloads,
//!   folders, settings); [`private_file`]: files only this user may read.
//! - [`net`]: the libp2p host (behaviour, event loop) and the peer book.
//! - [`discovery`]: DHT records and announcements, browsing a peer, the
//!   merged search (index + DHT + LAN) and finding people by user name.
//! - [`index_link`]: the HTTP client of an index and this peer's membership.
//! - [`share`]: shared folders, the catalogue of shared files, the watcher.
//! - [`messaging`]: end-to-end encrypted messages, contacts and presence.
//! - [`transfer`]: the bulk data connection and its TLS; [`transfer::upload`]
//!   (the gate deciding on requests, serving pieces) and
//!   [`transfer::download`] (the engine, assembly, piece map, picker).
//! - [`api`]: the local HTTP API used by the CLI and the web UI, the types
//!   that cross it ([`views`]) and the event bus ([`events`]); [`ui`]: the
//!   web UI's embedded page, login codes, sessions and password.
//! - [`lifetime`] (who owns a task) and [`backoff`] (pauses between retries)
//!   serve every subsystem.
//!
//! The `peershare` binary is a thin shell around [`daemon::start`]. This
//! crate never imports the index server: a peer talks to an index over HTTP
//! like any other client. It never trusts a name or a size from the network
//! without checking it.

pub mod api;
pub mod backoff;
pub mod daemon;
pub mod discovery;
pub mod events;
pub mod index_link;
pub mod lifetime;
pub mod messaging;
pub mod net;
pub mod node;
pub mod private_file;
pub mod share;
pub mod store;
pub mod transfer;
pub mod ui;
pub mod views;

pub use daemon::{start, IndexSettings, NodeConfig, RunningNode};
pub use node::Node;

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
    /// The sharing side said no.
    #[error("{0}")]
    Refused(String),
    /// The sharing side has no free upload slot now; try again later.
    #[error("{0}")]
    Busy(String),
    /// A transfer failed.
    #[error("{0}")]
    Transfer(String),
    /// The index could not be used.
    #[error("{0}")]
    Index(#[from] index_link::client::IndexClientError),
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
    /// A listener that could not be opened, with what to do about it.
    pub fn listen(
        what: &str,
        addr: impl std::fmt::Display,
        error: impl std::fmt::Display,
        flag: &str,
    ) -> Self {
        let error = error.to_string();
        let hint = if error.to_ascii_lowercase().contains("in use") {
            format!(
                "another program uses this port (another `peershare up`? `peershare status` \
                 tells): stop it, or choose another address with {flag}"
            )
        } else {
            format!("choose another address with {flag}")
        };
        Self::Listen(format!("{what} on {addr}: {error}; {hint}"))
    }

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
