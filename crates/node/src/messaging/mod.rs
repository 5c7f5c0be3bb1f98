//! Messages between people: end-to-end encrypted letters, sent directly
//! over `/peershare/msg/1` when the recipient is online and left in the
//! index's mailbox when it is not; contacts, blocking and presence.
//!
//! - [`keys`]: this peer's messaging key and the signed key cards.
//! - [`seal`]: sealing a letter for one peer, opening one for this peer.
//! - [`contacts`]: contacts, blocked names, pinned peers, known cards, the [`Roster`].
//! - [`history`]: every chat's messages and the outbox of sealed copies.
//! - [`recipients`]: who a name is (index, DHT, the peer itself) and whether its peers are trusted.
//! - [`outbox`]: the task that delivers sealed copies and retries them.
//! - [`mailbox`]: the task that collects letters left at the index.
//! - [`keeper`]: letters this peer keeps for others who are away (no index).
//! - [`dht_mail`]: leaving letters with the DHT nodes closest to their
//!   recipient, keeping them alive there, and collecting one's own.
//! - [`presence`]: contacts coming online and going offline.
//!
//! The messenger never holds plaintext anywhere but in this peer's own
//! database, never sends a letter to a peer that is not pinned to the name
//! it was written to (a changed key holds the letter until the person
//! trusts it), and refuses blocked senders, forged or altered envelopes,
//! oversize text and floods.

pub mod contacts;
pub mod dht_mail;
pub mod history;
pub mod keeper;
pub mod keys;
pub mod mailbox;
pub mod outbox;
pub mod presence;
pub mod recipients;
pub mod seal;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use libp2p::PeerId;
use peershare_core::wire::message::{MessageRequest, MessageResponse, MAX_TEXT};
use tokio::sync::{mpsc, Notify};

pub use contacts::Roster;
use contacts::{pinned_set, Contacts};
use history::{History, NewMessage};
use keys::{MessageKeys, VerifiedCard};
use recipients::Resolved;
use seal::{Letter, LetterBody, Opened};

use crate::events::EventBus;
use crate::index_link::IndexLink;
use crate::lifetime::Lifetime;
use crate::net::host::{Host, InboundMessage};
use crate::store::Store;
use crate::views::{ChatView, ContactView, EventKind, MessageState, MessageView, SentMessage};
use crate::{now_ms, NodeError};

/// How long a letter waits for its recipient unless told otherwise.
pub const DEFAULT_LETTER_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// DHT nodes a letter for someone away is left with, unless told otherwise.
pub const DEFAULT_REPLICAS: usize = 3;
/// How often kept letters are handed on, unless told otherwise.
pub const DEFAULT_REPUBLISH: Duration = Duration::from_secs(600);
/// Letters one peer may hand this one per minute before it hears "slow down".
const LETTERS_PER_MINUTE: u32 = 120;
/// Requests of any kind one peer may make per minute before it hears "slow down"
/// (a keeper handing on hundreds of letters stays under it).
const REQUESTS_PER_MINUTE: u32 = 1200;
/// Senders whose pace is remembered at most.
const MAX_PACED_SENDERS: usize = 4096;
/// Longest name a letter may be addressed to.
const MAX_NAME_LEN: usize = 128;

/// What the messenger is built from.
pub struct MessengerParts {
    /// The peer database.
    pub store: Store,
    /// This peer's messaging keys.
    pub keys: MessageKeys,
    /// The libp2p host.
    pub host: Host,
    /// The index membership, if there is an index.
    pub index: Option<IndexLink>,
    /// Where messages and presence are announced.
    pub bus: EventBus,
    /// Who is blocked and who is a contact, shared with the upload gate.
    pub roster: Roster,
    /// Inbound message requests from the host.
    pub inbox: mpsc::Receiver<InboundMessage>,
    /// How long letters wait for their recipient.
    pub letter_ttl: Duration,
    /// DHT nodes a letter for someone away is left with.
    pub replicas: usize,
    /// How often kept letters are handed on.
    pub republish: Duration,
    /// Whether senders hear when their letters are read.
    pub read_receipts: bool,
    /// Owns the messenger's tasks.
    pub lifetime: Lifetime,
}

