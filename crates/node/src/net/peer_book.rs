//! Every peer this daemon knows: its addresses, how it was found (index,
//! mDNS, DHT, bootstrap, or because it connected), whether a connection is
//! open, and when it was last seen.
//!
//! The book is bounded: past [`MAX_PEERS`] the peer seen longest ago (and
//! not connected) is forgotten, and each peer keeps at most
//! [`MAX_ADDRS_PER_PEER`] addresses. It records; it never dials.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use libp2p::{Multiaddr, PeerId};

use crate::now_ms;
pub use crate::views::{FoundBy, KnownPeer};

/// Most peers remembered.
pub const MAX_PEERS: usize = 10_000;
/// Most addresses remembered per peer.
pub const MAX_ADDRS_PER_PEER: usize = 16;

#[derive(Default)]
struct Entry {
    addrs: Vec<Multiaddr>,
    found_by: BTreeSet<FoundBy>,
    connections: usize,
    last_seen_ms: i64,
}

/// The shared, bounded book of known peers.
#[derive(Clone, Default)]
pub struct PeerBook {
    peers: Arc<Mutex<HashMap<PeerId, Entry>>>,
}

impl PeerBook {
    /// Records that `peer` was found `how`, at `addrs`.
    pub fn saw(&self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>, how: FoundBy) {
        let mut peers = self.peers.lock().expect("peer book lock");
        if !peers.contains_key(&peer) && peers.len() >= MAX_PEERS {
            forget_oldest(&mut peers);
        }
        let entry = peers.entry(peer).or_default();
        entry.found_by.insert(how);
        entry.last_seen_ms = now_ms();
        for addr in addrs {
            let addr = without_p2p(addr);
            if !entry.addrs.contains(&addr) {
                if entry.addrs.len() >= MAX_ADDRS_PER_PEER {
                    entry.addrs.remove(0);
                }
                entry.addrs.push(addr);
            }
        }
    }

    /// Records a connection to `peer` opening (`true`) or closing.
    pub fn connection(&self, peer: PeerId, opened: bool) {
        let mut peers = self.peers.lock().expect("peer book lock");
        if opened && !peers.contains_key(&peer) && peers.len() >= MAX_PEERS {
            forget_oldest(&mut peers);
        }
        let Some(entry) = (if opened {
            Some(peers.entry(peer).or_insert_with(|| Entry {
                found_by: [FoundBy::Connection].into(),
                ..Entry::default()
            }))
        } else {
            peers.get_mut(&peer)
        }) else {
            return;
        };
        entry.last_seen_ms = now_ms();
        entry.connections = if opened {
            entry.connections + 1
        } else {
            entry.connections.saturating_sub(1)
        };
    }

    /// Whether a connection to `peer` is open, and when it was last seen (ms), if known at all.
    pub fn presence(&self, peer: &PeerId) -> Option<(bool, i64)> {
        let peers = self.peers.lock().expect("peer book lock");
        peers.get(peer).map(|e| (e.connections > 0, e.last_seen_ms))
    }

    /// The addresses known for `peer`.
    pub fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers
            .lock()
            .expect("peer book lock")
            .get(peer)
            .map(|e| e.addrs.clone())
            .unwrap_or_default()
    }

    /// Whether `peer` was found `how` (among other ways).
    pub fn found_by(&self, peer: &PeerId, how: FoundBy) -> bool {
        let peers = self.peers.lock().expect("peer book lock");
        peers.get(peer).is_some_and(|e| e.found_by.contains(&how))
    }

    /// Every known peer, most recently seen first.
    pub fn list(&self) -> Vec<KnownPeer> {
        let peers = self.peers.lock().expect("peer book lock");
        let mut list: Vec<KnownPeer> = peers
            .iter()
            .map(|(id, e)| KnownPeer {
                peer_id: id.to_string(),
                addrs: e.addrs.iter().map(|a| a.to_string()).collect(),
                found_by: e.found_by.clone(),
                connected: e.connections > 0,
                path: None,
                relay: None,
                remote_addr: None,
                last_seen_ms: e.last_seen_ms,
            })
            .collect();
        list.sort_by_key(|p| std::cmp::Reverse(p.last_seen_ms));
        list
    }
}

fn forget_oldest(peers: &mut HashMap<PeerId, Entry>) {
    let oldest = peers
        .iter()
        .filter(|(_, e)| e.connections == 0)
        .min_by_key(|(_, e)| e.last_seen_ms)
        .map(|(id, _)| *id);
    if let Some(id) = oldest {
        peers.remove(&id);
    }
}

fn without_p2p(mut addr: Multiaddr) -> Multiaddr {
    if matches!(
        addr.iter().last(),
        Some(libp2p::multiaddr::Protocol::P2p(_))
    ) {
        addr.pop();
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_collect_ways_and_addresses_and_stay_bounded() {
        let book = PeerBook::default();
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/1100".parse().unwrap();
        book.saw(peer, [addr.clone()], FoundBy::Mdns);
        book.saw(
            peer,
            [addr.clone().with(libp2p::multiaddr::Protocol::P2p(peer))],
            FoundBy::Dht,
        );
        book.connection(peer, true);
        let listed = book.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addrs, vec![addr.to_string()]);
        assert_eq!(listed[0].found_by, [FoundBy::Mdns, FoundBy::Dht].into());
        assert!(listed[0].connected);
        book.connection(peer, false);
        assert!(!book.list()[0].connected);

        for port in 0..(MAX_ADDRS_PER_PEER as u16 + 5) {
            let a: Multiaddr = format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap();
            book.saw(peer, [a], FoundBy::Dht);
        }
        assert_eq!(book.addrs(&peer).len(), MAX_ADDRS_PER_PEER);
    }
}
