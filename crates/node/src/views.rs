//! The records that cross the local API, defined once and used by the
//! daemon (to answer) and by every client (the CLI, later the web UI) to
//! read the answer: downloads, uploads, requests, controls and events.
//!
//! This module is a leaf: it imports no subsystem, so every subsystem may
//! build these records without depending on the API's routes.

use std::collections::BTreeSet;

use peershare_core::wire::control::SharedFileEntry;
use peershare_core::FileId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DownloadState {
    /// Being fetched (or about to be resumed).
    Active,
    /// Waiting to try its source again (it was busy); see `next_try_ms`.
    Queued,
    /// Stopped by the person; the verified pieces are kept.
    Paused,
    /// Verified and renamed into place.
    Done,
    /// Stopped with an error; the partial file is kept for a later resume.
    Failed,
    /// Stopped by the person and its partial file deleted.
    Cancelled,
}

impl DownloadState {
    /// The name stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Queued => "queued",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads a stored name (anything unknown counts as active, to be resumed).
    pub fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "paused" => Self::Paused,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Active,
        }
    }

    /// True for states a download only leaves when a person acts (resume, remove).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    /// True while the download owns a partial file it will continue from.
    pub fn owns_partial(self) -> bool {
        !matches!(self, Self::Done | Self::Cancelled)
    }
}

/// A download as stored in `peer.db`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DownloadRecord {
    /// Local number of the download.
    pub id: i64,
    /// The file's id.
    #[schema(value_type = String)]
    pub file_id: FileId,
    /// The (sanitised) name it gets in the downloads folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The source's address.
    pub source: String,
    /// Where it stands.
    pub state: DownloadState,
    /// Why it failed or waits, if it does.
    pub error: Option<String>,
    /// Where the finished file is.
    pub path: Option<String>,
    /// Seconds since the Unix epoch when it was asked for.
    pub created_at: i64,
    /// Seconds since the Unix epoch when it ended.
    pub finished_at: Option<i64>,
    /// Milliseconds since the Unix epoch of the next try, while queued.
    pub next_try_ms: Option<i64>,
    /// Pieces are fetched in file order (to preview media while it downloads).
    pub sequential: bool,
    /// This download's own rate limit in bytes per second, under the global one.
    pub max_rate: Option<u64>,
}

/// How a download is fetched, chosen when it is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DownloadOptions {
    /// Fetch pieces in file order instead of rarest first.
    #[serde(default)]
    pub sequential: bool,
    /// Its own rate limit in bytes per second (none when absent).
    #[serde(default)]
    pub max_rate: Option<u64>,
}

/// A change to one download's rate limit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct DownloadRateRequest {
    /// Bytes per second; absent or 0 lifts the limit.
    #[serde(default)]
    pub max_rate: Option<u64>,
}

/// A download as shown to people and scripts: the record and its live progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DownloadView {
    /// The stored record.
    #[serde(flatten)]
    pub record: DownloadRecord,
    /// Bytes verified and on disk (from earlier runs too).
    pub verified_bytes: u64,
    /// Bytes received from the network in this run (a resume fetches fewer than `size`).
    pub fetched_bytes: u64,
    /// Average receive rate of this run, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Seconds left at the current rate, when it is moving.
    pub eta_secs: Option<u64>,
    /// Sources sending pieces right now.
    pub sources: u32,
    /// Every source of this run and what it did.
    pub peers: Vec<SourceView>,
    /// True while a task is working on it (fetching, or waiting to retry).
    pub running: bool,
}

/// Where one source of a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourcePhase {
    /// Asked for the file; no piece yet.
    Asking,
    /// Sending pieces.
    Fetching,
    /// Busy: asked again later.
    Busy,
    /// Stopped answering (a step or a read timed out): asked again later (see `note`).
    Silent,
    /// Not used again in this download (see `note`).
    Dropped,
    /// Done: the download no longer needs it.
    Done,
}

/// How a download came to know one of its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceFound {
    /// The person named it, or `get` chose it first.
    Named,
    /// `get`'s search for the file (the index, the DHT, the LAN) named it.
    Search,
    /// A look for holders during the download (the index, the DHT) found it.
    Lookup,
    /// Another source named it as fetching or holding the file too.
    Hint,
    /// It asked this peer for the file (it is fetching it too).
    Asked,
}