/// The handle to the messenger; clones share it.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

struct Inner {
    keys: MessageKeys,
    history: History,
    contacts: Contacts,
    roster: Roster,
    host: Host,
    index: Option<IndexLink>,
    bus: EventBus,
    /// Wakes the outbox when a copy was queued.
    wake: Notify,
    senders: Mutex<SenderPace>,
    /// Every message request, by peer: cheap refusals for a peer flooding the inbox.
    askers: Mutex<SenderPace>,
    letter_ttl: Duration,
    keeper: keeper::Keeper,
    replicas: usize,
    republish: Duration,
    read_receipts: bool,
}

/// How a letter reached this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Handed over by this peer on a connection.
    Direct(PeerId),
    /// Collected from the index's mailbox.
    Mailbox,
}

impl Messenger {
    /// Starts the messenger: its inbox, outbox, mailbox and presence tasks.
    pub async fn start(parts: MessengerParts) -> Result<Self, NodeError> {
        let pool = parts.store.pool().clone();
        let contacts = Contacts::load(pool.clone(), parts.roster.clone()).await?;
        let inner = Arc::new(Inner {
            keys: parts.keys,
            history: History::new(pool.clone()),
            keeper: keeper::Keeper::new(pool),
            replicas: parts.replicas.max(1),
            republish: parts.republish,
            read_receipts: parts.read_receipts,
            contacts,
            roster: parts.roster,
            host: parts.host,
            index: parts.index,
            bus: parts.bus,
            wake: Notify::new(),
            senders: Mutex::new(SenderPace::new(LETTERS_PER_MINUTE)),
            askers: Mutex::new(SenderPace::new(REQUESTS_PER_MINUTE)),
            letter_ttl: parts.letter_ttl,
        });
        let lifetime = &parts.lifetime;
        lifetime.spawn(serve_inbox(inner.clone(), parts.inbox));
        lifetime.spawn(outbox::run(inner.clone()));
        lifetime.spawn(mailbox::collect(inner.clone()));
        lifetime.spawn(presence::watch(inner.clone()));
        lifetime.spawn(dht_mail::collect(inner.clone()));
        lifetime.spawn(dht_mail::republish(inner.clone()));
        Ok(Self { inner })
    }

    /// This peer's key card, base64, as the index hands it out.
    pub fn card_base64(keys: &MessageKeys) -> String {
        base64::engine::general_purpose::STANDARD.encode(keys.card().encode())
    }

    /// Writes `text` to `to` (a user name or a peer id): sealed for each of
    /// its pinned peers and queued, or held when its peers changed.
    pub async fn send(&self, to: &str, text: &str) -> Result<SentMessage, NodeError> {
        let chat = chat_name(to)?;
        if text.trim().is_empty() {
            return Err(NodeError::BadRequest("the message is empty".into()));
        }
        if text.len() > MAX_TEXT {
            return Err(NodeError::BadRequest(format!(
                "a message holds at most {MAX_TEXT} bytes of text ({} given); share a file and \
                 send its link instead",
                text.len()
            )));
        }
        let inner = &self.inner;
        let resolved = recipients::resolve(inner, &chat).await?;
        let trust = inner.check_trust(&chat, &resolved).await?;
        let letter_id = hex::encode(rand::random::<[u8; 16]>());
        let seq = inner.history.next_seq(&chat).await?;
        let sent_at = now_ms();
        let expires_at = sent_at + inner.letter_ttl.as_millis() as i64;
        let (state, note) = match &trust {
            Trust::Trusted => (MessageState::Sending, None),
            Trust::Changed(note) => (MessageState::Held, Some(note.clone())),
        };
        let message = inner
            .history
            .insert(NewMessage {
                chat: &chat,
                letter_id: &letter_id,
                peer_id: None,
                from_user: None,
                verified: true,
                text,
                sent_at,
                seq,
                expires_at,
                state,
                note,
            })
            .await?
            .ok_or_else(|| NodeError::Store("a new letter id was already taken".into()))?;
        if matches!(trust, Trust::Trusted) {
            let letter = inner.text_letter(text, sent_at, seq);
            inner
                .post(&letter_id, &letter, &resolved.cards, expires_at)
                .await?;
        }
        Ok(SentMessage {
            message,
            recipients: resolved.cards.len(),
            keys_from: resolved.from.as_str().into(),
        })
    }

