//! How this peer is reached, and how it reaches each peer: what AutoNAT
//! concluded (public, private, unknown), the addresses confirmed public,
//! the router's port mapping (UPnP), the relays holding a slot for this
//! peer, the relay service it offers, and for every open connection whether
//! it is direct, hole-punched or relayed, and through which relay.
//!
//! The host's event loop is its only writer; `status`, `peers`, the
//! transfers' path choice and the events read it. It never dials, listens
//! or decides anything itself: the loop does, from what it records here.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::host::ip_of;
use crate::views::{
    ConnectionPath, MappingProtocol, NatMapping, NatState, PortMappingState, ReachabilityView,
    RelayServiceView,
};

/// Relays a peer behind a NAT keeps a slot on at once.
pub const WANTED_RELAYS: usize = 2;
/// How long a data port found closed is not tried again.
pub const CLOSED_DATA_PORT_MEMORY: Duration = Duration::from_secs(600);
/// Peers remembered with a closed data port, at most.
const MAX_CLOSED_DATA_PORTS: usize = 4096;
/// Peers whose view of this peer's address is remembered, at most (the newest).
const MAX_OBSERVERS: usize = 16;

/// How this peer deals with NATs.
#[derive(Debug, Clone)]
pub struct NatSettings {
    /// Ask the router to map the listening ports (UPnP IGD).
    pub port_mapping: bool,
    /// Relays to keep a slot on whatever AutoNAT says (full addresses ending in /p2p/<id>).
    pub relays: Vec<Multiaddr>,
    /// The relay service offered to others.
    pub relay_service: RelayServiceSettings,
    /// How long after start the first AutoNAT probe runs.
    pub probe_delay: Duration,
}

impl Default for NatSettings {
    fn default() -> Self {
        Self {
            port_mapping: true,
            relays: Vec::new(),
            relay_service: RelayServiceSettings::default(),
            probe_delay: Duration::from_secs(5),
        }
    }
}

/// The bounded relay service (circuit relay v2) a reachable peer offers.
#[derive(Debug, Clone)]
pub struct RelayServiceSettings {
    /// Offer it at all.
    pub enabled: bool,
    /// Peers holding a slot at once.
    pub max_reservations: usize,
    /// Circuits open at once.
    pub max_circuits: usize,
    /// Let circuits carry bulk data (a transfer whose peers cannot hole-punch).
    pub bulk: bool,
    /// Bytes one circuit may carry each way when bulk is allowed (0: no limit).
    pub bulk_bytes: u64,
    /// How long one circuit may stay open when bulk is allowed.
    pub bulk_duration: Duration,
}

impl Default for RelayServiceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_reservations: 128,
            max_circuits: 16,
            bulk: false,
            bulk_bytes: 0,
            bulk_duration: Duration::from_secs(3600),
        }
    }
}

impl RelayServiceSettings {
    /// The relay behaviour's configuration: small circuits unless bulk is allowed.
    pub fn config(&self) -> libp2p::relay::Config {
        let mut config = libp2p::relay::Config {
            max_reservations: self.max_reservations,
            max_circuits: self.max_circuits,
            ..Default::default()
        };
        if self.bulk {
            config.max_circuit_bytes = self.bulk_bytes;
            config.max_circuit_duration = self.bulk_duration;
        }
        config
    }
}

/// One open connection and its path.
#[derive(Debug, Clone)]
struct Link {
    peer: PeerId,
    path: ConnectionPath,
    /// The relay, when relayed.
    relay: Option<PeerId>,
    /// The far end's address as this side sees it (through the relay, when relayed).
    remote: Multiaddr,
    /// When it opened.
    since: Instant,
}

#[derive(Debug)]
struct State {
    nat: NatState,
    public_addrs: BTreeSet<Multiaddr>,
    /// Where each mapping protocol stands.
    port_mapping: BTreeMap<MappingProtocol, PortMappingState>,
    relayed_addrs: BTreeSet<Multiaddr>,
    relay_service: RelayServiceView,
    links: HashMap<ConnectionId, Link>,
    /// What each relay said a circuit through it may carry, in bytes (`None`: no limit).
    circuit_bytes: HashMap<PeerId, Option<u64>>,
    /// Peers whose data port could not be reached, and when.
    closed_data_ports: HashMap<PeerId, Instant>,
    /// Where peers on direct connections see this peer, newest last.
    observed: VecDeque<(PeerId, Multiaddr)>,
    /// The ports this peer listens on (TCP and UDP).
    listen_ports: BTreeSet<u16>,
}

/// The shared record; cheap to clone.
#[derive(Clone)]
pub struct Reachability {
    state: Arc<RwLock<State>>,
}