/// One source of a download and what it did in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceView {
    /// The peer.
    pub peer_id: String,
    /// The user name an index gives the peer, when there is one (filled in
    /// by the API's download lists, not in events).
    pub user: Option<String>,
    /// How the download came to know it.
    pub found_by: SourceFound,
    /// Where it stands.
    pub phase: SourcePhase,
    /// Pieces it sent.
    pub pieces: u64,
    /// Bytes it sent.
    pub bytes: u64,
    /// Its average rate since it started sending, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Why it is busy, silent or was dropped, or what an asked source has not answered yet.
    pub note: Option<String>,
    /// How its data travels, once a data connection is open.
    #[serde(default)]
    pub path: Option<DataPath>,
}

/// The path a data connection took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DataPath {
    /// Direct, hole-punched or relayed.
    pub connection: ConnectionPath,
    /// The channel the pieces use: `tcp` (the data connection) or `stream`
    /// (a stream on the libp2p connection, when no data connection could be made).
    pub channel: DataChannel,
    /// The relay's peer id, when relayed.
    pub relay: Option<String>,
}

/// What carries a transfer's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataChannel {
    /// A TCP data connection of its own, with TLS.
    Tcp,
    /// A stream on the libp2p connection.
    Stream,
}

/// How a connection to a peer reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionPath {
    /// Dialled or accepted at an address the peer listens on (or a mapped port).
    Direct,
    /// Made by hole punching (DCUtR) from a relayed connection.
    HolePunched,
    /// Through a relay (circuit relay v2).
    Relayed,
}

/// Progress of a running download, pushed as it moves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DownloadProgress {
    /// The download's local number.
    pub id: i64,
    /// Its size.
    pub size: u64,
    /// Bytes verified and on disk.
    pub verified_bytes: u64,
    /// Bytes received in this run.
    pub fetched_bytes: u64,
    /// Average receive rate of this run, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Seconds left at that rate.
    pub eta_secs: Option<u64>,
    /// Sources sending pieces right now.
    pub sources: u32,
    /// Every source of this run and what it did.
    #[serde(default)]
    pub peers: Vec<SourceView>,
}

/// The body of `POST /api/v1/downloads`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct GetRequest {
    /// A full peer address; without one the file is looked up by name or id.
    #[serde(default)]
    pub peer: Option<String>,
    /// How to fetch it (sequential pieces, its own rate limit).
    #[serde(default, flatten)]
    pub options: DownloadOptions,
    /// The file's name or id.
    pub file: String,
    /// Copy the file even if it is already here.
    #[serde(default)]
    pub again: bool,
    /// Full addresses of holders to try first (from a share link).
    #[serde(default)]
    pub sources: Vec<String>,
}

/// A share link of one file (`peershare link`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkView {
    /// The `peershare:` URI.
    pub uri: String,
    /// The file's id.
    #[schema(value_type = String)]
    pub file_id: FileId,
    /// Its shared name.
    pub name: String,
    /// Its size.
    pub size: u64,
}

/// What `POST /api/v1/downloads` did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GetAnswer {
    /// A download started (or an unfinished one was resumed).
    Started {
        /// The download.
        download: DownloadView,
    },
    /// The file is already being downloaded; this is that download.
    Attached {
        /// The download.
        download: DownloadView,
    },
    /// The file is already complete on this machine; nothing was copied.
    AlreadyHere {
        /// The file's id.
        #[schema(value_type = String)]
        file_id: FileId,
        /// Where it is.
        path: String,
    },
}

/// What `POST /api/v1/downloads/clean` removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CleanReport {
    /// The partial and map files deleted.
    pub removed: Vec<String>,
    /// Bytes those files took.
    pub bytes_freed: u64,
}

/// A transfer request waiting for the person's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingRequest {
    /// Number to accept or reject it by.
    pub id: u64,
    /// Who asks (peer id).
    pub peer: String,
    /// The asker's user name, when an index vouches for it.
    pub user: Option<String>,
    /// Which file.
    #[schema(value_type = String)]
    pub file_id: FileId,
    /// The file's shared name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Seconds left before it is rejected by timeout.
    pub expires_in: u64,
}

