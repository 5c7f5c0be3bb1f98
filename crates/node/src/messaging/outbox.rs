//! The task that delivers sealed copies: directly to the recipient peer
//! when it can be reached, else into the index's mailbox or, without one,
//! to the DHT nodes closest to the recipient (once), retrying
//! with a growing pause until the copy is delivered, refused or expired.
//!
//! It wakes when a copy is queued, when a copy falls due, and when a peer
//! it holds copies for connects. A refusal that may pass ("busy", "slow
//! down") is retried; a final one ("blocked", "forged") ends the copy.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::future::join_all;
use libp2p::PeerId;
use peershare_core::wire::message::{MessageRequest, MessageResponse};

use super::history::OutboxEntry;
use super::Inner;
use crate::index_link::client::OutgoingLetter;
use crate::views::{EventKind, MessageState};
use crate::{now_ms, NodeError};

/// Copies attempted at once.
const BATCH: u32 = 16;
/// How long one delivery attempt may take (finding the peer included).
const DELIVER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an unknown recipient is looked for in the DHT.
const FIND_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause after a first failed attempt; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(10);
const MAX_PAUSE: Duration = Duration::from_secs(600);
/// The longest the task sleeps without looking at the outbox.
const IDLE: Duration = Duration::from_secs(60);

/// Runs the outbox until the daemon stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut events = inner.bus.subscribe();
    loop {
        let now = now_ms();
        let (due, next) = match inner.history.due(now, BATCH).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("cannot read the outbox: {e}");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        if !due.is_empty() {
            join_all(due.iter().map(|entry| deliver(&inner, entry))).await;
            continue;
        }
        let pause = next
            .map(|t| Duration::from_millis((t - now).max(0) as u64))
            .unwrap_or(IDLE)
            .min(IDLE);
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            event = events.next() => match event {
                Some(event) => {
                    if let EventKind::PeerConnection { peer_id, connected: true, .. } = event.kind {
                        if let Err(e) = inner.history.retry_now(&peer_id).await {
                            tracing::warn!("cannot update the outbox: {e}");
                        }
                    }
                }
                None => {
                    tokio::time::sleep(pause).await;
                    events = inner.bus.subscribe();
                }
            },
        }
    }
}

async fn deliver(inner: &Inner, entry: &OutboxEntry) {
    if let Err(e) = attempt(inner, entry).await {
        tracing::warn!(to = entry.to_peer, "a letter could not be handled: {e}");
        // Not retried at once: a broken row must not spin the loop.
        let later = now_ms() + MAX_PAUSE.as_millis() as i64;
        let _ = inner.history.retry_later(entry, later, entry.mailed).await;
    }
}

async fn attempt(inner: &Inner, entry: &OutboxEntry) -> Result<(), NodeError> {
    let now = now_ms();
    let Ok(peer) = entry.to_peer.parse::<PeerId>() else {
        return inner.history.done(&entry.letter_id, &entry.to_peer).await;
    };
    if entry.expires_at <= now {
        inner.history.done(&entry.letter_id, &entry.to_peer).await?;
        let note = "expired: no peer of the recipient collected it in time";
        return end_if_last(inner, &entry.letter_id, MessageState::Expired, note).await;
    }
    let answer = tokio::time::timeout(DELIVER_TIMEOUT, async {
        // An unknown peer is looked up in the DHT, briefly: the mailbox is the fallback.
        let addrs = tokio::time::timeout(FIND_TIMEOUT, inner.host.find_peer(peer))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let request = MessageRequest::Deliver {
            envelope: entry.envelope.clone(),
        };
        inner.host.message(peer, addrs, request).await
    })
    .await;
    match answer {
        Ok(Ok(MessageResponse::Accepted { .. })) => {
            inner.history.done(&entry.letter_id, &entry.to_peer).await?;
            advance(inner, &entry.letter_id, MessageState::Delivered, None).await
        }
        Ok(Ok(MessageResponse::Refused {
            reason,
            retry: false,
        })) => {
            tracing::info!(to = %peer, "a letter was refused: {reason}");
            inner.history.done(&entry.letter_id, &entry.to_peer).await?;
            let note = format!("refused by {peer}: {reason}");
            end_if_last(inner, &entry.letter_id, MessageState::Failed, &note).await
        }
        other => {
            let why = match other {
                Ok(Ok(MessageResponse::Refused { reason, .. })) => reason,
                Ok(Ok(_)) => "an answer that is not a receipt".into(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer in time".into(),
            };
            tracing::debug!(to = %peer, "a letter was not delivered directly: {why}");
            let mailed = entry.mailed
                || leave_in_mailbox(inner, entry).await
                || super::dht_mail::leave_with_keepers(inner, entry).await;
            if mailed && !entry.mailed {
                advance(inner, &entry.letter_id, MessageState::Stored, None).await?;
            }
            let pause = FIRST_PAUSE
                .saturating_mul(1 << entry.attempts.min(10))
                .min(MAX_PAUSE);
            let next = now_ms() + pause.as_millis() as i64;
            inner.history.retry_later(entry, next, mailed).await
        }
    }
}

/// Leaves a copy in the index's mailbox; false when there is no index, or it would not take it.
async fn leave_in_mailbox(inner: &Inner, entry: &OutboxEntry) -> bool {
    let Some(link) = &inner.index else {
        return false;
    };
    let Ok(token) = link.token() else {
        return false;
    };
    let letter = OutgoingLetter {
        to_peer: entry.to_peer.clone(),
        envelope: base64::engine::general_purpose::STANDARD.encode(&entry.envelope),
    };
    match link.client().send_mail(&token, &[letter]).await {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(to = entry.to_peer, "the index did not take a letter: {e}");
            false
        }
    }
}

async fn advance(
    inner: &Inner,
    letter_id: &str,
    state: MessageState,
    note: Option<&str>,
) -> Result<(), NodeError> {
    if let Some(message) = inner.history.advance(letter_id, state, note).await? {
        inner.announce_change(message);
    }
    Ok(())
}

/// Ends a message as `state` once no copy of it is left to deliver.
async fn end_if_last(
    inner: &Inner,
    letter_id: &str,
    state: MessageState,
    note: &str,
) -> Result<(), NodeError> {
    if inner.history.copies_left(letter_id).await? == 0 {
        advance(inner, letter_id, state, Some(note)).await?;
    }
    Ok(())
}
