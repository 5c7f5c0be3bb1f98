//! The command line: global options and one subcommand per action.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Share folders and download files directly from peers, verified piece by piece.
#[derive(Parser, Debug)]
#[command(name = "peershare", version, about)]
pub struct Cli {
    /// Address of the daemon's local API (default: from the data folder, else 127.0.0.1:1101).
    #[arg(long, global = true, env = "PEERSHARE_API", value_name = "HOST:PORT")]
    pub api: Option<String>,
    /// The daemon's data folder (identity, database, API token).
    #[arg(long, global = true, env = "PEERSHARE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the peer daemon in the foreground (Ctrl-C stops it).
    Up(UpArgs),
    /// Run an index server alone in the foreground (Ctrl-C stops it).
    Index(IndexArgs),
    /// Show this peer's id, addresses and shares.
    Status,
    /// List the files a peer shares.
    Browse {
        /// The peer's full address, ending in /p2p/<peer id>.
        peer: String,
    },
    /// Download a file from a peer, by name or by id.
    Get {
        /// The peer's full address, ending in /p2p/<peer id>.
        peer: String,
        /// The file's name (as `browse` shows it) or its id.
        file: String,
        /// Start the download and return at once instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// List downloads: active, finished and failed.
    Downloads,
    /// List this peer's shared files.
    Shares,
    /// Rescan the shared folders now.
    Rescan,
    /// List transfer requests waiting for an answer (policy `ask`).
    Requests,
    /// Accept a waiting transfer request.
    Accept {
        /// The request's number from `peershare requests`.
        id: u64,
    },
    /// Reject a waiting transfer request.
    Reject {
        /// The request's number from `peershare requests`.
        id: u64,
    },
}

/// Options of `peershare up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// A folder to share (repeatable).
    #[arg(long, value_name = "DIR")]
    pub share: Vec<PathBuf>,
    /// Where downloads go (default: your Downloads folder).
    #[arg(long, value_name = "DIR")]
    pub downloads: Option<PathBuf>,
    /// libp2p listen address (repeatable; default TCP and QUIC on port 1100).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// Listen address of the data connection (default: the TCP listen IP, any port).
    #[arg(long, value_name = "HOST:PORT")]
    pub data_listen: Option<String>,
    /// What to do with requests for your files: accept, or ask you each time.
    #[arg(long, default_value = "accept", value_name = "accept|ask")]
    pub policy: String,
    /// Uploads at once; further requests are answered "busy".
    #[arg(long, default_value_t = 4)]
    pub max_uploads: usize,
    /// Seconds a request waits for your answer under `--policy ask`.
    #[arg(long, default_value_t = 60)]
    pub ask_timeout: u64,
    /// Limit on the total upload rate, bytes per second (suffixes K, M, G).
    #[arg(long, value_name = "RATE")]
    pub max_upload_rate: Option<String>,
    /// Do not watch shared folders for changes (rescan with `peershare rescan`).
    #[arg(long)]
    pub no_watch: bool,
}

/// Options of `peershare index`; each may also come from the config file or the environment.
#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Address to listen on (default 0.0.0.0:1099).
    #[arg(long, env = "PEERSHARE_INDEX_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// A TOML file with index settings (listen, data_dir, heartbeat, peer_timeout, token_lifetime, admins,
    /// tls_cert, tls_key, registrations_per_minute, search_slots, search_queue).
    #[arg(long, env = "PEERSHARE_INDEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The index's data folder, holding index.db (default: --data-dir, else `index` in the default data folder).
    #[arg(
        long = "index-data-dir",
        env = "PEERSHARE_INDEX_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,
    /// Seconds between the heartbeats peers send.
    #[arg(long, env = "PEERSHARE_INDEX_HEARTBEAT", value_name = "SECS")]
    pub heartbeat: Option<u64>,
    /// Seconds without a heartbeat after which a peer counts as offline.
    #[arg(long, env = "PEERSHARE_INDEX_PEER_TIMEOUT", value_name = "SECS")]
    pub peer_timeout: Option<u64>,
    /// Seconds a login token stays valid.
    #[arg(long, env = "PEERSHARE_INDEX_TOKEN_LIFETIME", value_name = "SECS")]
    pub token_lifetime: Option<u64>,
    /// A user allowed to read the audit log (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "admin",
        env = "PEERSHARE_INDEX_ADMINS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub admins: Vec<String>,
    /// PEM file with the TLS certificate chain: serve HTTPS (needs --tls-key).
    #[arg(
        long,
        env = "PEERSHARE_INDEX_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (needs --tls-cert).
    #[arg(
        long,
        env = "PEERSHARE_INDEX_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Accounts one client address may register per minute (0: no limit; default 10).
    #[arg(
        long,
        env = "PEERSHARE_INDEX_REGISTRATIONS_PER_MINUTE",
        value_name = "N"
    )]
    pub registrations_per_minute: Option<u32>,
    /// Searches run at once (default 4).
    #[arg(long, env = "PEERSHARE_INDEX_SEARCH_SLOTS", value_name = "N")]
    pub search_slots: Option<u32>,
    /// Searches waiting for a slot before more are answered 503 (default 16).
    #[arg(long, env = "PEERSHARE_INDEX_SEARCH_QUEUE", value_name = "N")]
    pub search_queue: Option<u32>,
}

/// Parses a byte count such as `512K`, `8M` or `1G` (powers of 1024).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("8M"), Some(8 << 20));
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("5kb"), Some(5 << 10));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("5T"), None);
    }
}
