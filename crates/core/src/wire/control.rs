//! Control messages carried over libp2p request-response (CBOR).
//!
//! Protocols: `/peershare/browse/1` ([`BrowseRequest`] → [`BrowseResponse`])
//! and `/peershare/transfer/1` ([`TransferRequest`] → [`TransferResponse`]).
//! These types never carry file bytes: pieces move on the data connection.

use serde::{Deserialize, Serialize};

use crate::FileId;

/// The libp2p protocol name for listing a peer's shared files.
pub const BROWSE_PROTOCOL: &str = "/peershare/browse/1";
/// The libp2p protocol name for asking a peer to send a file.
pub const TRANSFER_PROTOCOL: &str = "/peershare/transfer/1";
/// The most entries a browse response carries; larger shares are paged.
pub const MAX_BROWSE_PAGE: u32 = 1000;
/// The most bytes of names a browse page carries (a page stops early to stay under it).
pub const MAX_BROWSE_PAGE_NAME_BYTES: usize = 2 << 20;
/// The most words of a filtered browse a responder uses.
pub const MAX_BROWSE_WORDS: usize = 8;
/// The most peers a grant names as others fetching the same file.
pub const MAX_SWARM_HINTS: usize = 32;
/// The largest control message accepted, in bytes.
pub const MAX_CONTROL_MESSAGE: u64 = 4 << 20;

/// Asks for one page of a peer's shared files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseRequest {
    /// Index of the first entry wanted.
    pub offset: u64,
    /// Entries wanted; the responder caps it at [`MAX_BROWSE_PAGE`].
    pub limit: u32,
    /// When not empty, only entries whose names hold every one of these words
    /// (as [`crate::words::name_words`] splits them); offset and total count
    /// within those. At most [`MAX_BROWSE_WORDS`] are used. Absent in older
    /// requests; a responder that ignores it answers with every entry, so the
    /// asker checks the words itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<String>,
}

/// One shared file as peers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFileEntry {
    /// Path inside the shared folder, `/`-separated. Untrusted on receipt.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the content.
    pub id: FileId,
}

/// One page of shared files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseResponse {
    /// The entries of this page.
    pub files: Vec<SharedFileEntry>,
    /// How many entries the whole share has.
    pub total: u64,
}

/// Asks a peer to send the file with this id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// The file wanted.
    pub id: FileId,
}

/// The sharing side's answer to a [`TransferRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferResponse {
    /// Accepted: open a data connection to `data_port` and present `ticket`.
    Granted {
        /// One-use secret naming this grant on the data connection.
        ticket: u64,
        /// TCP port of the sharer's data listener, on the address already in use.
        data_port: u16,
        /// Size of the file in bytes.
        size: u64,
        /// Piece length the sharer's outboard uses.
        piece_len: u64,
        /// The sharer's name for the file (untrusted).
        name: String,
        /// Other peers the sharer knows to fetch or hold this file, as full
        /// addresses (`…/p2p/<peer id>`), at most [`MAX_SWARM_HINTS`]; hints
        /// only, untrusted. Absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        swarm: Vec<String>,
        /// The sharer's public IP as other peers see it, when it knows one:
        /// where a downloader behind a router aims a `Punch` (absent otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_ip: Option<std::net::IpAddr>,
    },
    /// The person sharing said no, or did not answer in time.
    Rejected {
        /// Why, for the downloader's screen.
        reason: String,
    },
    /// All upload slots are in use; try again later.
    Busy,
    /// No shared file has this id.
    NotFound,
}