/// One upload: a peer fetching one of this peer's files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadView {
    /// Local number of the upload (per daemon run).
    pub id: u64,
    /// Who downloads (peer id).
    pub peer: String,
    /// Their user name, when an index vouches for it.
    pub user: Option<String>,
    /// The file's id.
    #[schema(value_type = String)]
    pub file_id: FileId,
    /// The file's shared name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Bytes sent on this connection.
    pub sent_bytes: u64,
    /// Average send rate, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Milliseconds since the Unix epoch when it started.
    pub started_ms: i64,
    /// How the data travels to the downloader.
    #[serde(default)]
    pub path: Option<DataPath>,
}

/// The answer to accepting or rejecting a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestAnswer {
    /// The request's number.
    pub id: u64,
    /// What the person said.
    pub accepted: bool,
    /// False when accepted but every upload slot was busy.
    pub granted: bool,
}

/// The body of `POST /api/v1/shares/folders` and `/shares/folders/remove`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FolderRequest {
    /// An absolute path to the folder.
    pub path: String,
}

/// The body of `POST /api/v1/sharing`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SharingRequest {
    /// True to offer the files to the network, false to withdraw them all.
    pub online: bool,
}

/// What this peer shares.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SharesView {
    /// False while sharing is switched off (`peershare offline`).
    pub online: bool,
    /// The shared folders.
    pub folders: Vec<String>,
    /// Every shared file (folders and finished downloads), by name.
    pub files: Vec<FileEntry>,
    /// How many files.
    pub total: u64,
}

/// One file as listed: by a share, a browsed peer, a link.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileEntry {
    /// The name on that peer (a relative path with `/`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 id.
    #[schema(value_type = String)]
    pub id: FileId,
}

impl From<SharedFileEntry> for FileEntry {
    fn from(e: SharedFileEntry) -> Self {
        Self {
            name: e.name,
            size: e.size,
            id: e.id,
        }
    }
}

/// What a peer shares, as browsing it found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrowseView {
    /// The peer's id.
    pub peer: String,
    /// Its files, by name.
    pub files: Vec<FileEntry>,
    /// How many files it says it shares.
    pub total: u64,
    /// True when the listing was cut short (too long to read whole).
    pub truncated: bool,
}

/// Where a user's files were listed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListedBy {
    /// The index, which vouches for its users.
    Index,
    /// Peers announcing the name in the DHT, which nobody vouches for.
    Dht,
}

/// One file of a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserFile {
    /// BLAKE3 id.
    #[schema(value_type = String)]
    pub id: FileId,
    /// Its name on that peer.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The peer sharing it.
    pub peer_id: String,
    /// Whether that peer is online.
    pub online: bool,
}

/// A peer that announces a user name in the DHT, and whether it could be browsed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Claimant {
    /// The peer.
    pub peer_id: String,
    /// It answered with its listing.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default)]
    pub error: Option<String>,
}

/// A user's files (`browse NAME`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserFilesView {
    /// The user name.
    pub user: String,
    /// Entries skipped.
    pub offset: i64,
    /// The files, by name.
    pub files: Vec<UserFile>,
    /// Where the list comes from.
    pub origin: ListedBy,
    /// Why the index was not asked (a DHT answer only).
    #[serde(default)]
    pub index_error: Option<String>,
    /// The peers that claim the name (a DHT answer only).
    #[serde(default)]
    pub claimed_by: Vec<Claimant>,
}

/// A login session the daemon keeps.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// The user logged in.
    pub name: String,
    /// When the session ends, milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// The membership once it settled (joined, or why not), after a few seconds at most.
    pub index: IndexStatus,
}

/// The shared folders after one was added or removed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FoldersChanged {
    /// The shared folders now.
    pub folders: Vec<String>,
    /// Files shared now.
    pub shared_files: usize,
    /// Files that had to be hashed.
    pub hashed: usize,
}

/// What the sharing side does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Grant every request while slots are free.
    Accept,
    /// Hold each request until the person accepts or rejects it.
    Ask,
    /// Grant contacts' requests; hold everyone else's for the person.
    Contacts,
}

