//! The libp2p host: one swarm (TCP with noise + yamux, and QUIC) whose
//! behaviour is composed of identify, `/peershare/browse/1` and
//! `/peershare/transfer/1`, driven by one task that reads like a table of
//! cases: a command from the rest of the daemon, or an event from the swarm.
//!
//! The loop never does disk I/O or waits on a person: browse pages come from
//! the in-memory [`ShareIndex`], decisions from the [`UploadGate`], and a
//! request held for the person is answered later through a command.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, cbor, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use peershare_core::wire::control::{
    BrowseRequest, BrowseResponse, TransferRequest, TransferResponse, BROWSE_PROTOCOL,
    MAX_BROWSE_PAGE, MAX_CONTROL_MESSAGE, TRANSFER_PROTOCOL,
};
use peershare_core::FileId;
use tokio::sync::{mpsc, oneshot};

use crate::gate::{UploadGate, Verdict};
use crate::share::ShareIndex;
use crate::NodeError;

/// The identify protocol version peers announce.
pub const IDENTIFY_VERSION: &str = "/peershare/id/1";
const COMMAND_QUEUE: usize = 64;
const BROWSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough for the other side's person to answer an `ask` request.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(NetworkBehaviour)]
struct PeerBehaviour {
    identify: identify::Behaviour,
    browse: cbor::Behaviour<BrowseRequest, BrowseResponse>,
    transfer: cbor::Behaviour<TransferRequest, TransferResponse>,
}

/// A granted or refused transfer request, with the address the sharer was reached at.
pub struct TransferAnswer {
    /// The sharer's answer.
    pub response: TransferResponse,
    /// The sharer's IP on the connection that carried the answer.
    pub remote_ip: Option<IpAddr>,
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
}

/// A handle to the libp2p host task.
#[derive(Clone)]
pub struct Host {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen_addrs: Arc<RwLock<Vec<Multiaddr>>>,
}

impl Host {
    /// Starts the swarm listening on `listen` and spawns its task.
    pub async fn start(
        keypair: Keypair,
        listen: &[Multiaddr],
        shares: ShareIndex,
        gate: UploadGate,
    ) -> Result<Self, NodeError> {
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = build_swarm(keypair)?;
        for addr in listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::Listen(format!("{addr}: {e}")))?;
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let listen_addrs = Arc::new(RwLock::new(Vec::new()));
        let event_loop = EventLoop {
            swarm,
            commands: rx,
            self_commands: tx.clone(),
            shares,
            gate,
            listen_addrs: listen_addrs.clone(),
            connections: HashMap::new(),
            browsing: HashMap::new(),
            transferring: HashMap::new(),
            held: HashMap::new(),
        };
        let expected = listen.len();
        tokio::spawn(event_loop.run());
        let host = Self {
            commands: tx,
            peer_id,
            listen_addrs,
        };
        host.wait_for_listeners(expected).await;
        Ok(host)
    }

    async fn wait_for_listeners(&self, expected: usize) {
        for _ in 0..100 {
            if self.listen_addrs.read().expect("addrs lock").len() >= expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses this peer listens on, without the `/p2p/<id>` suffix.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs.read().expect("addrs lock").clone()
    }

    /// Full addresses (ending in `/p2p/<id>`) this peer listens on.
    pub fn addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs
            .read()
            .expect("addrs lock")
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

fn build_swarm(keypair: Keypair) -> Result<Swarm<PeerBehaviour>, NodeError> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NodeError::Listen(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| {
            let browse_codec = cbor::codec::Codec::default()
                .set_request_size_maximum(4096)
                .set_response_size_maximum(MAX_CONTROL_MESSAGE);
            let transfer_codec = cbor::codec::Codec::default()
                .set_request_size_maximum(4096)
                .set_response_size_maximum(64 * 1024);
            PeerBehaviour {
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_VERSION.into(),
                    key.public(),
                )),
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
    self_commands: mpsc::Sender<Command>,
    shares: ShareIndex,
    gate: UploadGate,
    listen_addrs: Arc<RwLock<Vec<Multiaddr>>>,
    connections: HashMap<libp2p::swarm::ConnectionId, Multiaddr>,
    browsing: HashMap<OutboundRequestId, oneshot::Sender<Result<BrowseResponse, NodeError>>>,
    transferring: HashMap<OutboundRequestId, oneshot::Sender<Result<TransferAnswer, NodeError>>>,
    held: HashMap<u64, ResponseChannel<TransferResponse>>,
}

impl EventLoop {
    async fn run(mut self) {
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
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
                if let Some(channel) = self.held.remove(&pending_id) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .transfer
                        .send_response(channel, response);
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<PeerBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.write().expect("addrs lock").push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs
                    .write()
                    .expect("addrs lock")
                    .retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                connection_id,
                endpoint,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                self.connections.insert(connection_id, remote);
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                self.connections.remove(&connection_id);
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Browse(event)) => self.on_browse(event),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Transfer(event)) => self.on_transfer(event),
            _ => {}
        }
    }

    fn on_browse(&mut self, event: request_response::Event<BrowseRequest, BrowseResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let (files, total) = self
                    .shares
                    .page(request.offset, request.limit.min(MAX_BROWSE_PAGE));
                let response = BrowseResponse { files, total };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .browse
                    .send_response(channel, response);
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.browsing.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(reply) = self.browsing.remove(&request_id) {
                    let _ = reply.send(Err(unreachable(peer, error)));
                }
            }
            _ => {}
        }
    }

    fn on_transfer(&mut self, event: request_response::Event<TransferRequest, TransferResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => match self.gate.on_request(peer, &request.id, &self.shares) {
                Verdict::Answer(response) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .transfer
                        .send_response(channel, response);
                }
                Verdict::Held(pending_id) => {
                    self.held.insert(pending_id, channel);
                    self.expire_later(pending_id);
                }
            },
            Event::Message {
                connection_id,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.transferring.remove(&request_id) {
                    let remote_ip = self.connections.get(&connection_id).and_then(ip_of);
                    let _ = reply.send(Ok(TransferAnswer {
                        response,
                        remote_ip,
                    }));
                }
            }
            Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(reply) = self.transferring.remove(&request_id) {
                    let _ = reply.send(Err(unreachable(peer, error)));
                }
            }
            _ => {}
        }
    }

    /// Rejects a held request once the person's time to answer has run out.
    fn expire_later(&self, pending_id: u64) {
        let gate = self.gate.clone();
        let commands = self.self_commands.clone();
        tokio::spawn(async move {
            tokio::time::sleep(gate.ask_timeout()).await;
            if let Some(response) = gate.expire(pending_id) {
                let _ = commands
                    .send(Command::Answer {
                        pending_id,
                        response,
                    })
                    .await;
            }
        });
    }
}

fn unreachable(peer: PeerId, error: request_response::OutboundFailure) -> NodeError {
    NodeError::PeerUnreachable(format!("{peer}: {error}"))
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
            "{addr:?} does not end in /p2p/<peer id>: use an address printed by `peershare status`"
        ))),
    }
}