    /// Sealed letters kept here for others (0 when they cannot be counted).
    pub async fn kept_letters(&self) -> u64 {
        self.inner.keeper.count().await.unwrap_or(0)
    }

    /// Every chat, the most recent first.
    pub async fn chats(&self) -> Result<Vec<ChatView>, NodeError> {
        self.inner.history.chats().await
    }

    /// The latest `limit` messages of the chat with `who`; `mark_read` marks
    /// its unread messages read and tells their senders.
    pub async fn chat(
        &self,
        who: &str,
        limit: u32,
        mark_read: bool,
    ) -> Result<Vec<MessageView>, NodeError> {
        let chat = chat_name(who)?;
        if mark_read {
            let read = self.inner.history.mark_read(&chat).await?;
            if self.inner.read_receipts {
                self.inner.send_read_receipts(read).await;
            }
        }
        self.inner.history.chat(&chat, limit).await
    }

    /// Contacts and blocked names, with presence where it can be told.
    pub async fn contacts(&self) -> Result<Vec<ContactView>, NodeError> {
        let mut list = self.inner.contacts.list().await?;
        for contact in &mut list {
            presence::fill(&self.inner, contact).await;
        }
        Ok(list)
    }

    /// Adds a contact (who may download without asking under `--policy contacts`).
    pub async fn add_contact(&self, name: &str) -> Result<(), NodeError> {
        let name = chat_name(name)?;
        self.inner.contacts.add(&name).await?;
        // Pin now, so the contact's peers are known to the upload gate at once.
        if self.inner.contacts.pins(&name).await?.is_empty() {
            if let Ok(resolved) = recipients::resolve(&self.inner, &name).await {
                let peers: Vec<PeerId> = resolved.cards.iter().map(|c| c.peer).collect();
                self.inner.contacts.pin(&name, &peers).await?;
            }
        }
        Ok(())
    }

    /// Removes a contact; false when it was not one.
    pub async fn remove_contact(&self, name: &str) -> Result<bool, NodeError> {
        self.inner.contacts.remove(&chat_name(name)?).await
    }

    /// Blocks or unblocks `name`: its letters and download requests are refused.
    pub async fn block(&self, name: &str, blocked: bool) -> Result<(), NodeError> {
        let name = chat_name(name)?;
        if blocked && self.inner.contacts.pins(&name).await?.is_empty() {
            if let Ok(resolved) = recipients::resolve(&self.inner, &name).await {
                let peers: Vec<PeerId> = resolved.cards.iter().map(|c| c.peer).collect();
                self.inner.contacts.pin(&name, &peers).await?;
            }
        }
        self.inner.contacts.block(&name, blocked).await
    }

    /// Trusts the peers `name` resolves to now (after a change of keys), and
    /// sends the letters held for it; how many were released.
    pub async fn trust(&self, name: &str) -> Result<usize, NodeError> {
        let name = chat_name(name)?;
        let inner = &self.inner;
        let resolved = recipients::resolve(inner, &name).await?;
        let peers: Vec<PeerId> = resolved.cards.iter().map(|c| c.peer).collect();
        inner.contacts.replace_pins(&name, &peers).await?;
        let held = inner.history.held(&name).await?;
        for (message, seq, expires_at) in &held {
            let letter = inner.text_letter(&message.text, message.sent_at, *seq);
            inner
                .post(&message.id, &letter, &resolved.cards, *expires_at)
                .await?;
            if let Some(moved) = inner
                .history
                .advance(&message.id, MessageState::Sending, None)
                .await?
            {
                inner.announce_change(moved);
            }
        }
        Ok(held.len())
    }
}