/// Where the membership stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// No session: someone has to log in.
    LoggedOut,
    /// Joining (or joining again).
    Joining,
    /// Online in the index, sending heartbeats.
    Joined,
    /// The index cannot be reached; retrying.
    Unreachable,
    /// The index refused the join or an update; retrying later.
    Refused,
    /// Sharing is switched off (`peershare offline`): this peer left the index.
    Offline,
}

/// What `status` shows about the index.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IndexStatus {
    /// The index's URL.
    pub url: String,
    /// The logged-in user.
    pub user: Option<String>,
    /// Where the membership stands.
    pub state: LinkState,
    /// A sentence for people: what is going on, what to do.
    pub message: String,
    /// Files the index lists for this peer.
    pub published_files: usize,
    /// Seconds between heartbeats, once joined.
    pub heartbeat_secs: Option<u64>,
    /// Last successful exchange, milliseconds since the Unix epoch.
    pub last_contact_ms: Option<i64>,
}

/// How a peer came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// Listed by the index.
    Index,
    /// Announced itself on the LAN.
    Mdns,
    /// Learned from the DHT.
    Dht,
    /// Given with `--bootstrap`.
    Bootstrap,
    /// It connected to us, or we to it by address.
    Connection,
}

/// One known peer, as `peers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KnownPeer {
    /// The peer id.
    pub peer_id: String,
    /// Addresses it can be reached at.
    pub addrs: Vec<String>,
    /// Every way it was found.
    pub found_by: std::collections::BTreeSet<FoundBy>,
    /// A connection is open now.
    pub connected: bool,
    /// The best open connection's path, when connected.
    #[serde(default)]
    pub path: Option<ConnectionPath>,
    /// The relay's peer id, when the best open connection is relayed.
    #[serde(default)]
    pub relay: Option<String>,
    /// The best open connection's remote address (the relay's, when relayed).
    #[serde(default)]
    pub remote_addr: Option<String>,
    /// Last time anything was heard of it, milliseconds since the Unix epoch.
    pub last_seen_ms: i64,
}

/// What AutoNAT concluded about this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatState {
    /// Not known yet (no peer has tried to dial back).
    Unknown,
    /// Peers dialled back one of its addresses.
    Public,
    /// Peers could not dial it back: it sits behind a NAT or a firewall.
    Private,
}

/// Where the router's port mapping (UPnP IGD, PCP or NAT-PMP, the best of them) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PortMappingState {
    /// Turned off (`--no-port-mapping`).
    Off,
    /// Looking for a gateway.
    Searching,
    /// The gateway mapped at least one port.
    Mapped,
    /// No gateway answered.
    NoGateway,
    /// The gateway answered but sits behind another NAT itself.
    GatewayNotPublic,
}

impl PortMappingState {
    /// How much better this state is than others, to show the best of two protocols.
    pub fn rank(self) -> u8 {
        match self {
            Self::Off => 0,
            Self::NoGateway => 1,
            Self::GatewayNotPublic => 2,
            Self::Searching => 3,
            Self::Mapped => 4,
        }
    }
}

/// A protocol that asks the router to map ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappingProtocol {
    /// UPnP Internet Gateway Device.
    UpnpIgd,
    /// PCP, the Port Control Protocol (RFC 6887).
    Pcp,
    /// NAT-PMP (RFC 6886).
    NatPmp,
}

/// The relay service this peer offers others.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelayServiceView {
    /// Whether it relays at all.
    pub enabled: bool,
    /// Whether its circuits carry bulk data (else only small control traffic).
    pub bulk: bool,
    /// Peers holding a slot on it now.
    pub reservations: usize,
    /// Circuits open through it now.
    pub circuits: usize,
    /// Slots it holds at most.
    #[serde(default)]
    pub max_reservations: usize,
    /// Circuits it keeps open at most.
    #[serde(default)]
    pub max_circuits: usize,
}

