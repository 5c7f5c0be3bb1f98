//! Letters for someone away, with no index: left with the DHT nodes
//! closest to the recipient's peer id (the keepers), kept alive there, and
//! collected by the recipient when it comes back.
//!
//! - A sender that cannot reach the recipient hands the envelope to the
//!   `replicas` closest nodes that take it (`Keep`).
//! - Each keeper hands what it keeps to the nodes closest to its recipient
//!   again every `republish` interval, so a node joining near the key gets a
//!   copy and losing all but one keeper loses nothing; and it hands a
//!   letter straight to its recipient when it connects.
//! - The recipient asks the nodes closest to itself for its letters
//!   (`Collect`) shortly after starting and then periodically, and signs a
//!   `Delivered` receipt naming what it got, so keepers drop those copies.
//!
//! Keepers answer only for validly signed envelopes and only within their
//! bounds ([`super::keeper`]); they cannot read what they keep.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use libp2p::PeerId;
use peershare_core::wire::message::{
    DeliveredReceipt, Envelope, MessageRequest, MessageResponse, DELIVERED_DOMAIN,
    MAX_COLLECTED_BYTES, MAX_DELIVERED_IDS, SIGNATURE_LEN,
};

use super::history::OutboxEntry;
use super::keeper::Kept;
use super::keys;
use super::seal;
use super::{Inner, Via};
use crate::views::EventKind;
use crate::NodeError;

/// How long the DHT is searched for the nodes closest to a key.
const CLOSEST_PATIENCE: Duration = Duration::from_secs(3);
/// How long one request to a keeper may take.
const KEEPER_TIMEOUT: Duration = Duration::from_secs(10);
/// When a starting peer first asks for its letters (its routing table fills first).
const FIRST_COLLECTION: Duration = Duration::from_secs(2);
/// How often a peer asks the keepers for its letters.
const COLLECT_EVERY: Duration = Duration::from_secs(30);
/// `Collect` rounds per keeper at most in one collection (each answer is bounded).
const MAX_ROUNDS: usize = 8;

/// Leaves `entry` with the nodes closest to its recipient; true when at least one keeps it.
pub(super) async fn leave_with_keepers(inner: &Inner, entry: &OutboxEntry) -> bool {
    let Ok(to) = entry.to_peer.parse::<PeerId>() else {
        return false;
    };
    let Ok(closest) = inner.host.closest_peers(to, CLOSEST_PATIENCE).await else {
        return false;
    };
    let mut kept = 0;
    // Nearest first; a node that refuses is passed over for the next one.
    for keeper in closest.into_iter().take(inner.replicas * 2) {
        let request = MessageRequest::Keep {
            envelope: entry.envelope.clone(),
        };
        match ask(inner, keeper, request).await {
            Ok(MessageResponse::Accepted { .. }) => kept += 1,
            Ok(MessageResponse::Refused { reason, .. }) => {
                tracing::debug!(%keeper, "a DHT node would not keep a letter: {reason}");
            }
            _ => {}
        }
        if kept >= inner.replicas {
            break;
        }
    }
    if kept > 0 {
        tracing::info!(to = %to, kept, "a letter was left with DHT nodes near its recipient");
    }
    kept > 0
}

async fn ask(
    inner: &Inner,
    peer: PeerId,
    request: MessageRequest,
) -> Result<MessageResponse, NodeError> {
    let addrs = inner.host.book().addrs(&peer);
    tokio::time::timeout(KEEPER_TIMEOUT, inner.host.message(peer, addrs, request))
        .await
        .map_err(|_| NodeError::PeerUnreachable(format!("{peer} did not answer in time")))?
}

