//! Moving file bytes between peers: the bulk data connection and its TLS
//! (bound to each peer's libp2p key), the sharing side ([`upload`]) and
//! the fetching side ([`download`]), and the rate limits each direction
//! shares ([`rate_limit`]).
//!
//! No file is ever held whole in memory on either side; every piece is
//! verified against the file's id before it counts.

pub mod data_channel;
pub mod download;
pub mod partial;
pub mod peer_tls;
pub mod punch;
pub mod rate_limit;
pub mod upload;
