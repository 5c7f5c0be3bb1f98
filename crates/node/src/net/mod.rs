//! The libp2p side of a peer: the host (one composed behaviour and the
//! event loop that dispatches its events), the Kademlia and mDNS
//! behaviours it is built with, and the book of known peers.
//!
//! It carries requests and answers between peers; what a request means
//! (a browse listing, a transfer decision, a DHT record) is decided by the
//! subsystem that owns it.

pub mod announce_queue;
pub mod host;
pub mod kademlia;
pub mod peer_book;
