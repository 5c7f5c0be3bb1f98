//! The libp2p host: one swarm (TCP with noise + yamux, QUIC, and circuits
//! through relays) whose behaviour is composed of identify, `/peershare/browse/1`,
//! `/peershare/transfer/1`, `/peershare/msg/1`, Kademlia, mDNS, ping, the
//! NAT traversal set (AutoNAT, relay client and service, DCUtR hole
//! punching, UPnP port mapping) and data streams, driven by one task that reads
//! like a table of cases: a command from the rest of the daemon, or an event
//! from the swarm. Every peer it hears of goes into the [`PeerBook`]; what
//! it learns of reachability and of each connection's path goes into the
//! [`Reachability`] record.
//!
//! A peer AutoNAT finds private keeps a slot on up to [`WANTED_RELAYS`]
//! relays (publicly reachable peers that offer the relay protocol, met
//! through the index, the DHT or `--relay`), so others can reach it through
//! them; DCUtR then tries to turn each relayed connection into a direct one.
//!
//! The loop never does disk I/O or waits on a person: browse pages come from
//! the in-memory [`SharedFiles`], decisions from the [`TransferDesk`] (the
//! upload gate), and a request held for the person waits in
//! [`HeldRequests`] until a command answers it or its deadline passes;
//! a message request goes to the messenger's inbox the same way. Work
//! for later is a deadline the loop waits on, never a task of its own.
//!
//! A connection whose peer stops answering pings (a frozen process, a
//! hostile peer that accepts and then reads nothing) is closed, so the
//! requests waiting on it fail within seconds instead of at their own,
//! longer deadline; such peers are marked as having stopped answering
//! ([`Host::stopped_answering`]) until a connection to them opens again.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore, QueryId, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, cbor, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    autonat, dcutr, identify, mdns, noise, ping, relay, tcp, upnp, yamux, Multiaddr, PeerId,
    StreamProtocol, Swarm,
};
use peershare_core::wire::control::{
    BrowseRequest, BrowseResponse, TransferRequest, TransferResponse, BROWSE_PROTOCOL,
    MAX_CONTROL_MESSAGE, TRANSFER_PROTOCOL,
};
use peershare_core::wire::data::DATA_STREAM_PROTOCOL;
use peershare_core::wire::message::{
    MessageRequest, MessageResponse, MAX_ENVELOPE, MAX_MESSAGE_RESPONSE, MESSAGE_PROTOCOL,
};
use peershare_core::FileId;
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::backoff::Backoff;
use crate::events::EventBus;
use crate::lifetime::Lifetime;
use crate::net::announce_queue::{AnnounceQueue, Regrowth};
use crate::net::deadlines::Deadlines;
use crate::net::index_advert::{advertised_index_port, agent_version};
use crate::net::kademlia::{self, DhtSettings};
use crate::net::peer_book::{FoundBy, PeerBook};
use crate::net::port_control::{self, Dialect, PortMapEvent};
use crate::net::reachability::{
    is_public_ip, is_relayed, NatSettings, Reachability, WANTED_RELAYS,
};
use crate::net::transfer_requests::{HeldRequests, TransferDesk, Verdict, MAX_ASK_TIMEOUT};
use crate::share::SharedFiles;
use crate::transfer::data_channel::DataStream;
use crate::views::{
    ConnectionPath, EventKind, KnownPeer, MappingProtocol, NatState, PortMappingState,
};
use crate::NodeError;

/// The identify protocol version peers announce.
pub const IDENTIFY_VERSION: &str = "/peershare/id/1";
const COMMAND_QUEUE: usize = 64;
/// How long a growing routing table settles before the records are announced again.
const REANNOUNCE_DELAY: Duration = Duration::from_secs(10);
const BROWSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough for the other side's person to answer an `ask` request (the
/// sharer holds one at most [`MAX_ASK_TIMEOUT`]), with a margin for the
/// answer to travel. A peer that stops answering altogether is caught
/// sooner, by ping.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(MAX_ASK_TIMEOUT.as_secs() + 30);
/// How often every connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(5);
/// A ping unanswered this long means the peer stopped answering: its connection is closed.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a message request may take, both ways.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the messenger may take to answer an inbound message request.
const MESSAGE_ANSWER_PATIENCE: Duration = Duration::from_secs(15);
/// Inbound message requests waiting for the messenger; past that, senders hear "busy".
pub const MESSAGE_INBOX: usize = 64;
/// How long hole punching may take to make a direct connection, counted
/// from when the relayed one opened, before a transfer whose only
/// connection is relayed settles for the relay.
const HOLE_PUNCH_PATIENCE: Duration = Duration::from_secs(15);
/// How long opening a data stream may take.
const DATA_STREAM_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping peer gives its router to drop its port mappings.
const UNMAP_GRACE: Duration = Duration::from_secs(1);
/// How long a relay that refused or dropped this peer's slot rests before
/// it is tried again: the first time briefly (a connection that failed
/// just after a restart, as the old one was closing), doubling up to a minute.
const RELAY_RETRY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(60));

#[derive(NetworkBehaviour)]
struct PeerBehaviour {
    identify: identify::Behaviour,
    browse: cbor::Behaviour<BrowseRequest, BrowseResponse>,
    transfer: cbor::Behaviour<TransferRequest, TransferResponse>,
    message: cbor::Behaviour<MessageRequest, MessageResponse>,
    kad: kad::Behaviour<MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    ping: ping::Behaviour,
    autonat: autonat::Behaviour,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    upnp: Toggle<upnp::tokio::Behaviour>,
    stream: libp2p_stream::Behaviour,
}

/// A granted or refused transfer request, with the address the sharer was reached at.
pub struct TransferAnswer {
    /// The sharer's answer.
    pub response: TransferResponse,
    /// The sharer's IP on the connection that carried the answer.
    pub remote_ip: Option<IpAddr>,
    /// That connection's path.
    pub path: Option<ConnectionPath>,
}

/// A message request from another peer, for the messenger to answer with [`Host::answer_message`].
#[derive(Debug)]
pub struct InboundMessage {
    /// Names the reply channel the host keeps.
    pub key: u64,
    /// The peer on the other end of the connection.
    pub peer: PeerId,
    /// What it asks.
    pub request: MessageRequest,
}