/// Whether a name's peers may be written to.
enum Trust {
    /// Every peer is pinned (or this is the first contact and they are now).
    Trusted,
    /// Peers not pinned before: the note for the person.
    Changed(String),
}

impl Inner {
    /// Pins the peers of a first contact; a later resolution with peers not pinned is a change.
    async fn check_trust(&self, name: &str, resolved: &Resolved) -> Result<Trust, NodeError> {
        let pinned = pinned_set(&self.contacts.pins(name).await?);
        let peers: Vec<PeerId> = resolved.cards.iter().map(|c| c.peer).collect();
        if pinned.is_empty() {
            self.contacts.pin(name, &peers).await?;
            return Ok(Trust::Trusted);
        }
        let new_peers: Vec<String> = peers
            .iter()
            .map(|p| p.to_string())
            .filter(|p| !pinned.contains_key(p))
            .collect();
        if new_peers.is_empty() {
            return Ok(Trust::Trusted);
        }
        tracing::warn!(
            name,
            ?new_peers,
            "the keys of {name} changed: messages to them wait until you trust the new keys"
        );
        self.bus.publish(EventKind::KeyChanged {
            name: name.to_string(),
            new_peers: new_peers.clone(),
        });
        Ok(Trust::Changed(format!(
            "held: {name}'s keys changed (new peer {}). Make sure it is really them (ask them \
             in person), then run `peershare contacts trust {name}` to send it",
            new_peers.join(", ")
        )))
    }

    fn text_letter(&self, text: &str, sent_at: i64, seq: u64) -> Letter {
        Letter {
            sent_at,
            seq,
            from_user: self
                .index
                .as_ref()
                .and_then(|link| link.status().user.clone()),
            card: Some(hex::encode(self.keys.card().encode())),
            body: LetterBody::Text {
                text: text.to_string(),
            },
        }
    }

    /// Seals `letter` for each card and queues the copies for the outbox.
    async fn post(
        &self,
        letter_id: &str,
        letter: &Letter,
        cards: &[VerifiedCard],
        expires_at: i64,
    ) -> Result<(), NodeError> {
        let id: [u8; 16] = hex::decode(letter_id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| NodeError::Store(format!("bad letter id {letter_id}")))?;
        for card in cards {
            let envelope = seal::seal(&self.keys, card, id, expires_at as u64, letter)
                .map_err(|e| NodeError::BadRequest(e.to_string()))?;
            self.history
                .queue(
                    letter_id,
                    &card.peer.to_string(),
                    &envelope.encode(),
                    expires_at,
                )
                .await?;
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Takes in an envelope, from a connection or a mailbox: the answer for its carrier.
    async fn receive(&self, bytes: &[u8], via: Via) -> MessageResponse {
        let refuse = |reason: String, retry: bool| MessageResponse::Refused { reason, retry };
        if let Via::Direct(peer) = via {
            if !self.senders.lock().expect("pace lock").allow(peer) {
                return refuse(
                    "too many messages from your peer; slow down and try again in a minute".into(),
                    true,
                );
            }
        }
        let opened = match seal::open(&self.keys, bytes) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::info!(?via, "refused a letter: {e}");
                return refuse(e.to_string(), false);
            }
        };
        if self.roster.is_blocked(&opened.from) {
            return refuse(
                "the recipient does not accept messages from you".into(),
                false,
            );
        }
        if (opened.expires_ms as i64) < now_ms() {
            return refuse("the letter expired before it arrived".into(), false);
        }
        match self.take_letter(opened, via).await {
            Ok(duplicate) => MessageResponse::Accepted { duplicate },
            Err(e) => {
                tracing::warn!("cannot store a letter: {e}");
                refuse("the recipient cannot store letters right now".into(), true)
            }
        }
    }