impl Reachability {
    /// A record for a peer that just started.
    pub fn new(settings: &NatSettings) -> Self {
        let state = State {
            nat: NatState::Unknown,
            public_addrs: BTreeSet::new(),
            port_mapping: [
                MappingProtocol::UpnpIgd,
                MappingProtocol::Pcp,
                MappingProtocol::NatPmp,
            ]
            .into_iter()
            .map(|protocol| match settings.port_mapping {
                true => (protocol, PortMappingState::Searching),
                false => (protocol, PortMappingState::Off),
            })
            .collect(),
            relayed_addrs: BTreeSet::new(),
            relay_service: RelayServiceView {
                enabled: settings.relay_service.enabled,
                bulk: settings.relay_service.enabled && settings.relay_service.bulk,
                reservations: 0,
                circuits: 0,
                max_reservations: settings.relay_service.max_reservations,
                max_circuits: settings.relay_service.max_circuits,
            },
            links: HashMap::new(),
            circuit_bytes: HashMap::new(),
            closed_data_ports: HashMap::new(),
            observed: VecDeque::new(),
            listen_ports: BTreeSet::new(),
        };
        Self {
            state: Arc::new(RwLock::new(state)),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().expect("reachability lock")
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("reachability lock")
    }

    /// What `status` shows.
    pub fn view(&self) -> ReachabilityView {
        let state = self.read();
        ReachabilityView {
            nat: state.nat,
            public_addrs: state.public_addrs.iter().map(|a| a.to_string()).collect(),
            port_mapping: state
                .port_mapping
                .values()
                .copied()
                .max_by_key(|m| m.rank())
                .unwrap_or(PortMappingState::Off),
            mapped_by: state
                .port_mapping
                .iter()
                .filter(|(_, m)| **m == PortMappingState::Mapped)
                .map(|(p, _)| *p)
                .collect(),
            relayed_addrs: state.relayed_addrs.iter().map(|a| a.to_string()).collect(),
            relay_service: state.relay_service.clone(),
            seen_as: seen_as(&state.observed).map(|ip| ip.to_string()),
            mapping: mapping_of(&state.observed, &state.listen_ports),
        }
    }

    /// `observer`, on a connection that is not relayed, sees this peer at
    /// `addr` (identify's observed address); only public addresses count.
    pub fn observed(&self, observer: PeerId, addr: Multiaddr) {
        if is_relayed(&addr) || !ip_of(&addr).is_some_and(is_public_ip) {
            return;
        }
        let mut state = self.write();
        state.observed.retain(|(p, _)| *p != observer);
        if state.observed.len() >= MAX_OBSERVERS {
            state.observed.pop_front();
        }
        state.observed.push_back((observer, addr));
    }

    /// This peer's public IP, as most peers on direct connections see it.
    pub fn own_public_ip(&self) -> Option<IpAddr> {
        seen_as(&self.read().observed)
    }

    /// Whether this peer's router keeps its port for every destination,
    /// as peers on direct connections see it.
    pub fn own_mapping(&self) -> NatMapping {
        let state = self.read();
        mapping_of(&state.observed, &state.listen_ports)
    }

    /// This peer now listens at `addrs` (those not relayed count).
    pub fn listening_at<'a>(&self, addrs: impl IntoIterator<Item = &'a Multiaddr>) {
        let ports = addrs
            .into_iter()
            .filter(|a| !is_relayed(a))
            .filter_map(|a| match a.iter().nth(1) {
                Some(Protocol::Tcp(port) | Protocol::Udp(port)) => Some(port),
                _ => None,
            })
            .collect();
        self.write().listen_ports = ports;
    }

    /// What AutoNAT concluded.
    pub fn nat(&self) -> NatState {
        self.read().nat
    }

    /// AutoNAT changed its mind.
    pub fn set_nat(&self, nat: NatState, public: Option<Multiaddr>) {
        let mut state = self.write();
        state.nat = nat;
        if let Some(addr) = public {
            state.public_addrs.insert(addr);
        }
    }

    /// An address was confirmed reachable from outside, or stopped being.
    pub fn public_addr(&self, addr: Multiaddr, reachable: bool) {
        let mut state = self.write();
        match reachable {
            true => state.public_addrs.insert(addr),
            false => state.public_addrs.remove(&addr),
        };
    }

    /// The port mapping's new state.
    pub fn set_port_mapping(&self, protocol: MappingProtocol, mapping: PortMappingState) {
        self.write().port_mapping.insert(protocol, mapping);
    }

