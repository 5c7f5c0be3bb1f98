//! The sharing side's decision on every transfer request: the policy
//! (accept everything, or ask the person), the upload slots ("busy" when
//! full), the requests waiting for an answer, and the one-use tickets that
//! let a granted peer open a data connection.
//!
//! The gate decides and counts; it never touches files or sockets. Two
//! limits apply. Peers served at once (`max_peers`): a data connection
//! holds an [`UploadSlot`] guard until it ends, so a crashed upload can
//! never leak one, and past the limit requests are answered "busy". A
//! grant whose ticket is not used holds no slot: it only counts against
//! the caps on tickets (per peer and in total) and expires unused after
//! [`TICKET_LIFETIME`]. One peer holds at most [`MAX_PER_PEER`] uploads,
//! granted or running, so no one peer can take every slot. (Tickets granted
//! together may, when all are used, serve a few more peers than
//! `max_peers` for one upload each; their number is bounded by the ticket caps.)
//! Pieces sent at once (`max_uploads`, the upload slots): each upload takes
//! a slot for one piece and gives it back, from a first-come first-served
//! queue, so many downloaders of one sharer take turns and each makes
//! progress.
//!
//! It offers downloads in progress too (their verified pieces), and it
//! remembers who asked for each file lately: a grant names those peers, so
//! downloaders of one file find each other and trade pieces.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::PeerId;
use peershare_core::wire::control::{TransferResponse, MAX_SWARM_HINTS};
use peershare_core::FileId;

use super::offer::Offer;
use crate::events::EventBus;
use crate::messaging::Roster;
use crate::net::peer_book::PeerBook;
use crate::net::transfer_requests::{TransferDesk, Verdict, MAX_ASK_TIMEOUT};
use crate::share::SharedFiles;
use crate::transfer::partial::PartialFiles;
use crate::views::EventKind;
pub use crate::views::PendingRequest;
pub use crate::views::Policy;

/// How long a granted ticket may wait for its data connection.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);
/// Uploads one peer may hold at once, granted (ticket unused) or running;
/// more requests from it are answered "busy".
pub const MAX_PER_PEER: usize = 2;
/// Tickets granted and not yet used, from all peers together; past it, "busy".
pub const MAX_TICKETS: usize = 64;
/// How long a peer that asked for a file is named to others who ask for it.
const ASKER_MEMORY: Duration = Duration::from_secs(600);
/// Files whose askers are remembered.
const MAX_FILES_ASKED: usize = 1024;
/// Addresses given per peer in a grant's hints.
const ADDRS_PER_HINT: usize = 2;

impl Policy {
    /// The policy's name, as `--policy` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Ask => "ask",
            Self::Contacts => "contacts",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "accept" => Ok(Self::Accept),
            "ask" => Ok(Self::Ask),
            "contacts" => Ok(Self::Contacts),
            other => Err(format!(
                "unknown policy {other:?}: use accept, ask or contacts"
            )),
        }
    }
}

fn pending_view(id: u64, peer: &PeerId, file: &Offer, expires: Instant) -> PendingRequest {
    PendingRequest {
        id,
        peer: peer.to_string(),
        user: None,
        file_id: file.id(),
        name: file.name().to_string(),
        size: file.size(),
        expires_in: expires.saturating_duration_since(Instant::now()).as_secs(),
    }
}

struct Ticket {
    peer: PeerId,
    file: Offer,
    expires: Instant,
}

struct GateState {
    policy: Policy,
    max_peers: usize,
    /// Pieces sent at once, as last set (the semaphore may still be shrinking to it).
    piece_slot_count: usize,
    busy_slots: usize,
    /// Uploads running now, per peer.
    running: HashMap<PeerId, usize>,
    tickets: HashMap<u64, Ticket>,
    pending: HashMap<u64, (PeerId, Offer, Instant)>,
    next_pending: u64,
    /// Who asked for each file lately, oldest first.
    askers: HashMap<FileId, VecDeque<(PeerId, Instant)>>,
}

impl GateState {
    /// Remembers that `peer` asked for `id`.
    fn remember_asker(&mut self, id: FileId, peer: PeerId) {
        let now = Instant::now();
        if !self.askers.contains_key(&id) && self.askers.len() >= MAX_FILES_ASKED {
            self.askers
                .retain(|_, list| list.back().is_some_and(|(_, at)| now - *at < ASKER_MEMORY));
            if self.askers.len() >= MAX_FILES_ASKED {
                return;
            }
        }
        let list = self.askers.entry(id).or_default();
        list.retain(|(p, at)| *p != peer && now - *at < ASKER_MEMORY);
        if list.len() >= MAX_SWARM_HINTS {
            list.pop_front();
        }
        list.push_back((peer, now));
    }