    /// Stores a text or applies a receipt; true when the letter was seen before.
    async fn take_letter(&self, opened: Opened, via: Via) -> Result<bool, NodeError> {
        let from = opened.from;
        let letter_id = hex::encode(opened.id);
        self.remember_sender_card(&from, opened.letter.card.as_deref())
            .await;
        match opened.letter.body {
            LetterBody::Text { text } => {
                let claimed = opened.letter.from_user.as_deref();
                let (chat, verified, note) = self.chat_for(&from, claimed).await?;
                let stored = self
                    .history
                    .insert(NewMessage {
                        chat: &chat,
                        letter_id: &letter_id,
                        peer_id: Some(&from.to_string()),
                        from_user: claimed,
                        verified,
                        text: &text,
                        sent_at: opened.letter.sent_at,
                        seq: opened.letter.seq,
                        expires_at: opened.expires_ms as i64,
                        state: MessageState::Unread,
                        note,
                    })
                    .await?;
                let Some(message) = stored else {
                    return Ok(true);
                };
                self.bus.publish(EventKind::MessageReceived { message });
                if via != Via::Direct(from) {
                    // The sender's own connection carries the receipt as the answer; a
                    // letter from a mailbox or a keeper needs one of its own.
                    self.send_receipt(from, vec![letter_id], false).await;
                }
                Ok(false)
            }
            LetterBody::Receipt { ids, read } => {
                self.on_receipt(from, &ids, read).await?;
                Ok(false)
            }
        }
    }

    /// The chat a letter from `from` belongs to, whether its name is vouched
    /// for, and a note when it comes from a peer not pinned to that name.
    async fn chat_for(
        &self,
        from: &PeerId,
        claimed: Option<&str>,
    ) -> Result<(String, bool, Option<String>), NodeError> {
        if let Some(name) = self.contacts.names_of(from).await?.into_iter().next() {
            return Ok((name, true, None));
        }
        if let Some(link) = &self.index {
            if let Some(user) = link.user_of(&from.to_string()).await {
                let pins = self.contacts.pins(&user).await?;
                if pins.is_empty() {
                    self.contacts.pin(&user, &[*from]).await?;
                    return Ok((user, true, None));
                }
                let note = format!(
                    "sent from a peer not pinned to {user} ({from}): their keys changed. Make \
                     sure it is really them, then run `peershare contacts trust {user}`"
                );
                return Ok((user, true, Some(note)));
            }
        }
        let note = claimed.map(|c| format!("claims to be {c:?}; no index vouches for it"));
        Ok((from.to_string(), false, note))
    }

    /// Keeps the card a letter carried, when it is `from`'s own.
    async fn remember_sender_card(&self, from: &PeerId, card: Option<&str>) {
        let Some(bytes) = card.and_then(|c| hex::decode(c).ok()) else {
            return;
        };
        match keys::verify_card(&bytes, Some(from)) {
            Ok(card) => {
                if let Err(e) = self.contacts.remember_card(&card, &bytes).await {
                    tracing::warn!("cannot keep a sender's key card: {e}");
                }
            }
            Err(e) => tracing::info!(%from, "a letter carried a bad key card: {e}"),
        }
    }

    /// A receipt from `from`: the letters it names, sent to one of `from`'s names, move forward.
    async fn on_receipt(&self, from: PeerId, ids: &[String], read: bool) -> Result<(), NodeError> {
        let mut chats = self.contacts.names_of(&from).await?;
        chats.push(from.to_string());
        let state = if read {
            MessageState::Read
        } else {
            MessageState::Delivered
        };
        for id in ids {
            for chat in &chats {
                if self.history.outgoing(chat, id).await?.is_none() {
                    continue;
                }
                self.history.done(id, &from.to_string()).await?;
                if let Some(moved) = self.history.advance(id, state, None).await? {
                    self.announce_change(moved);
                }
            }
        }
        Ok(())
    }

    /// Tells the senders of letters just read that they were (read receipts).
    async fn send_read_receipts(&self, read: Vec<(String, String)>) {
        let mut by_peer: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (peer, id) in read {
            by_peer.entry(peer).or_default().push(id);
        }
        for (peer, ids) in by_peer {
            let Ok(peer) = peer.parse::<PeerId>() else {
                continue;
            };
            for chunk in ids.chunks(seal::MAX_RECEIPT_IDS) {
                self.send_receipt(peer, chunk.to_vec(), true).await;
            }
        }
    }