    /// A relay now holds a slot at `addr` (or stopped holding it).
    pub fn relayed_addr(&self, addr: Multiaddr, held: bool) {
        let mut state = self.write();
        match held {
            true => state.relayed_addrs.insert(addr),
            false => state.relayed_addrs.remove(&addr),
        };
    }

    /// Relays holding a slot for this peer.
    pub fn relays_held(&self) -> BTreeSet<PeerId> {
        self.read()
            .relayed_addrs
            .iter()
            .filter_map(relay_of)
            .collect()
    }

    /// Counts of the relay service: a reservation or circuit opened (`+1`) or closed (`-1`).
    pub fn relay_service_changed(&self, reservations: isize, circuits: isize) {
        let mut state = self.write();
        let service = &mut state.relay_service;
        service.reservations = service.reservations.saturating_add_signed(reservations);
        service.circuits = service.circuits.saturating_add_signed(circuits);
    }

    /// What a circuit through `relay` may carry, as the relay said.
    pub fn circuit_limit(&self, relay: PeerId, bytes: Option<u64>) {
        // A limit of 0 bytes is how a relay says "no limit".
        let bytes = bytes.filter(|b| *b > 0);
        self.write().circuit_bytes.insert(relay, bytes);
    }

    /// Bytes a circuit through `relay` may carry (`None`: no limit, or not known yet).
    pub fn circuit_bytes(&self, relay: &PeerId) -> Option<u64> {
        self.read().circuit_bytes.get(relay).copied().flatten()
    }

    /// `peer`'s data port could not be reached: transfers from it go
    /// straight to a data stream for [`CLOSED_DATA_PORT_MEMORY`].
    pub fn data_port_closed(&self, peer: PeerId) {
        let mut state = self.write();
        let now = Instant::now();
        state
            .closed_data_ports
            .retain(|_, at| now.duration_since(*at) < CLOSED_DATA_PORT_MEMORY);
        if state.closed_data_ports.len() < MAX_CLOSED_DATA_PORTS {
            state.closed_data_ports.insert(peer, now);
        }
    }

    /// Whether `peer`'s data port was found closed lately.
    pub fn is_data_port_closed(&self, peer: &PeerId) -> bool {
        self.read()
            .closed_data_ports
            .get(peer)
            .is_some_and(|at| at.elapsed() < CLOSED_DATA_PORT_MEMORY)
    }

    /// A connection opened: at `at` (the address dialled, or for an
    /// `inbound` connection the local address it came in on, relayed or
    /// not), with its far end at `remote`.
    ///
    /// An inbound direct connection from a peer only a relay joined this
    /// one to is taken as hole-punched: on QUIC the side that accepts it
    /// hears nothing from DCUtR (the other side dials, this one only sent
    /// packets to open its router).
    pub fn opened(
        &self,
        connection: ConnectionId,
        (peer, inbound): (PeerId, bool),
        at: &Multiaddr,
        remote: &Multiaddr,
    ) {
        let relay = relay_of(at);
        let path = match relay {
            Some(_) => ConnectionPath::Relayed,
            None if inbound && self.relayed_for(&peer).is_some() => ConnectionPath::HolePunched,
            None => ConnectionPath::Direct,
        };
        let remote = match relay {
            Some(_) => at,
            None => remote,
        };
        let link = Link {
            peer,
            path,
            relay,
            remote: remote.clone(),
            since: Instant::now(),
        };
        self.write().links.insert(connection, link);
    }

    /// A connection was made by hole punching.
    pub fn hole_punched(&self, connection: ConnectionId) {
        if let Some(link) = self.write().links.get_mut(&connection) {
            link.path = ConnectionPath::HolePunched;
        }
    }

    /// A connection closed.
    pub fn closed(&self, connection: ConnectionId) {
        self.write().links.remove(&connection);
    }

    /// The best open path to `peer` (direct, then hole-punched, then relayed) and its relay.
    pub fn path_to(&self, peer: &PeerId) -> Option<(ConnectionPath, Option<PeerId>)> {
        self.read()
            .links
            .values()
            .filter(|l| l.peer == *peer)
            .min_by_key(|l| l.path)
            .map(|l| (l.path, l.relay))
    }

    /// The address `peer` is seen at on a connection that is not relayed:
    /// where a dial-back of the data connection may go, and nowhere else.
    /// (A QUIC connection made by hole punching may record its far end as
    /// the unspecified address; that is no address to go to.)
    pub fn direct_ip(&self, peer: &PeerId) -> Option<IpAddr> {
        self.read()
            .links
            .values()
            .filter(|l| l.peer == *peer && l.relay.is_none())
            .filter_map(|l| ip_of(&l.remote))
            .find(|ip| !ip.is_unspecified())
    }

