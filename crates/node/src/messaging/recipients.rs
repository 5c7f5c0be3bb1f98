//! Who a name is: the peers (and their checked key cards) a letter to a
//! user name or a peer id is sealed for.
//!
//! A user name is asked of the index first (it vouches for its users and
//! keeps the cards of offline peers); when there is no index or it cannot
//! be asked, of the DHT, whose name claims anyone can make, so the answer
//! is marked unverified and the person's pins decide. A peer id is asked
//! for its card directly, else its last known card is used. Every card is
//! checked against its peer id before it is believed or kept.

use std::time::Duration;

use base64::Engine;
use futures::future::join_all;
use libp2p::PeerId;
use peershare_core::wire::message::{MessageRequest, MessageResponse};
use peershare_core::words::user_key;

use super::keys::{verify_card, VerifiedCard};
use super::Inner;
use crate::index_link::client::IndexClientError;
use crate::NodeError;

/// How long a peer may take to hand over its card.
const CARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Most peers claiming a name in the DHT that are asked for their cards.
const MAX_CLAIMANTS: usize = 8;
/// How long the DHT is searched for a name's claimants.
const NAME_LOOKUP_PATIENCE: Duration = Duration::from_secs(2);

/// Where a name's keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysFrom {
    /// The index, which vouches for its users.
    Index,
    /// Peers claiming the name in the DHT (unverified).
    Dht,
    /// The peer itself, asked by its id.
    Peer,
    /// The last card known for a pinned peer.
    Pinned,
}

impl KeysFrom {
    /// The name shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Index => "index",
            Self::Dht => "dht",
            Self::Peer => "peer",
            Self::Pinned => "pinned",
        }
    }
}

/// The peers a name resolved to.
pub struct Resolved {
    /// Their checked cards (at least one).
    pub cards: Vec<VerifiedCard>,
    /// Where they came from.
    pub from: KeysFrom,
}

/// The peers and cards of `name` (a canonical peer id or a user name).
pub(super) async fn resolve(inner: &Inner, name: &str) -> Result<Resolved, NodeError> {
    if let Ok(peer) = name.parse::<PeerId>() {
        return resolve_peer(inner, peer).await;
    }
    let index_error = match from_index(inner, name).await {
        Ok(resolved) => return Ok(resolved),
        Err(IndexAnswer::Final(e)) => return Err(e),
        Err(IndexAnswer::Unavailable(why)) => why,
    };
    from_dht(inner, name, &index_error).await
}

async fn resolve_peer(inner: &Inner, peer: PeerId) -> Result<Resolved, NodeError> {
    if let Some(card) = ask_card(inner, &peer).await {
        return Ok(Resolved {
            cards: vec![card],
            from: KeysFrom::Peer,
        });
    }
    match inner.contacts.card(&peer).await? {
        Some(card) => Ok(Resolved {
            cards: vec![card],
            from: KeysFrom::Pinned,
        }),
        None => Err(NodeError::NotFound(format!(
            "{peer} is not reachable now and its messaging key is not known yet; it must be \
             online once (or write to you first) before letters can be sealed for it"
        ))),
    }
}

enum IndexAnswer {
    /// The index answered, and the answer stands (no such user, no keys).
    Final(NodeError),
    /// The index could not be asked; why.
    Unavailable(String),
}

async fn from_index(inner: &Inner, name: &str) -> Result<Resolved, IndexAnswer> {
    let Some(link) = &inner.index else {
        return Err(IndexAnswer::Unavailable(
            "this daemon runs without an index".into(),
        ));
    };
    let token = link
        .token()
        .map_err(|e| IndexAnswer::Unavailable(e.to_string()))?;
    let listed = match link.client().user_peers(&token, name).await {
        Ok(listed) => listed,
        Err(IndexClientError::Refused { status: 404, .. }) => {
            return Err(IndexAnswer::Final(NodeError::NotFound(format!(
                "no user {name:?} on the index {}; check the name (`peershare users --all`)",
                link.client().url()
            ))))
        }
        Err(e) => return Err(IndexAnswer::Unavailable(e.to_string())),
    };
    let mut cards = Vec::new();
    for peer in &listed.peers {
        let Some(card) = peer.message_key.as_deref() else {
            continue;
        };
        let Ok(expected) = peer.peer_id.parse::<PeerId>() else {
            continue;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(card) else {
            continue;
        };
        match verify_card(&bytes, Some(&expected)) {
            Ok(card) => {
                let _ = inner.contacts.remember_card(&card, &bytes).await;
                cards.push(card);
            }
            Err(e) => tracing::warn!(peer = %expected, "the index handed out a bad key card: {e}"),
        }
    }
    if cards.is_empty() {
        return Err(IndexAnswer::Final(NodeError::NotFound(format!(
            "{name} has no peer with a messaging key on the index yet (they must run a \
             peershare that supports messages and log in once)"
        ))));
    }
    Ok(Resolved {
        cards,
        from: KeysFrom::Index,
    })
}

async fn from_dht(inner: &Inner, name: &str, index_error: &str) -> Result<Resolved, NodeError> {
    let mut claimants: Vec<PeerId> = inner
        .host
        .find_providers(user_key(name), NAME_LOOKUP_PATIENCE)
        .await?
        .providers
        .into_iter()
        .filter(|p| *p != inner.host.peer_id())
        .collect();
    claimants.sort();
    claimants.truncate(MAX_CLAIMANTS);
    for pin in inner.contacts.pins(name).await? {
        if let Ok(peer) = pin.peer_id.parse() {
            if !claimants.contains(&peer) {
                claimants.push(peer);
            }
        }
    }
    let cards: Vec<VerifiedCard> = join_all(claimants.iter().map(|p| card_of(inner, p)))
        .await
        .into_iter()
        .flatten()
        .collect();
    if cards.is_empty() {
        return Err(NodeError::NotFound(format!(
            "no peer claiming the user {name:?} could be reached (the index cannot be asked: \
             {index_error}); write to a peer id, or try again when they are online"
        )));
    }
    Ok(Resolved {
        cards,
        from: KeysFrom::Dht,
    })
}

/// `peer`'s card: the last one known, else asked of the peer.
pub(super) async fn card_of(inner: &Inner, peer: &PeerId) -> Option<VerifiedCard> {
    if let Ok(Some(card)) = inner.contacts.card(peer).await {
        return Some(card);
    }
    ask_card(inner, peer).await
}

/// Asks `peer` for its card (bounded in time), checks and keeps it.
pub(super) async fn ask_card(inner: &Inner, peer: &PeerId) -> Option<VerifiedCard> {
    let asked = tokio::time::timeout(CARD_TIMEOUT, async {
        let addrs = inner.host.find_peer(*peer).await.unwrap_or_default();
        inner
            .host
            .message(*peer, addrs, MessageRequest::KeyCard)
            .await
    })
    .await;
    let Ok(Ok(MessageResponse::KeyCard { card: bytes })) = asked else {
        return None;
    };
    match verify_card(&bytes, Some(peer)) {
        Ok(card) => {
            let _ = inner.contacts.remember_card(&card, &bytes).await;
            Some(card)
        }
        Err(e) => {
            tracing::warn!(%peer, "a peer handed over a bad key card: {e}");
            None
        }
    }
}