enum Command {
    Browse {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: BrowseRequest,
        reply: oneshot::Sender<Result<BrowseResponse, NodeError>>,
    },
    RequestTransfer {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        id: FileId,
        reply: oneshot::Sender<Result<TransferAnswer, NodeError>>,
    },
    Answer {
        pending_id: u64,
        response: TransferResponse,
    },
    Message {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: MessageRequest,
        reply: oneshot::Sender<Result<MessageResponse, NodeError>>,
    },
    AnswerMessage {
        key: u64,
        response: MessageResponse,
    },
    Provide {
        key: [u8; 32],
    },
    Unprovide {
        key: [u8; 32],
    },
    /// Announces every record again (the routing table has grown).
    AnnounceAll,
    /// Announces `key` again if this peer still provides it (a retry after a timeout).
    ProvideAgain {
        key: RecordKey,
    },
    FindProviders {
        key: [u8; 32],
        patience: Duration,
        reply: oneshot::Sender<ProviderLookup>,
    },
    /// Ends a provider lookup that ran out of patience, answering with what it found.
    FinishLookup {
        query: QueryId,
    },
    AddDhtPeers {
        addrs: Vec<Multiaddr>,
    },
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    ClosestPeers {
        key: PeerId,
        patience: Duration,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Readies the best path for bulk data to `peer`: see [`Host::open_data_stream`].
    PrepareDataPath {
        peer: PeerId,
        reply: oneshot::Sender<Result<(ConnectionPath, Option<PeerId>), NodeError>>,
    },
    /// The patience of the data paths waiting on `peer` ran out.
    SettleDataPaths {
        peer: PeerId,
    },
    /// Takes slots on relays, if this peer wants more.
    ReserveRelays,
    /// A relay that refused or dropped this peer's slot may be tried again.
    RelayRested {
        relay: PeerId,
    },
    /// PCP or NAT-PMP port mapping found or did something.
    PortMap(PortMapEvent),
}

/// A transfer waiting for the best path to its peer.
struct PathWait {
    peer: PeerId,
    /// Settles for a relayed path once true (the patience ran out).
    relayed_will_do: bool,
    reply: oneshot::Sender<Result<(ConnectionPath, Option<PeerId>), NodeError>>,
}

/// What one DHT provider lookup found, and what it cost.
#[derive(Debug, Clone, Default)]
pub struct ProviderLookup {
    /// The peers named as providers.
    pub providers: HashSet<PeerId>,
    /// Requests the lookup sent to DHT nodes.
    pub requests: u32,
    /// How long the lookup ran.
    pub duration: Duration,
}

/// What the host needs from the running node besides its own settings.
#[derive(Clone)]
pub struct HostContext {
    /// Owns the event loop and its timers; ending it stops the host.
    pub lifetime: Lifetime,
    /// Where connections opening and closing are announced.
    pub bus: EventBus,
    /// The book of known peers, shared with those who name peers to others.
    pub book: PeerBook,
    /// Where inbound message requests go (the messenger's inbox).
    pub messages: mpsc::Sender<InboundMessage>,
}

/// A handle to the libp2p host task.
#[derive(Clone)]
pub struct Host {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen_addrs: ListenAddrs,
    book: PeerBook,
    silent: SilentPeers,
    reachability: Reachability,
    streams: libp2p_stream::Control,
}

/// The addresses this peer listens on, relayed ones included; subscribers hear of changes.
type ListenAddrs = Arc<tokio::sync::watch::Sender<Vec<Multiaddr>>>;

/// Peers that stopped answering (a ping or a request timed out, or a dial
/// hung), until a connection to them opens again.
type SilentPeers = Arc<RwLock<HashSet<PeerId>>>;

impl Host {
    /// Starts the swarm listening on `listen` and spawns its task.
    pub async fn start(
        keypair: Keypair,
        listen: &[Multiaddr],
        shares: SharedFiles,
        desk: Arc<dyn TransferDesk>,
        settings: (&DhtSettings, &NatSettings),
        context: HostContext,
    ) -> Result<Self, NodeError> {
        let (discovery, nat) = settings;
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = build_swarm(keypair, discovery, nat)?;
        let mut listeners = Vec::new();
        for addr in listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::listen("libp2p", addr, e, "--listen MULTIADDR"))?;
            listeners.push(listener);
        }
        let mut explicit_relays = Vec::new();
        for addr in &nat.relays {
            let (relay, dial) = parse_peer_addr(&addr.to_string()).map_err(|_| {
                NodeError::BadRequest(format!(
                    "--relay {addr} needs the relay's peer id at the end (…/p2p/12D3…)"
                ))
            })?;
            explicit_relays.push((relay, dial));
        }
        let streams = swarm.behaviour().stream.new_control();
        let reachability = Reachability::new(nat);
        let book = context.book.clone();
        for addr in &discovery.bootstrap {
            let (peer, dial) = parse_peer_addr(&addr.to_string()).map_err(|_| {
                NodeError::BadRequest(format!(
                    "--bootstrap {addr} needs the peer id at the end (…/p2p/12D3…)"
                ))
            })?;
            swarm.behaviour_mut().kad.add_address(&peer, dial.clone());
            book.saw(peer, [dial], FoundBy::Bootstrap);
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, "cannot dial bootstrap peer: {e}");
            }
        }
        if !discovery.bootstrap.is_empty() {
            // Fills the routing table with the peers closest to this one.
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let listen_addrs = ListenAddrs::default();
        let silent = SilentPeers::default();
        let event_loop = EventLoop {
            swarm,
            commands: rx,
            shares,
            desk,
            listen_addrs: listen_addrs.clone(),
            connections: HashMap::new(),
            browsing: HashMap::new(),
            transferring: HashMap::new(),
            held: HeldRequests::default(),
            messaging: HashMap::new(),
            inbound_messages: HeldRequests::default(),
            next_inbound: 0,
            later: Deadlines::default(),
            finding: HashMap::new(),
            locating: HashMap::new(),
            closest: HashMap::new(),
            book: book.clone(),
            announcements: AnnounceQueue::default(),
            announce_loopback: listen
                .iter()
                .all(|a| ip_of(a).is_some_and(|ip| ip.is_loopback())),
            own_index_port: discovery.own_index_port,
            indexes_heard: HashSet::new(),
            silent: silent.clone(),
            context: context.clone(),
            reachability: reachability.clone(),
            relay_candidates: HashMap::new(),
            explicit_relays,
            relay_listeners: HashMap::new(),
            resting_relays: HashSet::new(),
            relay_backoff: HashMap::new(),
            path_waits: Vec::new(),
            listeners,
            gateway_addrs: HashMap::new(),
        };
        let expected = listen.len();
        // Stopping closes the listeners (the router drops their port
        // mappings) and then drops the swarm: its ports are free again.
        context.lifetime.spawn_cooperative(event_loop.run());
        let host = Self {
            commands: tx,
            peer_id,
            listen_addrs,
            book,
            silent,
            reachability,
            streams,
        };
        host.wait_for_listeners(expected).await;
        host.send(Command::ReserveRelays).await?;
        Ok(host)
    }

    async fn wait_for_listeners(&self, expected: usize) {
        for _ in 0..100 {
            if self.listen_addrs.borrow().len() >= expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Keeps this peer's TCP listening ports and `data_port` mapped on the
    /// default gateway by PCP or NAT-PMP ([`port_control`]) until `lifetime` stops,
    /// which removes the mappings. Ports listened on only at loopback are
    /// left alone (nothing outside could use them), so a peer on loopback
    /// never asks at all.
    pub fn map_ports_by_port_control(&self, data_addr: std::net::SocketAddr, lifetime: &Lifetime) {
        let outside = |ip: std::net::IpAddr| !ip.is_loopback();
        let mut ports: Vec<u16> = self
            .listen_addrs()
            .iter()
            .filter(|a| !is_relayed(a) && ip_of(a).is_some_and(|ip| ip.is_ipv4() && outside(ip)))
            .filter_map(|a| {
                a.iter().find_map(|p| match p {
                    Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
            })
            .collect();
        if ports.is_empty() {
            return;
        }
        if outside(data_addr.ip()) {
            ports.push(data_addr.port());
        }
        ports.sort_unstable();
        ports.dedup();
        let (events, mut reports) = mpsc::channel(16);
        lifetime.spawn_cooperative(port_control::run(ports, events, lifetime.token().clone()));
        let commands = self.commands.clone();
        lifetime.spawn(async move {
            while let Some(event) = reports.recv().await {
                if commands.send(Command::PortMap(event)).await.is_err() {
                    break;
                }
            }
        });
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// How others reach this peer, and the path of each open connection.
    pub fn reachability(&self) -> &Reachability {
        &self.reachability
    }

    /// Every known peer, with the path of its best open connection.
    pub fn peers(&self) -> Vec<KnownPeer> {
        let mut peers = self.book.list();
        for peer in &mut peers {
            let Ok(id) = peer.peer_id.parse::<PeerId>() else {
                continue;
            };
            if let Some((path, relay)) = self.reachability.path_to(&id) {
                peer.path = Some(path);
                peer.relay = relay.map(|r| r.to_string());
            }
            peer.remote_addr = self.reachability.remote_of(&id).map(|a| a.to_string());
        }
        peers
    }

    /// Data streams other peers open to this one (`/peershare/data/1`), for
    /// the upload service; can be taken once.
    pub fn accept_data_streams(&self) -> Result<libp2p_stream::IncomingStreams, NodeError> {
        self.streams
            .clone()
            .accept(StreamProtocol::new(DATA_STREAM_PROTOCOL))
            .map_err(|e| NodeError::Transfer(format!("cannot accept data streams: {e}")))
    }

    /// The path a transfer's data from `peer` can take: the best open
    /// connection, after waiting a while for hole punching when the only
    /// one is relayed; relayed connections are closed once a direct one
    /// exists, so that no data lands on one.
    pub async fn prepare_data_path(
        &self,
        peer: PeerId,
    ) -> Result<(ConnectionPath, Option<PeerId>), NodeError> {
        self.call(|reply| Command::PrepareDataPath { peer, reply })
            .await
    }

    /// Opens a data stream to `peer` on the libp2p connection, on the path
    /// [`Self::prepare_data_path`] found, for a transfer of `bytes`. A
    /// relayed path is used only when its relay lets a circuit carry
    /// `bytes`; otherwise the error says why.
    pub async fn open_data_stream(
        &self,
        peer: PeerId,
        bytes: u64,
        (path, relay): (ConnectionPath, Option<PeerId>),
    ) -> Result<DataStream, NodeError> {
        if let (ConnectionPath::Relayed, Some(relay)) = (path, relay) {
            if let Some(limit) = self.reachability.circuit_bytes(&relay) {
                if limit < bytes {
                    return Err(NodeError::PeerUnreachable(format!(
                        "{peer} can be reached only through relay {relay}, whose circuits carry \
                        at most {limit} bytes, and hole punching did not make a direct \
                        connection (one side's router changes ports for every destination). \
                        A relay that allows bulk circuits (`--relay-bulk`), or a port mapped on \
                        either router, would carry it"
                    )));
                }
            }
        }
        let protocol = StreamProtocol::new(DATA_STREAM_PROTOCOL);
        let stream = tokio::time::timeout(
            DATA_STREAM_TIMEOUT,
            self.streams.clone().open_stream(peer, protocol),
        )
        .await
        .map_err(|_| {
            NodeError::PeerUnreachable(format!("{peer}: opening a data stream timed out"))
        })?
        .map_err(|e| {
            NodeError::PeerUnreachable(format!("{peer}: cannot open a data stream: {e}"))
        })?;
        Ok(Box::new(stream.compat()))
    }

    /// Every peer this host knows of.
    pub fn book(&self) -> &PeerBook {
        &self.book
    }

    /// Whether `peer` stopped answering: its last connection went silent (no
    /// ping answered, or a request timed out) or dialling it hung, and no
    /// connection to it has opened since. A request to it that failed failed
    /// for that reason, not because the peer refused or is gone.
    pub fn stopped_answering(&self, peer: &PeerId) -> bool {
        self.silent.read().expect("silent lock").contains(peer)
    }

    /// Announces in the DHT that this peer provides `key` (kept re-announced until withdrawn).
    pub async fn provide(&self, key: [u8; 32]) -> Result<(), NodeError> {
        self.send(Command::Provide { key }).await
    }

    /// Stops announcing `key`; remote records expire after their lifetime.
    pub async fn unprovide(&self, key: [u8; 32]) -> Result<(), NodeError> {
        self.send(Command::Unprovide { key }).await
    }

    /// The peers the DHT names as providers of `key` (none when none answer in time).
    ///
    /// A lookup still running after `patience` (nodes that do not answer keep
    /// it waiting) is ended then, and answers with the providers found so far.
    pub async fn find_providers(
        &self,
        key: [u8; 32],
        patience: Duration,
    ) -> Result<ProviderLookup, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::FindProviders {
            key,
            patience,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Where `peer` listens: from the peer book, else asked of the DHT (none when nobody knows).
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, NodeError> {
        let known = self.book.addrs(&peer);
        if !known.is_empty() {
            return Ok(known);
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::FindPeer { peer, reply }).await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// The DHT nodes closest to `key` (nearest first, this peer and `key` left out); a
    /// lookup still running after `patience` answers with what it found.
    pub async fn closest_peers(
        &self,
        key: PeerId,
        patience: Duration,
    ) -> Result<Vec<PeerId>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ClosestPeers {
            key,
            patience,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Enters the DHT through these full peer addresses (the index hands some out).
    pub async fn add_dht_peers(&self, addrs: Vec<Multiaddr>) -> Result<(), NodeError> {
        self.send(Command::AddDhtPeers { addrs }).await
    }

    /// The addresses this peer can be reached at, without the `/p2p/<id>`
    /// suffix: where it listens, relayed addresses and public ones found for it.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs.borrow().clone()
    }

    /// Wakes whenever the addresses this peer listens on change (a relay slot taken or lost).
    pub fn watch_listen_addrs(&self) -> tokio::sync::watch::Receiver<Vec<Multiaddr>> {
        self.listen_addrs.subscribe()
    }

    /// Full addresses (ending in `/p2p/<id>`) this peer listens on.
    pub fn addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs
            .borrow()
            .iter()
            .map(|a| a.clone().with(Protocol::P2p(self.peer_id)))
            .collect()
    }

    /// Asks `peer` for one page of its shared files.
    pub async fn browse(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: BrowseRequest,
    ) -> Result<BrowseResponse, NodeError> {
        self.call(|reply| Command::Browse {
            peer,
            addrs,
            request,
            reply,
        })
        .await
    }

    /// Asks `peer` to send file `id`.
    pub async fn request_transfer(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        id: FileId,
    ) -> Result<TransferAnswer, NodeError> {
        self.call(|reply| Command::RequestTransfer {
            peer,
            addrs,
            id,
            reply,
        })
        .await
    }

    /// Sends a command that carries a reply channel and waits for the reply.
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, NodeError>>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(command(reply)).await?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Sends `peer` a message request and waits for its answer.
    pub async fn message(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: MessageRequest,
    ) -> Result<MessageResponse, NodeError> {
        self.call(|reply| Command::Message {
            peer,
            addrs,
            request,
            reply,
        })
        .await
    }

    /// Answers an inbound message request.
    pub async fn answer_message(
        &self,
        key: u64,
        response: MessageResponse,
    ) -> Result<(), NodeError> {
        self.send(Command::AnswerMessage { key, response }).await
    }

    /// Sends the answer to a request that was held for the person.
    pub async fn answer(
        &self,
        pending_id: u64,
        response: TransferResponse,
    ) -> Result<(), NodeError> {
        self.send(Command::Answer {
            pending_id,
            response,
        })
        .await
    }

    async fn send(&self, command: Command) -> Result<(), NodeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NodeError::Stopped)
    }
}

fn build_swarm(
    keypair: Keypair,
    discovery: &DhtSettings,
    nat: &NatSettings,
) -> Result<Swarm<PeerBehaviour>, NodeError> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NodeError::Listen(e.to_string()))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| NodeError::Listen(e.to_string()))?
        .with_behaviour(|key, relay_client| {
            let me = key.public().to_peer_id();
            let browse_codec = cbor::codec::Codec::default()
                .set_request_size_maximum(4096)
                .set_response_size_maximum(MAX_CONTROL_MESSAGE);
            let transfer_codec = cbor::codec::Codec::default()
                .set_request_size_maximum(4096)
                .set_response_size_maximum(64 * 1024);
            let message_codec = cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_ENVELOPE as u64 + 1024)
                .set_response_size_maximum(MAX_MESSAGE_RESPONSE as u64);
            PeerBehaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                        .with_agent_version(agent_version(discovery.own_index_port)),
                ),
                browse: cbor::Behaviour::with_codec(
                    browse_codec,
                    [(StreamProtocol::new(BROWSE_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(BROWSE_TIMEOUT),
                ),
                transfer: cbor::Behaviour::with_codec(
                    transfer_codec,
                    [(
                        StreamProtocol::new(TRANSFER_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default().with_request_timeout(TRANSFER_TIMEOUT),
                ),
                message: cbor::Behaviour::with_codec(
                    message_codec,
                    [(StreamProtocol::new(MESSAGE_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(MESSAGE_TIMEOUT),
                ),
                kad: kademlia::kad_behaviour(key.public().to_peer_id(), discovery),
                mdns: kademlia::mdns_behaviour(key.public().to_peer_id(), discovery.mdns),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(PING_EVERY)
                        .with_timeout(PING_TIMEOUT),
                ),
                autonat: autonat::Behaviour::new(
                    me,
                    autonat::Config {
                        boot_delay: nat.probe_delay,
                        retry_interval: Duration::from_secs(30),
                        timeout: Duration::from_secs(15),
                        ..Default::default()
                    },
                ),
                relay_client,
                relay: Toggle::from(
                    nat.relay_service
                        .enabled
                        .then(|| relay::Behaviour::new(me, nat.relay_service.config())),
                ),
                dcutr: dcutr::Behaviour::new(me),
                upnp: Toggle::from(nat.port_mapping.then(upnp::tokio::Behaviour::default)),
                stream: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| NodeError::Listen(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

struct EventLoop {
    swarm: Swarm<PeerBehaviour>,
    commands: mpsc::Receiver<Command>,
    shares: SharedFiles,
    desk: Arc<dyn TransferDesk>,
    listen_addrs: ListenAddrs,
    connections: HashMap<libp2p::swarm::ConnectionId, Multiaddr>,
    browsing: HashMap<OutboundRequestId, oneshot::Sender<Result<BrowseResponse, NodeError>>>,
    transferring: HashMap<OutboundRequestId, oneshot::Sender<Result<TransferAnswer, NodeError>>>,
    /// Inbound transfer requests waiting for the person.
    held: HeldRequests<ResponseChannel<TransferResponse>>,
    messaging: HashMap<OutboundRequestId, oneshot::Sender<Result<MessageResponse, NodeError>>>,
    /// Inbound message requests waiting for the messenger's answer.
    inbound_messages: HeldRequests<ResponseChannel<MessageResponse>>,
    next_inbound: u64,
    /// Commands this loop gives itself later.
    later: Deadlines<Command>,
    finding: HashMap<QueryId, (HashSet<PeerId>, oneshot::Sender<ProviderLookup>)>,
    locating: HashMap<QueryId, (PeerId, oneshot::Sender<Vec<Multiaddr>>)>,
    closest: HashMap<QueryId, (PeerId, oneshot::Sender<Vec<PeerId>>)>,
    book: PeerBook,
    /// DHT announcements waiting, running and to retry.
    announcements: AnnounceQueue,
    /// Whether loopback addresses go into this peer's DHT records (only when it listens on nothing else).
    announce_loopback: bool,
    /// The index this peer runs for others, if any.
    own_index_port: Option<u16>,
    /// LAN peers already reported as running an index.
    indexes_heard: HashSet<PeerId>,
    /// Peers that stopped answering, shared with the [`Host`] handles.
    silent: SilentPeers,
    context: HostContext,
    reachability: Reachability,
    /// Publicly reachable peers offering the relay protocol, at a public address.
    relay_candidates: HashMap<PeerId, Multiaddr>,
    /// Relays named with `--relay`: a slot is kept on each whatever AutoNAT says.
    explicit_relays: Vec<(PeerId, Multiaddr)>,
    /// The listener of each relay this peer holds (or asks for) a slot on.
    relay_listeners: HashMap<PeerId, ListenerId>,
    /// Relays that refused or dropped this peer's slot, resting before another try.
    resting_relays: HashSet<PeerId>,
    /// How long each relay that failed lately rests next (gone once it holds a slot).
    relay_backoff: HashMap<PeerId, Backoff>,
    /// Transfers waiting for the best path to their peer.
    path_waits: Vec<PathWait>,
    /// The listeners opened at start (relay slots are in `relay_listeners`).
    listeners: Vec<ListenerId>,
    /// The outside address PCP or NAT-PMP mapped for each libp2p listening port.
    gateway_addrs: HashMap<u16, Multiaddr>,
}

impl EventLoop {
    async fn run(mut self) {
        let stop = self.context.lifetime.token().clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return self.wind_down().await,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.later.next() => self.on_command(command),
                pending_id = self.held.next_expired() => self.on_held_expired(pending_id),
                key = self.inbound_messages.next_expired() => {
                    self.answer_message(key, MessageResponse::Refused {
                        reason: "the recipient is busy; try again later".into(),
                        retry: true,
                    });
                }
            }
        }
    }

    /// Closes every listener and keeps the swarm running a moment, so the
    /// router hears the port mappings go and relays hear the slots go.
    async fn wind_down(mut self) {
        let mapped = self.reachability.view().port_mapping == PortMappingState::Mapped;
        let listeners = self.listeners.drain(..);
        for listener in listeners.chain(self.relay_listeners.drain().map(|(_, l)| l)) {
            self.swarm.remove_listener(listener);
        }
        if !mapped {
            return;
        }
        let _ = tokio::time::timeout(UNMAP_GRACE, async {
            loop {
                self.swarm.select_next_some().await;
            }
        })
        .await;
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Browse {
                peer,
                addrs,
                request,
                reply,
            } => {
                let behaviour = &mut self.swarm.behaviour_mut().browse;
                let id = behaviour.send_request_with_addresses(&peer, request, addrs);
                self.browsing.insert(id, reply);
            }
            Command::RequestTransfer {
                peer,
                addrs,
                id,
                reply,
            } => {
                let behaviour = &mut self.swarm.behaviour_mut().transfer;
                let request =
                    behaviour.send_request_with_addresses(&peer, TransferRequest { id }, addrs);
                self.transferring.insert(request, reply);
            }
            Command::Answer {
                pending_id,
                response,
            } => {
                if let Some(channel) = self.held.take(pending_id) {
                    self.answer_transfer(channel, response);
                }
            }
            Command::Message {
                peer,
                addrs,
                request,
                reply,
            } => {
                let behaviour = &mut self.swarm.behaviour_mut().message;
                let id = behaviour.send_request_with_addresses(&peer, request, addrs);
                self.messaging.insert(id, reply);
            }
            Command::AnswerMessage { key, response } => self.answer_message(key, response),
            Command::Provide { key } => self.queue_announcement(RecordKey::new(&key)),
            Command::AnnounceAll => self.announce_all(),
            Command::ProvideAgain { key } => {
                if self.provides(&key) {
                    self.queue_announcement(key);
                }
            }
            Command::Unprovide { key } => {
                let key = RecordKey::new(&key);
                self.announcements.withdraw(&key);
                self.swarm.behaviour_mut().kad.stop_providing(&key);
            }
            Command::AddDhtPeers { addrs } => {
                for addr in addrs {
                    let Ok((peer, dial)) = parse_peer_addr(&addr.to_string()) else {
                        continue;
                    };
                    if peer == *self.swarm.local_peer_id() {
                        continue;
                    }
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, dial.clone());
                    self.book.saw(peer, [dial], FoundBy::Index);
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            Command::FindProviders {
                key,
                patience,
                reply,
            } => {
                let query = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&key));
                self.finding.insert(query, (HashSet::new(), reply));
                self.send_later(patience, Command::FinishLookup { query });
            }
            Command::ClosestPeers {
                key,
                patience,
                reply,
            } => {
                let query = self.swarm.behaviour_mut().kad.get_closest_peers(key);
                self.closest.insert(query, (key, reply));
                self.send_later(patience, Command::FinishLookup { query });
            }
            Command::FinishLookup { query } => {
                if self.finding.contains_key(&query) || self.closest.contains_key(&query) {
                    if let Some(mut running) = self.swarm.behaviour_mut().kad.query_mut(&query) {
                        running.finish();
                    }
                }
            }
            Command::FindPeer { peer, reply } => {
                let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                self.locating.insert(query, (peer, reply));
            }
            Command::PrepareDataPath { peer, reply } => {
                self.path_waits.push(PathWait {
                    peer,
                    relayed_will_do: false,
                    reply,
                });
                // Hole punching may have had its chance already (the two
                // met before this transfer): only what is left is waited.
                let punching_for = self.reachability.relayed_for(&peer).unwrap_or_default();
                let patience = HOLE_PUNCH_PATIENCE.saturating_sub(punching_for);
                self.send_later(patience, Command::SettleDataPaths { peer });
                self.settle_path_waits();
            }
            Command::SettleDataPaths { peer } => {
                for wait in self.path_waits.iter_mut().filter(|w| w.peer == peer) {
                    wait.relayed_will_do = true;
                }
                self.settle_path_waits();
            }
            Command::ReserveRelays => self.reserve_relays(),
            Command::PortMap(event) => self.on_port_control(event),
            Command::RelayRested { relay } => {
                self.resting_relays.remove(&relay);
                self.reserve_relays();
            }
        }
    }

    /// Answers every transfer waiting for a path that has one now: a direct
    /// or hole-punched connection once no relayed one is left to carry the
    /// stream (those are closed), a relayed one once patience ran out.
    fn settle_path_waits(&mut self) {
        let waits = std::mem::take(&mut self.path_waits);
        for wait in waits {
            let peer = wait.peer;
            match self.reachability.path_to(&peer) {
                None => {
                    let _ = wait.reply.send(Err(NodeError::PeerUnreachable(format!(
                        "{peer}: no connection is open to it"
                    ))));
                }
                Some((ConnectionPath::Relayed, relay)) if wait.relayed_will_do => {
                    let _ = wait.reply.send(Ok((ConnectionPath::Relayed, relay)));
                }
                Some((ConnectionPath::Relayed, _)) => self.path_waits.push(wait),
                Some((path, _)) => {
                    let relayed = self.reachability.relayed_to(&peer);
                    if relayed.is_empty() {
                        let _ = wait.reply.send(Ok((path, None)));
                    } else {
                        // Bulk data must not land on a relayed connection;
                        // the answer goes out when they are closed.
                        for connection in relayed {
                            self.swarm.close_connection(connection);
                        }
                        self.path_waits.push(wait);
                    }
                }
            }
        }
    }

    /// Takes a slot on every `--relay`, and on up to [`WANTED_RELAYS`]
    /// relays met on the way while AutoNAT finds this peer private.
    fn reserve_relays(&mut self) {
        let mut wanted: Vec<(PeerId, Multiaddr)> = self.explicit_relays.clone();
        if self.reachability.nat() == NatState::Private {
            let held = self
                .relay_listeners
                .keys()
                .filter(|r| !self.explicit_relays.iter().any(|(e, _)| e == *r))
                .count();
            let more = WANTED_RELAYS.saturating_sub(held);
            let mut candidates: Vec<_> = self
                .relay_candidates
                .iter()
                .filter(|(r, _)| !self.relay_listeners.contains_key(*r))
                .map(|(r, a)| (*r, a.clone()))
                .collect();
            candidates.sort_by_key(|(r, _)| *r);
            wanted.extend(candidates.into_iter().take(more));
        }
        for (relay, addr) in wanted {
            if self.relay_listeners.contains_key(&relay) || self.resting_relays.contains(&relay) {
                continue;
            }
            let circuit = without_peer(addr)
                .with(Protocol::P2p(relay))
                .with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(%relay, "asking a relay for a slot");
                    self.relay_listeners.insert(relay, listener);
                }
                Err(e) => {
                    tracing::warn!(%circuit, "cannot ask a relay for a slot: {e:?}");
                    self.rest_relay(relay);
                }
            }
        }
    }

    /// A relay refused or dropped this peer's slot: it rests, another is tried.
    fn on_relay_listener_closed(
        &mut self,
        listener: ListenerId,
        reason: Result<(), impl std::fmt::Display>,
    ) {
        let Some(relay) = self
            .relay_listeners
            .iter()
            .find(|(_, l)| **l == listener)
            .map(|(r, _)| *r)
        else {
            return;
        };
        self.relay_listeners.remove(&relay);
        match reason {
            Ok(()) => tracing::info!(%relay, "a relay no longer holds a slot for this peer"),
            Err(e) => tracing::info!(%relay, "a relay no longer holds a slot for this peer: {e}"),
        }
        self.rest_relay(relay);
        self.reserve_relays();
    }

    /// Leaves `relay` alone for a while (see [`RELAY_RETRY`]).
    fn rest_relay(&mut self, relay: PeerId) {
        if self.resting_relays.insert(relay) {
            let (floor, ceiling) = RELAY_RETRY;
            let pause = self
                .relay_backoff
                .entry(relay)
                .or_insert_with(|| Backoff::new(floor, ceiling))
                .next_pause();
            self.send_later(pause, Command::RelayRested { relay });
        }
    }

    /// AutoNAT changed its mind about this peer.
    fn on_autonat(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { new, .. } = event else {
            return;
        };
        let (nat, public) = match new {
            autonat::NatStatus::Public(addr) => (NatState::Public, Some(addr)),
            autonat::NatStatus::Private => (NatState::Private, None),
            autonat::NatStatus::Unknown => (NatState::Unknown, None),
        };
        tracing::info!(?nat, "reachability changed");
        if let Some(addr) = &public {
            self.announce_addr(addr.clone());
        }
        self.reachability.set_nat(nat, public);
        if nat == NatState::Public {
            self.release_found_relays();
        }
        self.reserve_relays();
    }

    /// A public peer needs no relay but those it was told to use.
    fn release_found_relays(&mut self) {
        let found: Vec<(PeerId, ListenerId)> = self
            .relay_listeners
            .iter()
            .filter(|(r, _)| !self.explicit_relays.iter().any(|(e, _)| e == *r))
            .map(|(r, l)| (*r, *l))
            .collect();
        for (relay, listener) in found {
            self.relay_listeners.remove(&relay);
            self.swarm.remove_listener(listener);
        }
    }

    fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal: false,
                ..
            } => {
                tracing::info!(relay = %relay_peer_id, "a relay holds a slot for this peer");
                self.resting_relays.remove(&relay_peer_id);
                self.relay_backoff.remove(&relay_peer_id);
            }
            relay::client::Event::OutboundCircuitEstablished {
                relay_peer_id,
                limit,
            } => self
                .reachability
                .circuit_limit(relay_peer_id, limit.and_then(|l| l.data_in_bytes())),
            _ => {}
        }
    }

    /// Counts what the relay service carries.
    fn on_relay_service(&mut self, event: relay::Event) {
        let (reservations, circuits) = match event {
            relay::Event::ReservationReqAccepted { renewed: false, .. } => (1, 0),
            relay::Event::ReservationClosed { .. } | relay::Event::ReservationTimedOut { .. } => {
                (-1, 0)
            }
            relay::Event::CircuitReqAccepted { .. } => (0, 1),
            relay::Event::CircuitClosed { .. } => (0, -1),
            _ => return,
        };
        self.reachability
            .relay_service_changed(reservations, circuits);
    }

    fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(connection) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punching made a direct connection");
                self.reachability.hole_punched(connection);
                self.context.bus.publish(EventKind::PeerConnection {
                    peer_id: event.remote_peer_id.to_string(),
                    connected: true,
                    path: Some(ConnectionPath::HolePunched),
                });
                self.settle_path_waits();
            }
            Err(e) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punching failed: {e}");
            }
        }
    }

    /// What PCP or NAT-PMP mapped: a libp2p listening port's outside
    /// address is announced like one UPnP mapped; the data port needs
    /// nothing more when the router kept its number (grants name the local one).
    fn on_port_control(&mut self, event: PortMapEvent) {
        let (state, spoken) = match event {
            PortMapEvent::NoGateway => (PortMappingState::NoGateway, None),
            PortMapEvent::NotPublic(ip) => {
                tracing::info!(%ip, "the gateway mapping ports is behind another NAT");
                (PortMappingState::GatewayNotPublic, None)
            }
            PortMapEvent::Mapped {
                by,
                ip,
                internal,
                external,
            } => {
                self.gateway_mapped(ip, internal, external);
                (PortMappingState::Mapped, Some(by))
            }
            PortMapEvent::Lost { internal, reason } => {
                tracing::info!(
                    port = internal,
                    "a port mapping was refused or lost: {reason}"
                );
                if let Some(addr) = self.gateway_addrs.remove(&internal) {
                    self.forget_mapped_addr(&addr);
                }
                match self.gateway_addrs.is_empty() {
                    true => (PortMappingState::NoGateway, None),
                    false => return,
                }
            }
        };
        for (dialect, protocol) in [
            (Dialect::Pcp, MappingProtocol::Pcp),
            (Dialect::NatPmp, MappingProtocol::NatPmp),
        ] {
            let state = match spoken {
                Some(by) if by != dialect => PortMappingState::NoGateway,
                _ => state,
            };
            self.reachability.set_port_mapping(protocol, state);
        }
    }

    /// The gateway forwards `ip`:`external` to local port `internal`.
    fn gateway_mapped(&mut self, ip: std::net::Ipv4Addr, internal: u16, external: u16) {
        let libp2p = self
            .listen_addrs
            .borrow()
            .iter()
            .any(|a| !is_relayed(a) && a.iter().any(|p| p == Protocol::Tcp(internal)));
        if !libp2p {
            if internal != external {
                tracing::info!(
                    internal,
                    external,
                    "the router mapped the data port to another number; downloaders \
                     from outside will need a dial-back"
                );
            }
            return;
        }
        let addr = Multiaddr::empty()
            .with(Protocol::Ip4(ip))
            .with(Protocol::Tcp(external));
        match self.gateway_addrs.insert(internal, addr.clone()) {
            Some(old) if old == addr => {}
            old => {
                tracing::info!(%addr, "the router mapped a port (PCP or NAT-PMP)");
                if let Some(old) = old {
                    self.forget_mapped_addr(&old);
                }
                self.announce_addr(addr.clone());
                self.reachability.public_addr(addr, true);
            }
        }
    }

    /// A mapped address no longer leads here.
    fn forget_mapped_addr(&mut self, addr: &Multiaddr) {
        self.forget_listen_addr(addr);
        self.reachability.public_addr(addr.clone(), false);
    }

    fn on_upnp(&mut self, event: upnp::Event) {
        match event {
            upnp::Event::NewExternalAddr { external_addr, .. } => {
                tracing::info!(%external_addr, "the router mapped a port");
                self.announce_addr(external_addr.clone());
                self.reachability.public_addr(external_addr, true);
                self.reachability
                    .set_port_mapping(MappingProtocol::UpnpIgd, PortMappingState::Mapped);
            }
            upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                self.forget_mapped_addr(&external_addr);
            }
            upnp::Event::GatewayNotFound => {
                self.reachability
                    .set_port_mapping(MappingProtocol::UpnpIgd, PortMappingState::NoGateway);
            }
            upnp::Event::NonRoutableGateway => {
                self.reachability
                    .set_port_mapping(MappingProtocol::UpnpIgd, PortMappingState::GatewayNotPublic);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<PeerBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } if is_relayed(&address) => {
                // Kept, like every address here, without this peer's own id.
                let address = without_peer(address);
                tracing::info!(%address, "reachable through a relay");
                self.reachability.relayed_addr(address.clone(), true);
                self.announce_addr(address);
                // The DHT records must carry the new address, or peers that
                // find this one there cannot reach it.
                self.send_later(REANNOUNCE_DELAY, Command::AnnounceAll);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                for address in addresses {
                    self.forget_listen_addr(&without_peer(address));
                }
                self.on_relay_listener_closed(listener_id, reason);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                // DHT records carry this peer's external addresses: without them a
                // node holding a record can name this peer only if its own routing
                // table happens to hold it.
                if self.announce_loopback || !ip_of(&address).is_some_and(|ip| ip.is_loopback()) {
                    self.swarm.add_external_address(address.clone());
                }
                self.listen_addrs.send_modify(|addrs| addrs.push(address));
                self.reachability
                    .listening_at(self.listen_addrs.borrow().iter());
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.forget_listen_addr(&without_peer(address))
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() {
                    self.book
                        .saw(peer_id, [remote.clone()], FoundBy::Connection);
                }
                self.reachability.opened(
                    connection_id,
                    (peer_id, !endpoint.is_dialer()),
                    connection_addr(&endpoint),
                    &remote,
                );
                self.connections.insert(connection_id, remote);
                self.book.connection(peer_id, true);
                self.silent.write().expect("silent lock").remove(&peer_id);
                if num_established.get() == 1 {
                    self.announce_connection(peer_id, true);
                }
                self.settle_path_waits();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.connections.remove(&connection_id);
                self.reachability.closed(connection_id);
                self.book.connection(peer_id, false);
                if num_established == 0 {
                    self.announce_connection(peer_id, false);
                }
                self.settle_path_waits();
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Browse(event)) => self.on_browse(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Transfer(event)) => self.on_transfer(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Message(event)) => self.on_message(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Ping(event)) => self.on_ping(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Autonat(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::RelayClient(event)) => {
                self.on_relay_client(event)
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Relay(event)) => self.on_relay_service(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Upnp(event)) => self.on_upnp(event),
            // The transport's own connection timeout (the builder's, 10 s):
            // the peer accepted TCP and never finished the handshake. Its
            // error type is private to the transport, so it is known by its text.
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if error.to_string().contains("Timeout has been reached") => {
                tracing::debug!(%peer, "dialling a peer timed out: {error}");
                self.silent.write().expect("silent lock").insert(peer);
            }
            _ => {}
        }
    }

    /// A connection whose peer left a ping unanswered is closed: the requests
    /// waiting on it fail now rather than at their own deadline.
    fn on_ping(&mut self, event: ping::Event) {
        if let Err(ping::Failure::Timeout) = event.result {
            tracing::info!(peer = %event.peer, "peer stopped answering pings; closing its connection");
            self.silent.write().expect("silent lock").insert(event.peer);
            self.swarm.close_connection(event.connection);
        }
    }

    fn announce_connection(&self, peer: PeerId, connected: bool) {
        self.context.bus.publish(EventKind::PeerConnection {
            peer_id: peer.to_string(),
            connected,
            path: self.reachability.path_to(&peer).map(|(path, _)| path),
        });
    }

    /// An address others can reach this peer at (through a relay, a mapped
    /// port, one dialled back) joins the addresses it tells the index and the DHT.
    fn announce_addr(&mut self, address: Multiaddr) {
        self.swarm.add_external_address(address.clone());
        self.listen_addrs.send_if_modified(|addrs| {
            let new = !addrs.contains(&address);
            if new {
                addrs.push(address);
            }
            new
        });
    }

    /// An address this peer no longer listens on (or is no longer reached at).
    fn forget_listen_addr(&mut self, address: &Multiaddr) {
        self.swarm.remove_external_address(address);
        if is_relayed(address) {
            self.reachability.relayed_addr(address.clone(), false);
        }
        self.listen_addrs
            .send_modify(|addrs| addrs.retain(|a| a != address));
        self.reachability
            .listening_at(self.listen_addrs.borrow().iter());
    }

    /// A peer offering the relay protocol at a public address becomes a candidate relay.
    fn note_relay_candidate(&mut self, peer: PeerId, info: &identify::Info) {
        let offers_relay = info
            .protocols
            .iter()
            .any(|p| p.as_ref() == relay::HOP_PROTOCOL_NAME.as_ref());
        if !offers_relay {
            self.relay_candidates.remove(&peer);
            return;
        }
        let public = info
            .listen_addrs
            .iter()
            .find(|a| !is_relayed(a) && ip_of(a).is_some_and(is_public_ip));
        if let Some(addr) = public {
            if self.relay_candidates.insert(peer, addr.clone()).is_none() {
                self.reserve_relays();
            }
        }
    }

    /// A peer told us where it listens: the DHT routing table learns it.
    fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received {
            peer_id,
            info,
            connection_id,
        } = event
        {
            if info.protocol_version != IDENTIFY_VERSION {
                return;
            }
            if let Some(port) = advertised_index_port(&info.agent_version) {
                self.on_index_advertised(peer_id, connection_id, port);
            }
            self.note_relay_candidate(peer_id, &info);
            if self.reachability.path_of(connection_id) != Some(ConnectionPath::Relayed) {
                self.reachability
                    .observed(peer_id, info.observed_addr.clone());
            }
            let kad = &mut self.swarm.behaviour_mut().kad;
            for addr in info
                .listen_addrs
                .iter()
                .take(crate::net::peer_book::MAX_ADDRS_PER_PEER)
            {
                kad.add_address(&peer_id, addr.clone());
            }
            self.book
                .saw(peer_id, info.listen_addrs, FoundBy::Connection);
        }
    }

    /// A peer runs an index. When it is on the LAN and this peer runs its
    /// own, the person hears (once per peer) that the LAN has two networks and
    /// how to join the other one.
    fn on_index_advertised(
        &mut self,
        peer: PeerId,
        connection: libp2p::swarm::ConnectionId,
        port: u16,
    ) {
        if self.own_index_port.is_none() || !self.book.found_by(&peer, FoundBy::Mdns) {
            return;
        }
        let Some(ip) = self.connections.get(&connection).and_then(ip_of) else {
            return;
        };
        if !self.indexes_heard.insert(peer) {
            return;
        }
        let url = format!("http://{}", std::net::SocketAddr::new(ip, port));
        tracing::warn!(
            "another peershare index runs on this LAN at {url} (peer {peer}); this daemon runs \
             its own, so the two are separate networks. To join that one instead, restart with \
             `peershare up --index {url}`"
        );
        self.context.bus.publish(EventKind::IndexNearby {
            peer_id: peer.to_string(),
            url,
        });
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                self.book.saw(peer, addresses.into_vec(), FoundBy::Dht);
                self.announce_again_if_grown();
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => {
                let result = match result {
                    kad::QueryResult::GetProviders(result) => result,
                    kad::QueryResult::GetClosestPeers(result) => {
                        return self.on_closest_peers(id, result);
                    }
                    kad::QueryResult::StartProviding(result) => return self.on_provided(result),
                    _ => return,
                };
                if let Some((found, _)) = self.finding.get_mut(&id) {
                    if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
                        // The query knows the providers' addresses only while it runs:
                        // dial now, and the connection records where they are.
                        for provider in &providers {
                            if !self.swarm.is_connected(provider)
                                && provider != self.swarm.local_peer_id()
                            {
                                let _ = self.swarm.dial(*provider);
                            }
                        }
                        found.extend(providers);
                    }
                }
                if step.last {
                    if let Some((providers, reply)) = self.finding.remove(&id) {
                        let _ = reply.send(ProviderLookup {
                            providers,
                            requests: stats.num_requests(),
                            duration: stats.duration().unwrap_or_default(),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    /// An announcement ended. One that timed out stored the record nowhere (the
    /// store happens after the closest nodes are found), so it is tried again
    /// after a pause that doubles each time, rather than at the next republish.
    fn on_provided(&mut self, result: kad::AddProviderResult) {
        let (key, stored) = match result {
            Ok(kad::AddProviderOk { key }) => (key, true),
            Err(kad::AddProviderError::Timeout { key }) => (key, false),
        };
        let still_provided = !stored && self.provides(&key);
        if let Some(pause) = self.announcements.ended(&key, stored, still_provided) {
            tracing::debug!(?pause, "a DHT announcement timed out; retrying");
            self.send_later(pause, Command::ProvideAgain { key });
        }
        self.start_waiting_announcements();
    }

    /// Gives this loop `command` after `pause`.
    fn send_later(&mut self, pause: Duration, command: Command) {
        self.later.insert(command, pause);
    }

    /// Whether this peer still announces `key` (it was not withdrawn meanwhile).
    fn provides(&mut self, key: &RecordKey) -> bool {
        use libp2p::kad::store::RecordStore;
        let me = *self.swarm.local_peer_id();
        self.swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .providers(key)
            .iter()
            .any(|r| r.provider == me)
    }

    /// A lookup for a peer ended: its addresses, if the DHT knows where it is.
    fn on_closest_peers(&mut self, id: QueryId, result: kad::GetClosestPeersResult) {
        let peers = match result {
            Ok(kad::GetClosestPeersOk { peers, .. }) => peers,
            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
        };
        if let Some((key, reply)) = self.closest.remove(&id) {
            return self.answer_closest(key, peers, reply);
        }
        let Some((wanted, reply)) = self.locating.remove(&id) else {
            return;
        };
        let addrs: Vec<Multiaddr> = peers
            .into_iter()
            .filter(|p| p.peer_id == wanted)
            .flat_map(|p| p.addrs)
            .take(crate::net::peer_book::MAX_ADDRS_PER_PEER)
            .collect();
        if !addrs.is_empty() {
            self.book.saw(wanted, addrs.clone(), FoundBy::Dht);
        }
        let _ = reply.send(addrs);
    }

    /// Answers a closest-peers lookup, nearest first, remembering where each listens.
    fn answer_closest(
        &mut self,
        key: PeerId,
        peers: Vec<kad::PeerInfo>,
        reply: oneshot::Sender<Vec<PeerId>>,
    ) {
        let me = *self.swarm.local_peer_id();
        let target = kad::KBucketKey::from(key);
        let mut found: Vec<PeerId> = Vec::with_capacity(peers.len());
        for info in peers {
            if info.peer_id == me || info.peer_id == key || found.contains(&info.peer_id) {
                continue;
            }
            let addrs = info
                .addrs
                .into_iter()
                .take(crate::net::peer_book::MAX_ADDRS_PER_PEER);
            self.book.saw(info.peer_id, addrs, FoundBy::Dht);
            found.push(info.peer_id);
        }
        found.sort_by_key(|p| kad::KBucketKey::from(*p).distance(&target));
        let _ = reply.send(found);
    }

    /// Announces every record again each time the routing table has doubled
    /// (see [`AnnounceQueue::table_grew`]). The first peer triggers it at once;
    /// later growth comes in bursts (a lookup fills the table), so those
    /// announcements wait [`REANNOUNCE_DELAY`] and go out once per burst.
    fn announce_again_if_grown(&mut self) {
        let size = self.table_size();
        match self.announcements.table_grew(size) {
            Regrowth::Nothing => {}
            Regrowth::AnnounceNow => self.announce_all(),
            Regrowth::AnnounceLater => self.send_later(REANNOUNCE_DELAY, Command::AnnounceAll),
        }
    }

    /// Sends every record this peer provides to the nodes now known.
    fn announce_all(&mut self) {
        use libp2p::kad::store::RecordStore;
        let size = self.table_size();
        self.announcements.announcing_all(size);
        let kad = &mut self.swarm.behaviour_mut().kad;
        let keys: Vec<RecordKey> = kad.store_mut().provided().map(|r| r.key.clone()).collect();
        for key in keys {
            self.announcements.queue(key);
        }
        self.start_waiting_announcements();
    }

    /// Peers in the DHT routing table.
    fn table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    /// Queues an announcement of `key`; the queue lets a bounded number run at
    /// once, so sharing a large folder never starts one DHT query per key at
    /// the same moment.
    fn queue_announcement(&mut self, key: RecordKey) {
        self.announcements.queue(key);
        self.start_waiting_announcements();
    }

    fn start_waiting_announcements(&mut self) {
        while let Some(key) = self.announcements.next_to_start() {
            if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                self.announcements.not_started();
                tracing::warn!("cannot announce a key in the DHT: {e}");
            }
        }
    }

    /// Peers announcing themselves on the LAN are dialled and added to the DHT.
    fn on_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                if peer == *self.swarm.local_peer_id() {
                    continue;
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
                self.book.saw(peer, [addr.clone()], FoundBy::Mdns);
                if !self.swarm.is_connected(&peer) {
                    let _ = self.swarm.dial(addr.with(Protocol::P2p(peer)));
                }
            }
        }
    }

    fn on_browse(&mut self, event: request_response::Event<BrowseRequest, BrowseResponse>) {
        let Some(inbound) = settle(&mut self.browsing, event, |response, _| response) else {
            return;
        };
        let response = self.shares.browse_answer(&inbound.request);
        let behaviour = &mut self.swarm.behaviour_mut().browse;
        let _ = behaviour.send_response(inbound.channel, response);
    }

    fn on_transfer(&mut self, event: request_response::Event<TransferRequest, TransferResponse>) {
        if let request_response::Event::OutboundFailure {
            peer,
            error: request_response::OutboundFailure::Timeout,
            ..
        } = &event
        {
            self.silent.write().expect("silent lock").insert(*peer);
        }
        let connections = &self.connections;
        let reachability = &self.reachability;
        let inbound = settle(&mut self.transferring, event, |response, connection| {
            TransferAnswer {
                response,
                remote_ip: connections.get(&connection).and_then(ip_of),
                path: reachability.path_of(connection),
            }
        });
        let Some(Inbound {
            peer,
            request,
            channel,
        }) = inbound
        else {
            return;
        };
        match self.desk.on_request(peer, &request.id, &self.shares) {
            Verdict::Answer(response) => self.answer_transfer(channel, response),
            Verdict::Held(pending_id) => {
                self.held.hold(pending_id, channel, self.desk.ask_timeout())
            }
        }
    }

    /// An inbound message request goes to the messenger's inbox (a full inbox: "busy").
    fn on_message(&mut self, event: request_response::Event<MessageRequest, MessageResponse>) {
        let Some(Inbound {
            peer,
            request,
            channel,
        }) = settle(&mut self.messaging, event, |response, _| response)
        else {
            return;
        };
        self.next_inbound += 1;
        let key = self.next_inbound;
        let inbound = InboundMessage { key, peer, request };
        match self.context.messages.try_send(inbound) {
            Ok(()) => self
                .inbound_messages
                .hold(key, channel, MESSAGE_ANSWER_PATIENCE),
            Err(_) => {
                let busy = MessageResponse::Refused {
                    reason: "the recipient is busy; try again later".into(),
                    retry: true,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .message
                    .send_response(channel, busy);
            }
        }
    }

    /// Answers an inbound message request, if its channel is still held.
    fn answer_message(&mut self, key: u64, response: MessageResponse) {
        if let Some(channel) = self.inbound_messages.take(key) {
            let _ = self
                .swarm
                .behaviour_mut()
                .message
                .send_response(channel, response);
        }
    }

    /// A held request's time ran out: the desk's rejection goes out.
    fn on_held_expired(&mut self, pending_id: u64) {
        if let Some((channel, response)) = self.held.settle_expired(pending_id, self.desk.as_ref())
        {
            self.answer_transfer(channel, response);
        }
    }

    /// Sends the answer to an inbound transfer request.
    fn answer_transfer(
        &mut self,
        channel: ResponseChannel<TransferResponse>,
        mut response: TransferResponse,
    ) {
        // Where a downloader behind a router aims a `Punch`.
        if let TransferResponse::Granted { public_ip, .. } = &mut response {
            *public_ip = self.reachability.own_public_ip();
        }
        let behaviour = &mut self.swarm.behaviour_mut().transfer;
        let _ = behaviour.send_response(channel, response);
    }
}

/// A request another peer made: who, what, and where the answer goes.
struct Inbound<Req, Resp> {
    peer: PeerId,
    request: Req,
    channel: ResponseChannel<Resp>,
}

/// Hands an outbound request's answer (made into what the asker waits for
/// by `answer`, which also gets the connection it came on) or its failure
/// to whoever asked; an inbound request is returned for the protocol to decide.
fn settle<Req, Resp, T>(
    asking: &mut HashMap<OutboundRequestId, oneshot::Sender<Result<T, NodeError>>>,
    event: request_response::Event<Req, Resp>,
    answer: impl FnOnce(Resp, libp2p::swarm::ConnectionId) -> T,
) -> Option<Inbound<Req, Resp>> {
    use request_response::{Event, Message};
    match event {
        Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } => Some(Inbound {
            peer,
            request,
            channel,
        }),
        Event::Message {
            connection_id,
            message:
                Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = asking.remove(&request_id) {
                let _ = reply.send(Ok(answer(response, connection_id)));
            }
            None
        }
        Event::OutboundFailure {
            request_id,
            error,
            peer,
            ..
        } => {
            if let Some(reply) = asking.remove(&request_id) {
                let _ = reply.send(Err(outbound_failure(peer, error)));
            }
            None
        }
        _ => None,
    }
}

/// Why a request failed: an answer that does not decode is the peer's fault; anything else means it was not reached.
fn outbound_failure(peer: PeerId, error: request_response::OutboundFailure) -> NodeError {
    use std::io::ErrorKind;
    match &error {
        request_response::OutboundFailure::Io(e)
            if matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::Unsupported) =>
        {
            NodeError::PeerMisbehaved(format!("{peer} sent an answer that is not valid: {e}"))
        }
        _ => NodeError::PeerUnreachable(format!("{peer}: {error}")),
    }
}

/// `addr` without a trailing `/p2p/<id>`.
fn without_peer(mut addr: Multiaddr) -> Multiaddr {
    if let Some(Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}

/// The address that tells a connection's path: the one dialled, or for an
/// inbound connection the one it arrived on (a relayed one names the relay there).
fn connection_addr(endpoint: &ConnectedPoint) -> &Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { local_addr, .. } => local_addr,
    }
}

/// The IP address in a multiaddr, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Splits a full peer address into its peer id and the address to dial.
pub fn parse_peer_addr(addr: &str) -> Result<(PeerId, Multiaddr), NodeError> {
    let full: Multiaddr = addr
        .parse()
        .map_err(|e| NodeError::BadRequest(format!("{addr:?} is not a peer address ({e})")))?;
    match full.iter().last() {
        Some(Protocol::P2p(peer)) => {
            let mut dial = full.clone();
            dial.pop();
            Ok((peer, dial))
        }
        _ => Err(NodeError::BadRequest(format!(
            "{addr:?} does not end in /p2p/<peer id>: name a peer by its full address as \
             `peershare status` prints it (/ip4/192.168.1.20/tcp/1100/p2p/12D3KooW…)"
        ))),
    }
}
