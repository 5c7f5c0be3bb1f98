//! The libp2p side of a peer: the host (one composed behaviour and the
//! event loop that dispatches its events), the Kademlia and mDNS
//! behaviours it is built with, the book of known peers, and the state of
//! each protocol the loop dispatches to: the DHT announce queue, transfer
//! requests held for the person, and the loop's deadlines; and what the
//! peer knows of its reachability and of each connection's path (NAT
//! traversal), with PCP and NAT-PMP port mapping beside libp2p's UPnP.
//!
//! It carries requests and answers between peers; what a request means
//! (a browse listing, a transfer decision, a DHT record) is decided by the
//! subsystem that owns it.

pub mod announce_queue;
pub mod deadlines;
pub mod host;
pub mod index_advert;
pub mod kademlia;
pub mod peer_book;
pub mod port_control;
pub mod reachability;
pub mod transfer_requests;
