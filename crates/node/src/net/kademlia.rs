//! The Kademlia and mDNS behaviours of the host and their settings: this
//! peer's own DHT (its protocol name keeps it apart from other libp2p
//! DHTs), in server mode, with bounded record stores; mDNS only when asked
//! for, since it multicasts on every interface.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::kad::{self, store::MemoryStore, store::MemoryStoreConfig};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{mdns, Multiaddr, PeerId, StreamProtocol};

/// The DHT's protocol name: peershare nodes form their own DHT.
pub const KAD_PROTOCOL: &str = "/peershare/kad/1";
/// Most keys this node announces (file ids and words).
pub const MAX_PROVIDED_KEYS: usize = 500_000;
/// How the serverless side runs.
#[derive(Debug, Clone)]
pub struct DhtSettings {
    /// Discover peers on the LAN by multicast DNS.
    pub mdns: bool,
    /// Peers to join the DHT through (full addresses ending in /p2p/<id>).
    pub bootstrap: Vec<Multiaddr>,
    /// How many nodes hold each provider record.
    pub replication: usize,
    /// How long a provider record lives on the nodes that hold it.
    pub provider_ttl: Duration,
    /// How often this node announces its records again (before they expire).
    pub republish: Duration,
    /// How long a DHT query may take.
    pub query_timeout: Duration,
    /// The port of the index this peer runs for others, told to the peers it
    /// meets (see [`crate::net::index_advert`]); `None` when it runs none.
    pub own_index_port: Option<u16>,
}

impl Default for DhtSettings {
    fn default() -> Self {
        Self {
            mdns: true,
            bootstrap: Vec::new(),
            replication: 20,
            provider_ttl: Duration::from_secs(24 * 3600),
            republish: Duration::from_secs(12 * 3600),
            query_timeout: Duration::from_secs(10),
            own_index_port: None,
        }
    }
}

/// The Kademlia behaviour, in server mode (peers on a LAN or with a public address answer queries).
pub fn kad_behaviour(peer_id: PeerId, settings: &DhtSettings) -> kad::Behaviour<MemoryStore> {
    let mut config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    config
        .set_replication_factor(
            NonZeroUsize::new(settings.replication.max(1)).expect("at least one"),
        )
        .set_provider_record_ttl(Some(settings.provider_ttl))
        .set_provider_publication_interval(Some(settings.republish.min(settings.provider_ttl)))
        .set_query_timeout(settings.query_timeout);
    let store = MemoryStore::with_config(
        peer_id,
        MemoryStoreConfig {
            max_provided_keys: MAX_PROVIDED_KEYS,
            max_providers_per_key: settings.replication.max(1),
            ..MemoryStoreConfig::default()
        },
    );
    let mut behaviour = kad::Behaviour::with_config(peer_id, store, config);
    behaviour.set_mode(Some(kad::Mode::Server));
    behaviour
}

/// mDNS when enabled (it multicasts on every interface), nothing otherwise.
pub fn mdns_behaviour(peer_id: PeerId, enabled: bool) -> Toggle<mdns::tokio::Behaviour> {
    let behaviour = enabled
        .then(|| mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id))
        .and_then(|made| {
            made.map_err(|e| tracing::warn!("LAN discovery (mDNS) is off: {e}"))
                .ok()
        });
    Toggle::from(behaviour)
}