    /// The peers that asked for `id` lately, newest first, except `asking`.
    fn askers_of(&self, id: &FileId, asking: &PeerId) -> Vec<PeerId> {
        let now = Instant::now();
        self.askers.get(id).map_or_else(Vec::new, |list| {
            list.iter()
                .rev()
                .filter(|(p, at)| p != asking && now - *at < ASKER_MEMORY)
                .map(|(p, _)| *p)
                .collect()
        })
    }
}

/// Upload policy, slots and tickets, shared by the libp2p host and the data server.
#[derive(Clone)]
pub struct UploadGate {
    piece_slots: Arc<tokio::sync::Semaphore>,
    ask_timeout: Duration,
    data_port: u16,
    state: Arc<Mutex<GateState>>,
    bus: EventBus,
    partials: PartialFiles,
    book: PeerBook,
    roster: Roster,
}

/// What the gate consults besides its own state.
pub struct GateParts {
    /// Where requests waiting for the person are announced.
    pub bus: EventBus,
    /// Downloads in progress, offered as partial sources.
    pub partials: PartialFiles,
    /// Addresses of peers, to name them in grants.
    pub book: PeerBook,
    /// Blocked peers (refused) and contacts (granted under `contacts`).
    pub roster: Roster,
}

/// Holds one upload slot; dropping it frees the slot.
pub struct UploadSlot {
    state: Arc<Mutex<GateState>>,
    peer: PeerId,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut state = self.state.lock().expect("gate lock");
        state.busy_slots = state.busy_slots.saturating_sub(1);
        if let Some(n) = state.running.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.running.remove(&self.peer);
            }
        }
    }
}