impl Inner {
    /// Answers `Keep` from `peer`: a letter for someone else is kept (when
    /// validly signed and within bounds); one for this peer is received.
    pub(super) async fn on_keep(&self, bytes: &[u8]) -> MessageResponse {
        let refuse = |reason: String| MessageResponse::Refused {
            reason,
            retry: false,
        };
        let (envelope, from, to) = match seal::check_signature(bytes) {
            Ok(checked) => checked,
            Err(e) => return refuse(e.to_string()),
        };
        if to == self.keys.peer_id() {
            return self.receive(bytes, Via::Mailbox).await;
        }
        match self.keeper.keep(&envelope, bytes, &from, &to).await {
            Ok(Kept::New) => MessageResponse::Accepted { duplicate: false },
            Ok(Kept::Known) => MessageResponse::Accepted { duplicate: true },
            Ok(Kept::Refused(reason)) => refuse(reason),
            Err(e) => {
                tracing::warn!("cannot keep a letter: {e}");
                MessageResponse::Refused {
                    reason: "this peer cannot keep letters right now".into(),
                    retry: true,
                }
            }
        }
    }

    /// Answers `Collect` from `peer`: the letters kept for it.
    pub(super) async fn on_collect(&self, peer: PeerId) -> MessageResponse {
        match self.keeper.for_recipient(&peer, MAX_COLLECTED_BYTES).await {
            Ok(envelopes) => MessageResponse::Letters {
                envelopes: envelopes.into_iter().map(Into::into).collect(),
            },
            Err(e) => MessageResponse::Refused {
                reason: format!("cannot read the letters kept here: {e}"),
                retry: true,
            },
        }
    }

    /// Answers `Delivered`: the recipient's signed receipt drops the letters it names.
    pub(super) async fn on_delivered(&self, bytes: &[u8]) -> MessageResponse {
        let checked = DeliveredReceipt::decode(bytes)
            .ok()
            .and_then(|r| Some((PeerId::from_bytes(&r.recipient).ok()?, r)))
            .filter(|(to, r)| keys::verify(to, DELIVERED_DOMAIN, &r.signed_bytes(), &r.signature));
        let Some((to, receipt)) = checked else {
            return MessageResponse::Refused {
                reason: "the receipt is not signed by the recipient it names".into(),
                retry: false,
            };
        };
        match self.keeper.delivered(&to, &receipt.ids).await {
            Ok(_) => MessageResponse::Accepted { duplicate: false },
            Err(e) => MessageResponse::Refused {
                reason: format!("cannot record the receipt: {e}"),
                retry: true,
            },
        }
    }

    /// A receipt for `ids`, signed by this peer.
    fn delivered_receipt(&self, ids: Vec<[u8; 16]>) -> Result<Vec<u8>, NodeError> {
        let mut receipt = DeliveredReceipt {
            recipient: self.keys.peer_id().to_bytes(),
            ids,
            signature: [0; SIGNATURE_LEN],
        };
        receipt.signature = keys::sign(
            self.keys.identity(),
            DELIVERED_DOMAIN,
            &receipt.signed_bytes(),
        )?;
        Ok(receipt.encode())
    }
}

/// Collects this peer's letters from the nodes closest to it, shortly after start and then periodically.
pub(super) async fn collect(inner: Arc<Inner>) {
    tokio::time::sleep(FIRST_COLLECTION).await;
    loop {
        collect_once(&inner).await;
        tokio::time::sleep(COLLECT_EVERY).await;
    }
}

async fn collect_once(inner: &Inner) {
    let me = inner.keys.peer_id();
    let Ok(keepers) = inner.host.closest_peers(me, CLOSEST_PATIENCE).await else {
        return;
    };
    let keepers: Vec<PeerId> = keepers.into_iter().take(inner.replicas * 2).collect();
    let got: Vec<Vec<[u8; 16]>> = join_all(keepers.iter().map(|k| collect_from(inner, *k))).await;
    let mut ids: Vec<[u8; 16]> = got.into_iter().flatten().collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return;
    }
    // Every keeper hears of every letter that arrived, wherever it came from.
    for chunk in ids.chunks(MAX_DELIVERED_IDS) {
        let Ok(receipt) = inner.delivered_receipt(chunk.to_vec()) else {
            return;
        };
        join_all(keepers.iter().map(|k| {
            let request = MessageRequest::Delivered {
                receipt: receipt.clone(),
            };
            ask(inner, *k, request)
        }))
        .await;
    }
}

