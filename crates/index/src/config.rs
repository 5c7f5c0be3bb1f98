//! The index's settings: where it listens, where it keeps its database, how
//! long peers and tokens stay valid, and who may read the audit log.
//!
//! This module only describes settings; it never reads files, the environment
//! or the command line (the binary does that and fills in [`IndexConfig`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The port an index listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 1099;

/// Everything an index needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// Address to listen on; port 0 picks a free port (see [`crate::RunningIndex::addr`]).
    pub listen: SocketAddr,
    /// Folder holding `index.db`; created if missing.
    pub data_dir: PathBuf,
    /// How often peers are asked to send a heartbeat.
    pub heartbeat: Duration,
    /// A peer whose last heartbeat is older than this counts as offline.
    pub peer_timeout: Duration,
    /// How long a login token stays valid.
    pub token_lifetime: Duration,
    /// User names allowed to read the audit log.
    pub admins: Vec<String>,
}

impl IndexConfig {
    /// The defaults (port 1099 on all interfaces, 30 s heartbeats, 90 s timeout,
    /// 7-day tokens, no admins) with the given data folder.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            data_dir: data_dir.into(),
            heartbeat: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(90),
            token_lifetime: Duration::from_secs(7 * 24 * 3600),
            admins: Vec::new(),
        }
    }

    /// The path of the SQLite database inside the data folder.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("index.db")
    }
}