/// How others reach this peer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReachabilityView {
    /// What AutoNAT concluded.
    pub nat: NatState,
    /// Addresses confirmed reachable from outside (dialled back, or mapped).
    pub public_addrs: Vec<String>,
    /// The router's port mapping.
    pub port_mapping: PortMappingState,
    /// The protocols the router mapped ports with.
    #[serde(default)]
    pub mapped_by: Vec<MappingProtocol>,
    /// Relayed addresses: a relay holds a slot for this peer at each.
    pub relayed_addrs: Vec<String>,
    /// The relay service it offers.
    pub relay_service: RelayServiceView,
    /// Its public IP as most peers on direct connections see it, when any does.
    #[serde(default)]
    pub seen_as: Option<String>,
    /// Whether its router keeps its port towards every destination.
    #[serde(default)]
    pub mapping: NatMapping,
}

/// How the router in front of this peer maps its port, from what peers saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatMapping {
    /// Fewer than two peers saw it yet.
    #[default]
    Unknown,
    /// The same port for every destination (or no router at all).
    Kept,
    /// A new port for every destination (a "symmetric" NAT): hole punching
    /// needs many tries at once.
    Changes,
}

/// This peer, as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// Its peer id.
    pub peer_id: String,
    /// Full addresses others reach it at (ending in /p2p/<peer id>).
    pub addrs: Vec<String>,
    /// The data connection's port.
    pub data_port: u16,
    /// The shared folders.
    pub shares: Vec<String>,
    /// Files shared (folders and finished downloads).
    pub shared_files: usize,
    /// False while sharing is switched off (`peershare offline`).
    pub sharing_online: bool,
    /// Where downloads land.
    pub downloads_dir: String,
    /// What it does with transfer requests.
    pub policy: Policy,
    /// Upload slots (pieces sent at once).
    pub max_uploads: usize,
    /// Peers served at once at most.
    pub max_upload_peers: usize,
    /// Uploads running now (data connections open; unused grants do not count).
    pub uploads_running: usize,
    /// Its membership in an index, if it uses one.
    pub index: Option<IndexStatus>,
    /// Sealed letters this peer keeps for others who are away (it is near them in the DHT).
    #[serde(default)]
    pub kept_letters: u64,
    /// Shared folders (or parts of them) the last rescan could not read; their
    /// files stay shared as last seen until a later rescan reads them again.
    #[serde(default)]
    pub share_problems: Vec<ShareProblem>,
    /// How others reach it: NAT state, public and relayed addresses, port mapping, relay service.
    #[serde(default)]
    pub reachability: Option<ReachabilityView>,
}

/// A shared folder, or a part of one, that the last rescan could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareProblem {
    /// The shared folder.
    pub folder: String,
    /// What could not be read and why.
    pub message: String,
}

/// The peers this one knows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeersView {
    /// Most recently seen first.
    pub peers: Vec<KnownPeer>,
}

/// An error from the local API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// A stable code for scripts (`not_found`, `bad_request`, `busy`, …).
    pub code: String,
    /// What went wrong and what to do next, for people.
    pub message: String,
}

/// Something that happened in the node, pushed to subscribers of `/api/v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Increases by one per event published by this daemon run.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A running download moved (at most a few per second per download).
    DownloadProgress(DownloadProgress),
    /// A download started, was queued, paused, resumed, finished, failed or was cancelled.
    DownloadChanged {
        /// The download as it is now.
        download: DownloadView,
    },
    /// A download's entry was removed.
    DownloadRemoved {
        /// Its local number.
        id: i64,
    },
    /// A transfer request waits for the person's answer.
    RequestWaiting {
        /// The request.
        request: PendingRequest,
    },
    /// A waiting request was answered or timed out.
    RequestEnded {
        /// Its number.
        id: u64,
        /// True if it was accepted.
        accepted: bool,
    },
    /// A peer started downloading from this one.
    UploadStarted {
        /// The upload.
        upload: UploadView,
    },
    /// An upload ended.
    UploadEnded {
        /// The upload as it ended.
        upload: UploadView,
    },
    /// The membership in the index changed (joined, unreachable, offline, logged out…).
    IndexChanged {
        /// Where it stands now.
        status: IndexStatus,
    },
    /// New or changed shared files are being hashed (at most a few per second, and at the end).
    SharesHashing(HashingProgress),
    /// The set of shared files changed.
    SharesChanged {
        /// Files shared now.
        shared_files: usize,
    },
    /// A connection to a peer opened or closed.
    PeerConnection {
        /// The peer.
        peer_id: String,
        /// True when it opened.
        connected: bool,
        /// The path of the best connection still open.
        #[serde(default)]
        path: Option<ConnectionPath>,
    },
    /// A peer on the LAN runs an index, while this daemon runs its own: two
    /// separate networks, unless the person restarts with `--index URL`.
    IndexNearby {
        /// The peer running it.
        peer_id: String,
        /// Where it answers, e.g. `http://192.168.1.20:1099`.
        url: String,
    },
    /// A message arrived.
    MessageReceived {
        /// The message.
        message: MessageView,
    },
    /// A message's state changed (delivered, read, held, expired…).
    MessageChanged {
        /// The message as it is now.
        message: MessageView,
    },
    /// A name resolved to peers that were not pinned to it: messages to it wait
    /// until the person checks and runs `peershare contacts trust NAME`.
    KeyChanged {
        /// The name (a user name or a peer id).
        name: String,
        /// The peers not pinned before.
        new_peers: Vec<String>,
    },
    /// A contact came online or went offline.
    ContactPresence {
        /// The contact.
        name: String,
        /// Whether one of its peers is online now.
        online: bool,
    },
    /// The policy, rate limits or upload slots were changed.
    SettingsChanged {
        /// The limits now.
        limits: LimitsView,
        /// The policy now.
        policy: Policy,
    },
    /// This subscriber read too slowly: events were dropped and the stream ends.
    Overflow {
        /// How many events it missed.
        dropped: u64,
    },
}