/// Takes the letters `keeper` holds for this peer: the ids of those it need not keep any more.
async fn collect_from(inner: &Inner, keeper: PeerId) -> Vec<[u8; 16]> {
    let mut done = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let Ok(MessageResponse::Letters { envelopes }) =
            ask(inner, keeper, MessageRequest::Collect).await
        else {
            break;
        };
        if envelopes.is_empty() {
            break;
        }
        let mut taken = Vec::new();
        for bytes in &envelopes {
            let Ok(envelope) = Envelope::decode(bytes) else {
                continue;
            };
            let answer = inner.receive(bytes, Via::Mailbox).await;
            if !matches!(answer, MessageResponse::Refused { retry: true, .. }) {
                taken.push(envelope.id);
            }
        }
        if taken.is_empty() {
            break;
        }
        // The keeper drops them before the next round, so the next answer holds new ones.
        let Ok(receipt) = inner.delivered_receipt(taken.clone()) else {
            break;
        };
        let _ = ask(inner, keeper, MessageRequest::Delivered { receipt }).await;
        done.extend(taken);
    }
    done
}

/// Keeps kept letters alive: hands them to the nodes now closest to their
/// recipients every `republish`, and straight to a recipient that connects.
pub(super) async fn republish(inner: Arc<Inner>) {
    let mut events = inner.bus.subscribe();
    let mut next_round = tokio::time::Instant::now() + inner.republish;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_round) => {
                republish_once(&inner).await;
                next_round = tokio::time::Instant::now() + inner.republish;
            }
            event = events.next() => match event {
                Some(event) => {
                    if let EventKind::PeerConnection { peer_id, connected: true, .. } = event.kind {
                        if let Ok(peer) = peer_id.parse::<PeerId>() {
                            hand_over(&inner, peer).await;
                        }
                    }
                }
                None => {
                    tokio::time::sleep_until(next_round).await;
                    events = inner.bus.subscribe();
                }
            },
        }
    }
}

async fn republish_once(inner: &Inner) {
    if let Err(e) = inner.keeper.purge().await {
        tracing::warn!("cannot purge kept letters: {e}");
    }
    let Ok(recipients) = inner.keeper.recipients().await else {
        return;
    };
    for to in recipients {
        let Ok(closest) = inner.host.closest_peers(to, CLOSEST_PATIENCE).await else {
            return;
        };
        let Ok(letters) = inner.keeper.for_recipient(&to, usize::MAX).await else {
            continue;
        };
        for keeper in closest.into_iter().take(inner.replicas) {
            for envelope in &letters {
                let request = MessageRequest::Keep {
                    envelope: envelope.clone(),
                };
                if ask(inner, keeper, request).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Hands `peer` the letters kept for it; each it takes (or refuses for good) is dropped.
async fn hand_over(inner: &Inner, peer: PeerId) {
    if !inner.keeper.holds_for(&peer).await.unwrap_or(false) {
        return;
    }
    let Ok(letters) = inner.keeper.for_recipient(&peer, usize::MAX).await else {
        return;
    };
    let mut taken = Vec::new();
    for bytes in letters {
        let Ok(envelope) = Envelope::decode(&bytes) else {
            continue;
        };
        let request = MessageRequest::Deliver { envelope: bytes };
        match ask(inner, peer, request).await {
            Ok(MessageResponse::Accepted { .. })
            | Ok(MessageResponse::Refused { retry: false, .. }) => taken.push(envelope.id),
            _ => break,
        }
    }
    // The recipient answered on its own connection: that is its word that they arrived.
    if let Err(e) = inner.keeper.delivered(&peer, &taken).await {
        tracing::warn!("cannot drop handed-over letters: {e}");
    }
}