impl UploadGate {
    /// A gate with this policy, sending at most `max_uploads` pieces at once
    /// to at most `max_peers` peers; `data_port` goes into grants.
    pub fn new(
        policy: Policy,
        (max_uploads, max_peers): (usize, usize),
        ask_timeout: Duration,
        data_port: u16,
        parts: GateParts,
    ) -> Self {
        if ask_timeout > MAX_ASK_TIMEOUT {
            tracing::warn!(
                "--ask-timeout {} s is longer than downloaders wait for an answer; using {} s",
                ask_timeout.as_secs(),
                MAX_ASK_TIMEOUT.as_secs()
            );
        }
        Self {
            piece_slots: Arc::new(tokio::sync::Semaphore::new(max_uploads.max(1))),
            ask_timeout: ask_timeout.min(MAX_ASK_TIMEOUT),
            data_port,
            bus: parts.bus,
            partials: parts.partials,
            book: parts.book,
            roster: parts.roster,
            state: Arc::new(Mutex::new(GateState {
                policy,
                max_peers: max_peers.max(1),
                piece_slot_count: max_uploads.max(1),
                busy_slots: 0,
                running: HashMap::new(),
                tickets: HashMap::new(),
                pending: HashMap::new(),
                next_pending: 1,
                askers: HashMap::new(),
            })),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.state.lock().expect("gate lock").policy
    }

    /// Changes the policy for requests from now on (waiting ones stay waiting).
    pub fn set_policy(&self, policy: Policy) {
        self.state.lock().expect("gate lock").policy = policy;
    }

    /// Upload slots (pieces sent at once) and peers served at once at most.
    pub fn capacity(&self) -> (usize, usize) {
        let state = self.state.lock().expect("gate lock");
        (state.piece_slot_count, state.max_peers)
    }

    /// Changes the upload slots and the peers served at once; fewer slots
    /// take effect as running pieces finish, never by cutting one off.
    pub fn set_capacity(&self, piece_slots: Option<usize>, max_peers: Option<usize>) {
        let mut state = self.state.lock().expect("gate lock");
        if let Some(peers) = max_peers {
            state.max_peers = peers.max(1);
        }
        let Some(wanted) = piece_slots.map(|n| n.max(1)) else {
            return;
        };
        let had = std::mem::replace(&mut state.piece_slot_count, wanted);
        drop(state);
        if wanted > had {
            self.piece_slots.add_permits(wanted - had);
            return;
        }
        let surplus = had - wanted;
        let owed = surplus - self.piece_slots.forget_permits(surplus);
        if owed > 0 {
            // The rest are held by pieces being sent; they are retired as those
            // pieces finish (within the piece write timeout), which ends this task.
            let slots = self.piece_slots.clone();
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(owed as u32).await {
                    permits.forget();
                }
            });
        }
    }

    /// The upload slots: one is held while a piece is read and sent.
    pub fn piece_slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.piece_slots.clone()
    }

    /// Uploads running right now (data connections open; unused grants do not count).
    pub fn busy_slots(&self) -> usize {
        self.state.lock().expect("gate lock").busy_slots
    }

    /// Decides on a request from `peer` for `id`.
    fn decide(&self, peer: PeerId, id: &FileId, shares: &SharedFiles) -> Verdict {
        if !shares.is_online() {
            return Verdict::Answer(TransferResponse::Rejected {
                reason: "the person sharing it is offline".into(),
            });
        }
        if self.roster.is_blocked(&peer) {
            return Verdict::Answer(TransferResponse::Rejected {
                reason: "the person sharing it does not accept requests from you".into(),
            });
        }
        let file = match (shares.get_unchanged(id), self.partials.get(id)) {
            (Some(file), _) => Offer::Whole(file),
            (None, Some(partial)) if !partial.is_withdrawn() => {
                partial.asked_by(peer);
                Offer::Partial(partial)
            }
            _ => return Verdict::Answer(TransferResponse::NotFound),
        };
        let ask = match self.policy() {
            Policy::Accept => false,
            Policy::Ask => true,
            Policy::Contacts => !self.roster.is_contact(&peer),
        };
        match ask {
            false => Verdict::Answer(self.grant(peer, file)),
            true => {
                let mut state = self.state.lock().expect("gate lock");
                let pending_id = state.next_pending;
                state.next_pending += 1;
                let expires = Instant::now() + self.ask_timeout;
                let request = pending_view(pending_id, &peer, &file, expires);
                state.pending.insert(pending_id, (peer, file, expires));
                drop(state);
                tracing::info!(pending_id, %peer, "transfer request waiting for an answer");
                self.bus.publish(EventKind::RequestWaiting { request });
                Verdict::Held(pending_id)
            }
        }
    }

    /// The person's answer to a held request; `None` if it is no longer waiting.
    pub fn answer(&self, pending_id: u64, accept: bool) -> Option<TransferResponse> {
        let (peer, file, _) = self
            .state
            .lock()
            .expect("gate lock")
            .pending
            .remove(&pending_id)?;
        self.bus.publish(EventKind::RequestEnded {
            id: pending_id,
            accepted: accept,
        });
        Some(if accept {
            self.grant(peer, file)
        } else {
            TransferResponse::Rejected {
                reason: "the person sharing the file declined".into(),
            }
        })
    }

    /// Requests waiting for the person, oldest first.
    pub fn pending(&self) -> Vec<PendingRequest> {
        let state = self.state.lock().expect("gate lock");
        let mut waiting: Vec<_> = state.pending.iter().collect();
        waiting.sort_by_key(|(id, (_, _, expires))| (*expires, **id));
        waiting
            .into_iter()
            .map(|(id, (peer, file, expires))| pending_view(*id, peer, file, *expires))
            .collect()
    }

    fn grant(&self, peer: PeerId, file: Offer) -> TransferResponse {
        let mut state = self.state.lock().expect("gate lock");
        let id = file.id();
        let others = state.askers_of(&id, &peer);
        state.remember_asker(id, peer);
        let now = Instant::now();
        state.tickets.retain(|_, t| t.expires > now);
        let held = state.running.get(&peer).copied().unwrap_or(0)
            + state.tickets.values().filter(|t| t.peer == peer).count();
        if state.busy_slots >= state.max_peers
            || held >= MAX_PER_PEER
            || state.tickets.len() >= MAX_TICKETS
        {
            return TransferResponse::Busy;
        }
        let ticket = rand::random::<u64>();
        let response = TransferResponse::Granted {
            ticket,
            data_port: self.data_port,
            size: file.size(),
            piece_len: file.outboard().layout().piece_len(),
            name: file.name().to_string(),
            swarm: self.hints(others),
            // Filled in by the host, which knows how peers see this one.
            public_ip: None,
        };
        state.tickets.insert(
            ticket,
            Ticket {
                peer,
                file,
                expires: now + TICKET_LIFETIME,
            },
        );
        response
    }

    /// Full addresses of `peers` (those the book knows), at most [`MAX_SWARM_HINTS`].
    fn hints(&self, peers: Vec<PeerId>) -> Vec<String> {
        let mut hints = Vec::new();
        for peer in peers {
            for addr in self.book.addrs(&peer).into_iter().take(ADDRS_PER_HINT) {
                if hints.len() >= MAX_SWARM_HINTS {
                    return hints;
                }
                hints.push(addr.with(Protocol::P2p(peer)).to_string());
            }
        }
        hints
    }

    /// Whether `ticket` is one granted to `peer`, unused and unexpired.
    pub fn holds(&self, ticket: u64, peer: &PeerId) -> bool {
        let state = self.state.lock().expect("gate lock");
        state
            .tickets
            .get(&ticket)
            .is_some_and(|t| t.peer == *peer && t.expires > Instant::now())
    }

    /// Exchanges a ticket presented by `peer` for the file and its upload slot.
    pub fn redeem(&self, ticket: u64, peer: &PeerId) -> Option<(Offer, UploadSlot)> {
        if !self.holds(ticket, peer) {
            return None;
        }
        let mut state = self.state.lock().expect("gate lock");
        let t = state.tickets.remove(&ticket)?;
        state.busy_slots += 1;
        *state.running.entry(*peer).or_default() += 1;
        Some((
            t.file,
            UploadSlot {
                state: self.state.clone(),
                peer: *peer,
            },
        ))
    }
}

