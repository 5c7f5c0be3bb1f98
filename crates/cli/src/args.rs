//! The command line: global options and one subcommand per action.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

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
    Up(Box<UpArgs>),
    /// Run an index server alone in the foreground (Ctrl-C stops it).
    Index(IndexArgs),
    /// Open the web UI in a browser with a one-time login link, or set its password.
    Ui(UiArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show this peer's id, addresses and shares.
    Status,
    /// List the files a user shares (through the index, or the DHT when the index cannot be asked) or a peer shares.
    Browse {
        /// A user name, a peer id, or a peer's full address ending in /p2p/<peer id>.
        target: String,
        /// With a user name: also list files of the user's offline peers.
        #[arg(long)]
        all: bool,
    },
    /// Download a file: `get NAME`, `get ID` or `get peershare:…` finds holders through the
    /// index and the DHT; `get PEER FILE` asks one peer.
    Get {
        /// A file name or id, a `peershare:` link, or a peer's full address ending in /p2p/<peer id>.
        target: String,
        /// With a peer address: the file's name (as `browse` shows it) or its id.
        file: Option<String>,
        /// Start the download and return at once instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
        /// Copy the file even if it is already complete here (in the downloads folder or a share).
        #[arg(long)]
        again: bool,
        /// On Ctrl-C, cancel the download instead of asking whether to keep it going.
        #[arg(long)]
        cancel_on_exit: bool,
        /// Fetch pieces in file order (to watch or listen while it downloads) instead of rarest first.
        #[arg(long)]
        sequential: bool,
        /// This download's own rate limit, bytes per second (suffixes K, M, G), under the global one.
        #[arg(long, value_name = "RATE")]
        max_rate: Option<String>,
    },
    /// Create an account on the index, and log in with it.
    Register(AccountArgs),
    /// Log in to the index; the daemon keeps the session and joins with it.
    Login(AccountArgs),
    /// Leave the index and end the session.
    Logout,
    /// Delete your account on the index, with all your peers and files listed there.
    Unregister,
    /// Search the files of online peers by name.
    Search(SearchArgs),
    /// List the users online on the index (every user with --all).
    Users {
        /// Include users with no peer online.
        #[arg(long)]
        all: bool,
    },
    /// List known peers: how each was found (index, mDNS, DHT, bootstrap), connected or not.
    Peers,
    /// Read the index's audit log (admins only).
    Audit {
        /// Entries to show, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Entries to skip.
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// List downloads (active, queued, paused, finished, failed), or control one.
    Downloads {
        /// Keep printing changes as they happen (Ctrl-C stops).
        #[arg(long)]
        watch: bool,
        /// What to do; without one, list them.
        #[command(subcommand)]
        action: Option<DownloadAction>,
    },
    /// List this peer's shared folders and files, or add or remove a folder.
    Shares {
        /// What to do; without one, list them.
        #[command(subcommand)]
        action: Option<SharesAction>,
    },
    /// Stop sharing: leave the index, withdraw every DHT record, answer no browse or transfer.
    Offline,
    /// Share again after `offline`.
    Online,
    /// Rescan the shared folders now.
    Rescan,
    /// Print a `peershare:` link to one of your shared files, for others to `get`.
    Link {
        /// The file: its id, its shared name, or its path.
        file: String,
        /// Put this peer's addresses in the link, so it works with no index and no DHT.
        #[arg(long)]
        with_addrs: bool,
    },
    /// Print every change in the daemon as it happens (one JSON object per line with --json).
    Events,
    /// List uploads: who is downloading what from you, how far and how fast.
    Uploads,
    /// Show or change the upload and download rate limits now (remembered for the next start unless `up` sets its own; 0 removes one).
    Limits {
        /// Limit on all uploads together, bytes per second (suffixes K, M, G; 0: none).
        #[arg(long, value_name = "RATE")]
        upload: Option<String>,
        /// Limit on all downloads together, bytes per second (suffixes K, M, G; 0: none).
        #[arg(long, value_name = "RATE")]
        download: Option<String>,
        /// Upload slots: pieces sent at once.
        #[arg(long, value_name = "N")]
        slots: Option<usize>,
        /// Peers served at once; more are told "busy".
        #[arg(long, value_name = "N")]
        peers: Option<usize>,
    },
    /// Show what is done with transfer requests, or change it (accept, ask, contacts); kept across restarts.
    Policy {
        /// The new policy.
        policy: Option<String>,
    },
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
    /// Send an end-to-end encrypted message to a user (or a peer id); delivered
    /// when they come online if they are away. Without TEXT, it is read from standard input.
    Msg {
        /// A user name, or a peer id.
        to: String,
        /// The message (the rest of the line).
        text: Vec<String>,
    },
    /// List conversations, with unread messages.
    Chats,
    /// Show a conversation (marking it read); with --follow, keep printing new messages.
    Chat {
        /// A user name, or a peer id.
        name: String,
        /// Keep printing messages and receipts as they arrive (Ctrl-C stops).
        #[arg(long)]
        follow: bool,
        /// How many of the latest messages to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// List contacts with presence, or change them.
    Contacts {
        /// What to do; without one, list them.
        #[command(subcommand)]
        action: Option<ContactsAction>,
    },
    /// Open the interactive console: a numbered menu, every command with history and
    /// completion, and requests and messages shown as they arrive.
    Shell,
}

/// What `contacts` can change.
#[derive(Subcommand, Debug)]
pub enum ContactsAction {
    /// Add a contact (with `--policy contacts`, contacts download without being asked).
    Add {
        /// A user name, or a peer id.
        name: String,
    },
    /// Remove a contact (its keys stay pinned).
    Remove {
        /// A user name, or a peer id.
        name: String,
    },
    /// Refuse a name's messages and download requests.
    Block {
        /// A user name, or a peer id.
        name: String,
    },
    /// Accept a blocked name again.
    Unblock {
        /// A user name, or a peer id.
        name: String,
    },
    /// Trust a name's new keys after a change (check with them first) and send what waited.
    Trust {
        /// A user name, or a peer id.
        name: String,
    },
}

/// What `shares` can change.
#[derive(Subcommand, Debug)]
pub enum SharesAction {
    /// Share a folder now (kept across restarts).
    Add {
        /// The folder.
        dir: PathBuf,
    },
    /// Stop sharing a folder now; its files are withdrawn from the index and the DHT.
    Remove {
        /// The folder.
        dir: PathBuf,
    },
}

/// What `downloads` can do to one download, or to all.
#[derive(Subcommand, Debug)]
pub enum DownloadAction {
    /// Stop a download, keeping its verified pieces.
    Pause {
        /// The download's number from `peershare downloads`.
        id: i64,
    },
    /// Continue a paused, queued or failed download from its verified pieces.
    Resume {
        /// The download's number.
        id: i64,
    },
    /// Stop a download and delete its partial file.
    Cancel {
        /// The download's number.
        id: i64,
    },
    /// Set one download's own rate limit (suffixes K, M, G; 0: none), at once.
    Rate {
        /// The download's number.
        id: i64,
        /// Bytes per second, like 500K or 8M; 0 lifts the limit.
        rate: String,
    },
    /// Forget a finished, failed or cancelled download (the file itself stays).
    Remove {
        /// The download's number.
        id: i64,
    },
    /// Delete every partial file that no download owns.
    Clean,
}

/// The account a `register` or `login` is for.
#[derive(Args, Debug)]
pub struct AccountArgs {
    /// The user name.
    pub name: String,
    /// Read the password from the first line of standard input instead of a hidden prompt.
    #[arg(long)]
    pub password_stdin: bool,
}

/// What `search` looks for.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words in the name (or the whole name with --mode exact, part of it with --mode substring).
    pub query: String,
    /// How to match: words (every word), substring, or exact.
    #[arg(long, default_value = "words", value_parser = ["words", "substring", "exact"])]
    pub mode: String,
    /// Only names with this extension (like mp4).
    #[arg(long)]
    pub ext: Option<String>,
    /// Smallest size (suffixes K, M, G).
    #[arg(long, value_name = "SIZE")]
    pub min_size: Option<String>,
    /// Largest size (suffixes K, M, G).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Results per page.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Results to skip.
    #[arg(long)]
    pub offset: Option<u32>,
}

/// Options of `peershare up`. Each may also come from the config file
/// (`--config FILE`, else `config.toml` in the data folder when it exists);
/// a flag given here wins over the file.
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpArgs {
    /// A TOML file of settings (keys are the options' long names with `_` for `-`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// A folder to share (repeatable).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub share: Vec<PathBuf>,
    /// Where downloads go (default: your Downloads folder).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downloads: Option<PathBuf>,
    /// libp2p listen address (repeatable; default TCP and QUIC on port 1100).
    #[arg(long, value_name = "MULTIADDR")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    /// Listen address of the data connection (default: the TCP listen IP, any port).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_listen: Option<String>,
    /// What to do with requests for your files: accept (default), ask you each time, or
    /// accept your contacts' and ask you about everyone else's.
    #[arg(long, value_name = "accept|ask|contacts")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Upload slots: pieces sent at once, taken in turn by every peer served (default 4).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uploads: Option<usize>,
    /// Peers served at once (default 32); further requests are answered "busy".
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_peers: Option<usize>,
    /// Peers one download fetches from at once (default 8).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sources: Option<usize>,
    /// Seconds a download with no source left looks for one before it fails (default 10).
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_patience: Option<u64>,
    /// Days a message waits for a recipient who is away before it is dropped (default 14).
    #[arg(long, value_name = "DAYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letter_ttl_days: Option<u64>,
    /// Do not tell senders when you have read their messages (they still learn of delivery).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub no_read_receipts: bool,
    /// DHT nodes a letter for someone away is left with when there is no index (default 3).
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_replicas: Option<usize>,
    /// Seconds between hand-overs of the letters this peer keeps for others to the nodes
    /// closest to their recipients (default 600).
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_republish: Option<u64>,
    /// Seconds a request waits for your answer under `--policy ask` (default 60).
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask_timeout: Option<u64>,
    /// Limit on the total upload rate, bytes per second (suffixes K, M, G).
    #[arg(long, value_name = "RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_rate: Option<String>,
    /// Limit on the total download rate, bytes per second (suffixes K, M, G).
    #[arg(long, value_name = "RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_download_rate: Option<String>,
    /// Do not watch shared folders for changes (rescan with `peershare rescan`).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub no_watch: bool,
    /// Join the index at this URL instead of running one (http://HOST:1099 or https://HOST:1099).
    #[arg(
        long,
        env = "PEERSHARE_INDEX",
        value_name = "URL",
        conflicts_with = "no_index"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// A PEM certificate to trust for an https index (its own self-signed one, or its CA).
    #[arg(long, env = "PEERSHARE_INDEX_CA", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_ca: Option<PathBuf>,
    /// Run without an index: no embedded one, none joined.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub no_index: bool,
    /// Where the embedded index listens (default 0.0.0.0:1099).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["index", "no_index"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_listen: Option<String>,
    /// Seconds between heartbeats, for the embedded index.
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<u64>,
    /// Seconds without a heartbeat before a peer counts as offline, for the embedded index.
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_timeout: Option<u64>,
    /// A user allowed to read the embedded index's audit log (repeatable).
    #[arg(long = "admin", value_name = "NAME")]
    #[serde(rename = "admin", skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// Do not discover peers on the LAN by multicast DNS.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub no_mdns: bool,
    /// Do not ask the router to map this peer's ports (UPnP IGD, PCP, NAT-PMP).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub no_port_mapping: bool,
    /// A relay to keep a slot on, ending in /p2p/<peer id> (repeatable); others
    /// are found through the index and the DHT when this peer is behind a NAT.
    #[arg(long = "relay", value_delimiter = ',', value_name = "MULTIADDR")]
    #[serde(rename = "relay", skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
    /// Do not relay for others (the service is bounded, and carries only
    /// small control traffic unless --relay-bulk).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub no_relay_service: bool,
    /// Let circuits through this peer's relay service carry file data for
    /// peers that cannot reach each other otherwise.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub relay_bulk: bool,
    /// Bytes one circuit of this peer's relay may carry each way with
    /// --relay-bulk (suffixes K, M, G; 0, the default, for no limit).
    #[arg(long, value_name = "SIZE", requires = "relay_bulk")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_bulk_limit: Option<String>,
    /// Peers this peer's relay holds a slot for at once (default 128).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_slots: Option<usize>,
    /// Circuits open through this peer's relay at once (default 16).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_circuits: Option<usize>,
    /// A peer to join the DHT through, ending in /p2p/<peer id> (repeatable).
    #[arg(
        long,
        env = "PEERSHARE_BOOTSTRAP",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<String>,
    /// How many DHT nodes hold each provider record (default 20).
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dht_replication: Option<usize>,
    /// Seconds a provider record lives on the nodes holding it (default 86400, a day).
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_ttl: Option<u64>,
    /// Seconds between re-announcements of this peer's records, at most the TTL (default 43200).
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<u64>,
    /// Also serve the web UI (and API) on this address for other machines; needs a UI password
    /// (`peershare ui --set-password`) and --ui-tls-cert/--ui-tls-key, or --ui-insecure.
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_listen: Option<String>,
    /// PEM certificate chain for --ui-listen (HTTPS).
    #[arg(long, value_name = "FILE", requires = "ui_tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_tls_cert: Option<PathBuf>,
    /// PEM private key for --ui-listen (HTTPS).
    #[arg(long, value_name = "FILE", requires = "ui_tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_tls_key: Option<PathBuf>,
    /// Serve --ui-listen over plain HTTP (the password and session then cross the network readable).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub ui_insecure: bool,
}

/// Options of `peershare ui`.
#[derive(Args, Debug)]
pub struct UiArgs {
    /// Print the login link instead of opening a browser.
    #[arg(long)]
    pub print: bool,
    /// Set the password the web UI asks for (needed by `up --ui-listen`); read from the terminal or stdin.
    #[arg(long, conflicts_with_all = ["print", "clear_password"])]
    pub set_password: bool,
    /// Remove the web UI's password (then `up --ui-listen` refuses to start).
    #[arg(long, conflicts_with = "print")]
    pub clear_password: bool,
}

/// Options of `peershare index`; each may also come from the config file or the environment.
#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Address to listen on (default 0.0.0.0:1099).
    #[arg(long, env = "PEERSHARE_INDEX_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// A TOML file with index settings (listen, data_dir, heartbeat, peer_timeout, token_lifetime, admins,
    /// tls_cert, tls_key, registrations_per_minute, search_slots, search_queue, searches_per_user,
    /// searches_per_address, audit_retention_days; mail_ttl in seconds, mailbox_per_recipient,
    /// mailbox_per_sender; database, max_files, memory_limit_mib).
    #[arg(long, env = "PEERSHARE_INDEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The index's data folder, holding index.db unless --database is given (default: --data-dir, else
    /// `index` in the default data folder).
    #[arg(
        long = "index-data-dir",
        env = "PEERSHARE_INDEX_DATA_DIR",
        value_name = "DIR"
    )]
    pub index_data_dir: Option<PathBuf>,
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
    /// Days a sealed letter waits in the mailbox for its recipient to collect it (default 14).
    #[arg(long, env = "PEERSHARE_INDEX_MAIL_TTL_DAYS", value_name = "DAYS")]
    pub mail_ttl_days: Option<u64>,
    /// Days audit records are kept before they are deleted (0: forever; default 90).
    #[arg(
        long,
        env = "PEERSHARE_INDEX_AUDIT_RETENTION_DAYS",
        value_name = "DAYS"
    )]
    pub audit_retention_days: Option<u32>,
    /// Files (one per peer, id and name) listed at once, at most; joins and publishes past it are
    /// answered 503 (default 20000000).
    #[arg(long, env = "PEERSHARE_INDEX_MAX_FILES", value_name = "N")]
    pub max_files: Option<u64>,
    /// Files one user may list at once across their peers (0: no limit); joins and publishes
    /// past it are answered 429 (default 1000000).
    #[arg(long, env = "PEERSHARE_INDEX_MAX_FILES_PER_USER", value_name = "N")]
    pub max_files_per_user: Option<u64>,
    /// Resident memory in MiB past which joins and publishes are answered 503 (0: no limit,
    /// the default); searches go on.
    #[arg(long, env = "PEERSHARE_INDEX_MEMORY_LIMIT_MIB", value_name = "MIB")]
    pub memory_limit_mib: Option<u64>,
    /// Keep the index's data in this PostgreSQL database instead of index.db in the data folder:
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (the index creates and migrates its tables;
    /// prefer the variable, so the password is not on the command line).
    #[arg(long, env = "PEERSHARE_INDEX_DATABASE", value_name = "URL")]
    pub database: Option<String>,
}