    /// Queues a receipt for `to` naming `ids`; skipped (and logged) when `to`'s key is unknown.
    async fn send_receipt(&self, to: PeerId, ids: Vec<String>, read: bool) {
        let Some(card) = recipients::card_of(self, &to).await else {
            tracing::info!(%to, "no key known for a sender; its receipt is not sent");
            return;
        };
        let letter = Letter {
            sent_at: now_ms(),
            seq: 0,
            from_user: None,
            card: None,
            body: LetterBody::Receipt { ids, read },
        };
        let letter_id = hex::encode(rand::random::<[u8; 16]>());
        let expires_at = now_ms() + self.letter_ttl.as_millis() as i64;
        if let Err(e) = self.post(&letter_id, &letter, &[card], expires_at).await {
            tracing::warn!(%to, "cannot queue a receipt: {e}");
        }
    }

    fn announce_change(&self, message: MessageView) {
        self.bus.publish(EventKind::MessageChanged { message });
    }
}

/// Answers the host's inbound message requests, one at a time.
async fn serve_inbox(inner: Arc<Inner>, mut inbox: mpsc::Receiver<InboundMessage>) {
    while let Some(inbound) = inbox.recv().await {
        let paced = inner.askers.lock().expect("pace lock").allow(inbound.peer);
        let response = match inbound.request {
            _ if !paced => MessageResponse::Refused {
                reason: "too many requests from your peer; slow down".into(),
                retry: true,
            },
            MessageRequest::KeyCard => MessageResponse::KeyCard {
                card: inner.keys.card().encode(),
            },
            MessageRequest::Deliver { envelope } => {
                inner.receive(&envelope, Via::Direct(inbound.peer)).await
            }
            MessageRequest::Keep { envelope } => inner.on_keep(&envelope).await,
            MessageRequest::Collect => inner.on_collect(inbound.peer).await,
            MessageRequest::Delivered { receipt } => inner.on_delivered(&receipt).await,
        };
        if inner
            .host
            .answer_message(inbound.key, response)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A name letters can be addressed to: a peer id (written canonically) or a user name.
fn chat_name(name: &str) -> Result<String, NodeError> {
    let name = name.trim();
    if let Ok(peer) = name.parse::<PeerId>() {
        return Ok(peer.to_string());
    }
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '/');
    if valid {
        Ok(name.to_string())
    } else {
        Err(NodeError::BadRequest(format!(
            "{name:?} is neither a user name nor a peer id"
        )))
    }
}

/// How many letters (or requests) each peer made in the current minute.
struct SenderPace {
    per_minute: u32,
    counts: HashMap<PeerId, (Instant, u32)>,
}

impl SenderPace {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            counts: HashMap::new(),
        }
    }

    fn allow(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        if self.counts.len() >= MAX_PACED_SENDERS {
            self.counts
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
            if self.counts.len() >= MAX_PACED_SENDERS {
                return false;
            }
        }
        let (start, count) = self.counts.entry(peer).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_user_names_or_peer_ids() {
        assert_eq!(chat_name(" bob ").unwrap(), "bob");
        assert!(chat_name("").is_err());
        assert!(chat_name("a b").is_err());
        assert!(chat_name("../x").is_err());
        assert!(chat_name(&"x".repeat(200)).is_err());
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        assert_eq!(chat_name(&peer.to_string()).unwrap(), peer.to_string());
    }

    #[test]
    fn one_sender_is_slowed_down_others_are_not() {
        let mut pace = SenderPace::new(LETTERS_PER_MINUTE);
        let flooder = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let other = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let allowed = (0..LETTERS_PER_MINUTE + 50)
            .filter(|_| pace.allow(flooder))
            .count();
        assert_eq!(allowed as u32, LETTERS_PER_MINUTE);
        assert!(pace.allow(other));
    }
}