    /// The remote address of the best open connection to `peer` (see [`Self::path_to`]).
    pub fn remote_of(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.read()
            .links
            .values()
            .filter(|l| l.peer == *peer)
            .min_by_key(|l| {
                (
                    l.path,
                    ip_of(&l.remote).is_none_or(|ip| ip.is_unspecified()),
                )
            })
            .map(|l| l.remote.clone())
    }

    /// The path of one open connection.
    pub fn path_of(&self, connection: ConnectionId) -> Option<ConnectionPath> {
        self.read().links.get(&connection).map(|l| l.path)
    }

    /// How long the oldest relayed connection to `peer` has been open:
    /// hole punching, which starts when one opens, has had that long.
    pub fn relayed_for(&self, peer: &PeerId) -> Option<Duration> {
        self.read()
            .links
            .values()
            .filter(|l| l.peer == *peer && l.path == ConnectionPath::Relayed)
            .map(|l| l.since.elapsed())
            .max()
    }

    /// The relayed connections to `peer`.
    pub fn relayed_to(&self, peer: &PeerId) -> Vec<ConnectionId> {
        self.read()
            .links
            .iter()
            .filter(|(_, l)| l.peer == *peer && l.path == ConnectionPath::Relayed)
            .map(|(c, _)| *c)
            .collect()
    }
}

/// The IP most observers see (the newest among equals).
fn seen_as(observed: &VecDeque<(PeerId, Multiaddr)>) -> Option<IpAddr> {
    let mut counts: HashMap<IpAddr, (usize, usize)> = HashMap::new();
    for (at, ip) in observed
        .iter()
        .enumerate()
        .filter_map(|(i, (_, a))| Some((i, ip_of(a)?)))
    {
        let entry = counts.entry(ip).or_default();
        *entry = (entry.0 + 1, at);
    }
    counts.into_iter().max_by_key(|(_, c)| *c).map(|(ip, _)| ip)
}

/// Whether the router keeps this peer's port towards every destination.
/// libp2p dials from its listening port when it can, but not always (a
/// second connection to the same address gets a new port), so different
/// ports seen outside do not prove a router that changes them: one that
/// keeps ports shows each dial's own. A listening port seen outside does
/// prove it keeps them (or forwards that port), whatever else is seen;
/// without one, two ports seen mean a new port for every destination, and
/// one port seen by two observers means the port is kept.
fn mapping_of(
    observed: &VecDeque<(PeerId, Multiaddr)>,
    listen_ports: &BTreeSet<u16>,
) -> NatMapping {
    let mut ports: HashMap<(IpAddr, bool), BTreeSet<u16>> = HashMap::new();
    let mut seen: HashMap<(IpAddr, bool), usize> = HashMap::new();
    for (_, addr) in observed {
        let Some(ip) = ip_of(addr) else { continue };
        let (port, udp) = match addr.iter().nth(1) {
            Some(Protocol::Tcp(port)) => (port, false),
            Some(Protocol::Udp(port)) => (port, true),
            _ => continue,
        };
        ports.entry((ip, udp)).or_default().insert(port);
        *seen.entry((ip, udp)).or_default() += 1;
    }
    let mut mapping = NatMapping::Unknown;
    for (key, ports) in ports {
        if ports.iter().any(|p| listen_ports.contains(p)) {
            return NatMapping::Kept;
        }
        if ports.len() > 1 {
            mapping = NatMapping::Changes;
        } else if seen[&key] > 1 && mapping == NatMapping::Unknown {
            mapping = NatMapping::Kept;
        }
    }
    mapping
}