/// The byte rate given to `--flag` (like 500K, 8M, 1G; 0 means no limit), if any.
pub fn parse_rate(flag: &str, value: Option<&str>) -> Result<Option<u64>> {
    value
        .map(|r| {
            parse_bytes(r).ok_or_else(|| {
                anyhow::anyhow!(
                    "--{flag} {r:?}: use a byte count like 500K, 8M or 1G (0: no limit)"
                )
            })
        })
        .transpose()
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

/// Sets `into` from the option `--flag SECS`, if given; zero is refused.
pub fn seconds(flag: &str, value: Option<u64>, into: &mut Duration) -> Result<()> {
    match value {
        Some(0) => anyhow::bail!("--{flag} must be at least 1 second"),
        Some(s) => *into = Duration::from_secs(s),
        None => {}
    }
    Ok(())
}

/// Whether a switch is off (an unset switch does not override the config file).
fn is_false(on: &bool) -> bool {
    !on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_data_dir_works_on_every_command() {
        for command in ["index", "up", "status", "search"] {
            let mut argv = vec!["peershare", command, "--data-dir", "/d"];
            if command == "search" {
                argv.push("words");
            }
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{command}: {e}"));
            assert_eq!(cli.data_dir, Some(PathBuf::from("/d")), "{command}");
        }
        let cli = Cli::try_parse_from(["peershare", "index", "--index-data-dir", "/i"]).unwrap();
        match cli.command {
            Command::Index(args) => assert_eq!(args.index_data_dir, Some(PathBuf::from("/i"))),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn index_takes_an_audit_retention() {
        let cli =
            Cli::try_parse_from(["peershare", "index", "--audit-retention-days", "30"]).unwrap();
        match cli.command {
            Command::Index(args) => assert_eq!(args.audit_retention_days, Some(30)),
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "peershare",
            "index",
            "--database",
            "postgres://ix@db.example/peershare",
        ])
        .unwrap();
        match cli.command {
            Command::Index(args) => assert_eq!(
                args.database.as_deref(),
                Some("postgres://ix@db.example/peershare")
            ),
            other => panic!("parsed as {other:?}"),
        }
    }

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