/// How far a rescan's hashing is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HashingProgress {
    /// Files hashed so far.
    pub files_done: u64,
    /// Files to hash in this rescan.
    pub files_total: u64,
    /// Bytes hashed so far.
    pub bytes_done: u64,
    /// Bytes to hash in this rescan.
    pub bytes_total: u64,
}

/// What progress events replace each other in a slow subscriber's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKey {
    /// The progress of one download.
    Download(i64),
    /// Hashing of shared files.
    Hashing,
}

impl EventKind {
    /// Events of the same key replace each other in a slow subscriber's queue.
    pub fn progress_key(&self) -> Option<ProgressKey> {
        match self {
            Self::DownloadProgress(p) => Some(ProgressKey::Download(p.id)),
            Self::SharesHashing(_) => Some(ProgressKey::Hashing),
            _ => None,
        }
    }
}

/// Where a holder was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The index listed it.
    Index,
    /// The DHT named it as a provider.
    Dht,
    /// The DHT named it, and it was found on the LAN.
    Lan,
}

/// A holder of a file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Holder {
    /// The user, when the index knows it.
    pub user: Option<String>,
    /// The peer id.
    pub peer_id: String,
    /// Where to reach it.
    pub addrs: Vec<String>,
    /// Where it was found.
    pub found_by: BTreeSet<Origin>,
}

/// One file id with the peers holding it: the one shape every search
/// answers with, whether the index, the DHT or the LAN found it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Hit {
    /// The file id.
    #[schema(value_type = String)]
    pub id: FileId,
    /// Names it is shared under.
    pub names: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// Holders from every source.
    pub sources: Vec<Holder>,
    /// How many holders are known: more than `sources` lists when the
    /// index listed a sample of a popular file's holders.
    #[serde(default)]
    pub sources_total: usize,
}

impl Holder {
    /// A holder found at `addrs` by `origin`, its user unknown.
    pub fn found(peer_id: String, addrs: &[impl ToString], origin: Origin) -> Self {
        Self {
            user: None,
            peer_id,
            addrs: addrs.iter().map(ToString::to_string).collect(),
            found_by: BTreeSet::from([origin]),
        }
    }
}

impl Hit {
    /// File `id`, of unknown name and size, held by `holder`.
    pub fn held_by(id: FileId, holder: Holder) -> Self {
        Self {
            id,
            names: Vec::new(),
            size: 0,
            sources: vec![holder],
            sources_total: 1,
        }
    }
}

/// The rate limits in force (bytes per second; none when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct LimitsView {
    /// All uploads together.
    pub max_upload_rate: Option<u64>,
    /// All downloads together.
    pub max_download_rate: Option<u64>,
    /// Upload slots: pieces sent at once.
    pub max_uploads: usize,
    /// Peers served at once; more are told "busy".
    pub max_upload_peers: usize,
}

