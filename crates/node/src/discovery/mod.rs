//! Finding peers and files without being told where they are: DHT
//! provider records and their announce queue, browsing a peer's listing,
//! the merged search over the index, the DHT and the LAN, people found
//! by user name, and the peers remembered from the last run.
//!
//! It never trusts a record: every hit is confirmed by browsing the peer
//! that claims it.

use crate::index_link::IndexLink;
use crate::net::host::Host;

pub mod browse;
pub mod dht;
pub mod found;
pub mod people;
pub mod remembered;
pub mod search;

/// Where discovery asks: the libp2p host, and the index link when the daemon has one.
#[derive(Clone, Copy)]
pub struct Reach<'a> {
    /// The libp2p host (DHT, browse).
    pub host: &'a Host,
    /// The index, when there is one.
    pub index: Option<&'a IndexLink>,
}
