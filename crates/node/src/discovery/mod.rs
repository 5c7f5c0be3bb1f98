//! Finding peers and files without being told where they are: DHT
//! provider records and their announce queue, browsing a peer's listing,
//! the merged search over the index, the DHT and the LAN, and people found
//! by user name.
//!
//! It never trusts a record: every hit is confirmed by browsing the peer
//! that claims it.

pub mod browse;
pub mod dht;
pub mod people;
pub mod search;
