//! The sharing side's decision on every transfer request: the policy
//! (accept everything, or ask the person), the upload slots ("busy" when
//! full), the requests waiting for an answer, and the one-use tickets that
//! let a granted peer open a data connection.
//!
//! The gate decides and counts; it never touches files or sockets. A slot
//! is held by a [`UploadSlot`] guard from grant until the data connection
//! ends, so a crashed upload can never leak one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use peershare_core::wire::control::TransferResponse;
use peershare_core::FileId;

use crate::events::EventBus;
use crate::net::transfer_requests::{TransferDesk, Verdict};
use crate::share::{SharedFile, SharedFiles};
use crate::views::EventKind;
pub use crate::views::PendingRequest;
pub use crate::views::Policy;

/// How long a granted ticket may wait for its data connection.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "accept" => Ok(Self::Accept),
            "ask" => Ok(Self::Ask),
            other => Err(format!("unknown policy {other:?}: use accept or ask")),
        }
    }
}

fn pending_view(id: u64, peer: &PeerId, file: &SharedFile, expires: Instant) -> PendingRequest {
    PendingRequest {
        id,
        peer: peer.to_string(),
        user: None,
        file_id: file.id(),
        name: file.name.clone(),
        size: file.size,
        expires_in: expires.saturating_duration_since(Instant::now()).as_secs(),
    }
}

struct Ticket {
    peer: PeerId,
    file: SharedFile,
    expires: Instant,
}

struct GateState {
    busy_slots: usize,
    tickets: HashMap<u64, Ticket>,
    pending: HashMap<u64, (PeerId, SharedFile, Instant)>,
    next_pending: u64,
}

/// Upload policy, slots and tickets, shared by the libp2p host and the data server.
#[derive(Clone)]
pub struct UploadGate {
    policy: Policy,
    max_uploads: usize,
    ask_timeout: Duration,
    data_port: u16,
    state: Arc<Mutex<GateState>>,
    bus: EventBus,
}

/// Holds one upload slot; dropping it frees the slot.
pub struct UploadSlot {
    state: Arc<Mutex<GateState>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut state = self.state.lock().expect("gate lock");
        state.busy_slots = state.busy_slots.saturating_sub(1);
    }
}

impl UploadGate {
    /// A gate with this policy and slot count; `data_port` goes into grants,
    /// requests waiting for the person are announced on `bus`.
    pub fn new(
        policy: Policy,
        max_uploads: usize,
        ask_timeout: Duration,
        data_port: u16,
        bus: EventBus,
    ) -> Self {
        Self {
            policy,
            max_uploads: max_uploads.max(1),
            ask_timeout,
            data_port,
            bus,
            state: Arc::new(Mutex::new(GateState {
                busy_slots: 0,
                tickets: HashMap::new(),
                pending: HashMap::new(),
                next_pending: 1,
            })),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Uploads running or granted right now.
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
        let Some(file) = shares.get_unchanged(id) else {
            return Verdict::Answer(TransferResponse::NotFound);
        };
        match self.policy {
            Policy::Accept => Verdict::Answer(self.grant(peer, file)),
            Policy::Ask => {
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

    fn grant(&self, peer: PeerId, file: SharedFile) -> TransferResponse {
        let mut state = self.state.lock().expect("gate lock");
        let now = Instant::now();
        let expired: Vec<u64> = state
            .tickets
            .iter()
            .filter(|(_, t)| t.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for ticket in expired {
            state.tickets.remove(&ticket);
            state.busy_slots = state.busy_slots.saturating_sub(1);
        }
        if state.busy_slots >= self.max_uploads {
            return TransferResponse::Busy;
        }
        state.busy_slots += 1;
        let ticket = rand::random::<u64>();
        let response = TransferResponse::Granted {
            ticket,
            data_port: self.data_port,
            size: file.size,
            piece_len: file.outboard.layout().piece_len(),
            name: file.name.clone(),
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

    /// Exchanges a ticket presented by `peer` for the file and its upload slot.
    pub fn redeem(&self, ticket: u64, peer: &PeerId) -> Option<(SharedFile, UploadSlot)> {
        let mut state = self.state.lock().expect("gate lock");
        let valid = state
            .tickets
            .get(&ticket)
            .is_some_and(|t| t.peer == *peer && t.expires > Instant::now());
        if !valid {
            return None;
        }
        let t = state.tickets.remove(&ticket)?;
        Some((
            t.file,
            UploadSlot {
                state: self.state.clone(),
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