/// The relay's peer id in a relayed address (`…/p2p/<relay>/p2p-circuit…`).
pub fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// Whether `addr` goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether `ip` can be reached from the internet at large: not loopback,
/// private, link-local, shared (carrier NAT), documentation, multicast or unspecified.
/// AutoNAT trusts only such addresses, and so does the choice of relays.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b & 0xfe) == 18)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_told_from_private_ones() {
        for ip in ["8.8.8.8", "60.1.0.10", "2a00:1450::1"] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "192.168.1.2",
            "172.16.0.1",
            "127.0.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "203.0.113.5",
            "198.18.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_relay_is_read_from_a_relayed_address() {
        let relay = PeerId::random();
        let dest = PeerId::random();
        let relayed: Multiaddr =
            format!("/ip4/60.1.0.2/tcp/1100/p2p/{relay}/p2p-circuit/p2p/{dest}")
                .parse()
                .unwrap();
        assert_eq!(relay_of(&relayed), Some(relay));
        assert!(is_relayed(&relayed));
        let direct: Multiaddr = format!("/ip4/60.1.0.2/tcp/1100/p2p/{dest}")
            .parse()
            .unwrap();
        assert_eq!(relay_of(&direct), None);
        assert!(!is_relayed(&direct));
    }

    #[test]
    fn the_best_path_wins_and_relayed_connections_are_listed() {
        let record = Reachability::new(&NatSettings::default());
        let peer = PeerId::random();
        let relay = PeerId::random();
        let relayed: Multiaddr = format!("/ip4/60.1.0.2/tcp/1100/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap();
        let (c1, c2) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        record.opened(c1, (peer, false), &relayed, &relayed);
        assert_eq!(
            record.path_to(&peer),
            Some((ConnectionPath::Relayed, Some(relay)))
        );
        // The relay's address is never where the peer itself is.
        assert_eq!(record.direct_ip(&peer), None);
        // Inbound: the local address says nothing of where the peer is.
        let local: Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
        let far: Multiaddr = "/ip4/60.1.0.7/tcp/4000".parse().unwrap();
        // Accepted while only the relay joined the two: hole-punched, though
        // DCUtR says so only on the side that dialled.
        record.opened(c2, (peer, true), &local, &far);
        assert_eq!(
            record.path_to(&peer),
            Some((ConnectionPath::HolePunched, None))
        );
        assert_eq!(record.direct_ip(&peer), Some([60, 1, 0, 7].into()));
        assert_eq!(
            record.remote_of(&peer),
            Some("/ip4/60.1.0.7/tcp/4000".parse().unwrap())
        );
        assert_eq!(record.relayed_to(&peer), vec![c1]);
        record.closed(c2);
        assert_eq!(record.direct_ip(&peer), None);
        record.closed(c1);
        assert_eq!(record.path_to(&peer), None);
        // Accepted from a peer with no relayed connection: direct.
        let c3 = ConnectionId::new_unchecked(3);
        record.opened(c3, (peer, true), &local, &far);
        assert_eq!(record.path_to(&peer), Some((ConnectionPath::Direct, None)));
    }

    #[test]
    fn the_public_ip_is_what_most_observers_see_and_ports_tell_the_mapping() {
        let record = Reachability::new(&NatSettings::default());
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let at = |s: &str| s.parse::<Multiaddr>().unwrap();
        record.observed(a, at("/ip4/192.168.1.2/tcp/4000"));
        record.observed(a, at("/ip4/60.1.0.1/tcp/4000/p2p-circuit"));
        assert_eq!(
            record.own_public_ip(),
            None,
            "private and relayed ones do not count"
        );
        record.observed(a, at("/ip4/60.1.0.12/tcp/4000"));
        assert_eq!(record.view().mapping, NatMapping::Unknown, "one observer");
        record.observed(b, at("/ip4/60.1.0.12/tcp/4000"));
        assert_eq!(record.view().mapping, NatMapping::Kept);
        record.observed(c, at("/ip4/60.1.0.12/tcp/51234"));
        assert_eq!(record.view().mapping, NatMapping::Changes);
        // Listening on 4000, seen outside as 4000: the router keeps ports,
        // and 51234 was a dial from a port of its own.
        record.listening_at([&at("/ip4/192.168.1.2/tcp/4000")]);
        assert_eq!(record.view().mapping, NatMapping::Kept);
        record.listening_at([&at("/ip4/192.168.1.2/tcp/4100")]);
        assert_eq!(record.view().mapping, NatMapping::Changes);
        // A lying peer is outvoted, however often it repeats itself.
        for _ in 0..5 {
            record.observed(c, at("/ip4/203.0.114.9/tcp/4000"));
        }
        assert_eq!(record.own_public_ip(), "60.1.0.12".parse().ok());
        assert_eq!(record.view().seen_as.as_deref(), Some("60.1.0.12"));
    }

    #[test]
    fn a_closed_data_port_is_remembered_for_its_peer_only() {
        let record = Reachability::new(&NatSettings::default());
        let (closed, other) = (PeerId::random(), PeerId::random());
        record.data_port_closed(closed);
        assert!(record.is_data_port_closed(&closed));
        assert!(!record.is_data_port_closed(&other));
    }

    #[test]
    fn a_zero_circuit_limit_means_none() {
        let record = Reachability::new(&NatSettings::default());
        let relay = PeerId::random();
        record.circuit_limit(relay, Some(0));
        assert_eq!(record.circuit_bytes(&relay), None);
        record.circuit_limit(relay, Some(1 << 17));
        assert_eq!(record.circuit_bytes(&relay), Some(1 << 17));
    }
}