/// The body of `POST /api/v1/limits`: a field left out is not changed; 0 removes that limit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct LimitsRequest {
    /// New limit for all uploads, bytes per second (0: none).
    pub max_upload_rate: Option<u64>,
    /// New limit for all downloads, bytes per second (0: none).
    pub max_download_rate: Option<u64>,
    /// New number of upload slots (at least 1).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_uploads: Option<usize>,
    /// New number of peers served at once (at least 1).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_upload_peers: Option<usize>,
}

/// The body of `POST /api/v1/policy`, and its answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct PolicyChange {
    /// What to do with transfer requests from now on.
    pub policy: Policy,
}

/// Where a download's folder is, after asking to open it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenedFolder {
    /// The folder.
    pub path: String,
}

/// Where a message stands. Outgoing: `held` (waiting for the person to trust
/// a changed key), `sending`, `stored` (in a mailbox, waiting for the
/// recipient), `delivered`, `read`, `expired`, `failed`. Incoming: `unread`, `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Waiting until the person trusts the recipient's changed keys.
    Held,
    /// Being delivered.
    Sending,
    /// Left in a mailbox for the recipient to collect.
    Stored,
    /// Received by at least one of the recipient's peers.
    Delivered,
    /// Read by the recipient (or, incoming, by this person).
    Read,
    /// No peer of the recipient collected it before it expired.
    Expired,
    /// Every recipient peer refused it.
    Failed,
    /// Incoming, not yet shown to the person.
    Unread,
}

impl MessageState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Sending => "sending",
            Self::Stored => "stored",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Unread => "unread",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Held,
            Self::Sending,
            Self::Stored,
            Self::Delivered,
            Self::Read,
            Self::Expired,
            Self::Failed,
            Self::Unread,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// The letter id (32 hex digits), the same on both sides.
    pub id: String,
    /// The chat: the other person's user name, or their peer id.
    pub chat: String,
    /// Sent by this person.
    pub outgoing: bool,
    /// Incoming: the peer that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// Incoming: the user name the sender claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user: Option<String>,
    /// Incoming: the index or the pinned keys vouch for the sender's name.
    pub verified: bool,
    /// The text.
    pub text: String,
    /// When the sender wrote it (ms since the Unix epoch, the sender's clock).
    pub sent_at: i64,
    /// When this peer stored it.
    pub stored_at: i64,
    /// Where it stands.
    pub state: MessageState,
    /// Why it is held, failed or flagged (a changed key, a refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatView {
    /// The other person: a user name, or a peer id.
    pub chat: String,
    /// Incoming messages not yet shown.
    pub unread: u64,
    /// Messages in all.
    pub messages: u64,
    /// The latest message.
    pub last: Option<MessageView>,
    /// Messages waiting because this person's keys changed.
    pub held: u64,
}

/// Send a message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// A user name, or a peer id.
    pub to: String,
    /// The text (at most 64 KiB).
    pub text: String,
}

/// A message accepted for sending.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SentMessage {
    /// The message as stored.
    pub message: MessageView,
    /// Recipient peers it was sealed for.
    pub recipients: usize,
    /// Where the recipient's keys came from: `index`, `dht` (unverified), `peer`, `pinned`.
    pub keys_from: String,
}

/// A peer pinned to a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PinnedPeer {
    /// The peer id.
    pub peer_id: String,
    /// When it was pinned.
    pub pinned_at: i64,
}

/// A contact (or a blocked name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactView {
    /// A user name, or a peer id.
    pub name: String,
    /// Added as a contact.
    pub contact: bool,
    /// Blocked: its messages and download requests are refused.
    pub blocked: bool,
    /// The peers pinned to it.
    pub peers: Vec<PinnedPeer>,
    /// Whether one of its peers is online, when that could be told.
    pub online: Option<bool>,
    /// When it was last seen online (ms since the Unix epoch), when known.
    pub last_seen: Option<i64>,
    /// Where presence came from: `index`, `connection` or `unknown`.
    pub presence_from: String,
}

/// Names a contact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactRequest {
    /// A user name, or a peer id.
    pub name: String,
}