impl TransferDesk for UploadGate {
    fn on_request(&self, peer: PeerId, id: &FileId, shares: &SharedFiles) -> Verdict {
        self.decide(peer, id, shares)
    }

    fn expire(&self, pending_id: u64) -> Option<TransferResponse> {
        let expired = self
            .state
            .lock()
            .expect("gate lock")
            .pending
            .remove(&pending_id);
        if expired.is_some() {
            self.bus.publish(EventKind::RequestEnded {
                id: pending_id,
                accepted: false,
            });
        }
        expired.map(|_| TransferResponse::Rejected {
            reason: "the person sharing the file did not answer in time".into(),
        })
    }

    fn ask_timeout(&self) -> Duration {
        self.ask_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::{ShareOrigin, SharedFile};
    use std::path::PathBuf;

    fn gate(max_peers: usize) -> UploadGate {
        UploadGate::new(
            Policy::Accept,
            (4, max_peers),
            Duration::from_secs(30),
            1,
            GateParts {
                bus: EventBus::new(),
                partials: PartialFiles::default(),
                book: PeerBook::default(),
                roster: Roster::default(),
            },
        )
    }

    fn offer() -> Offer {
        Offer::Whole(SharedFile {
            path: PathBuf::from("f"),
            name: "f".into(),
            size: 3000,
            mtime_ns: 0,
            identity: (0, 0),
            outboard: Arc::new(peershare_core::Outboard::hash_bytes(&[1u8; 3000], 1024).unwrap()),
            origin: ShareOrigin::Folder,
        })
    }

    fn ticket(response: &TransferResponse) -> Option<u64> {
        match response {
            TransferResponse::Granted { ticket, .. } => Some(*ticket),
            _ => None,
        }
    }

    #[test]
    fn one_peer_asking_again_and_again_gets_at_most_its_cap() {
        let gate = gate(32);
        let greedy = PeerId::random();
        let granted: Vec<u64> = (0..10)
            .filter_map(|_| ticket(&gate.grant(greedy, offer())))
            .collect();
        assert_eq!(granted.len(), MAX_PER_PEER);
        // Running uploads count too: one used ticket and one unused still make the cap.
        let slot = gate
            .redeem(granted[0], &greedy)
            .expect("a granted ticket opens");
        assert!(ticket(&gate.grant(greedy, offer())).is_none());
        drop(slot);
        assert!(
            ticket(&gate.grant(greedy, offer())).is_some(),
            "a finished upload frees its place"
        );
    }

    #[test]
    fn unused_grants_hold_no_slot() {
        let gate = gate(1);
        let (idle, other) = (PeerId::random(), PeerId::random());
        let unused = ticket(&gate.grant(idle, offer())).expect("granted");
        assert_eq!(gate.busy_slots(), 0, "a grant alone holds no slot");
        let used =
            ticket(&gate.grant(other, offer())).expect("not busy: the first grant is unused");
        let slot = gate.redeem(used, &other).expect("opens");
        assert_eq!(gate.busy_slots(), 1);
        let third = PeerId::random();
        assert!(
            matches!(gate.grant(third, offer()), TransferResponse::Busy),
            "a running upload fills the one slot"
        );
        drop(slot);
        assert_eq!(gate.busy_slots(), 0);
        assert!(
            gate.redeem(unused, &other).is_none(),
            "a ticket is its peer's only"
        );
    }

    #[test]
    fn outstanding_tickets_are_bounded_in_total() {
        let gate = gate(1000);
        let granted = (0..MAX_TICKETS + 10)
            .filter_map(|_| ticket(&gate.grant(PeerId::random(), offer())))
            .count();
        assert_eq!(granted, MAX_TICKETS);
    }
}
