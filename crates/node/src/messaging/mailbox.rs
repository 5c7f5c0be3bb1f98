//! The task that collects the letters the index kept for this peer while
//! it was away: on every join, then every half minute while joined. Each
//! letter is opened and stored like one handed over directly, then
//! acknowledged so the index deletes it; one that could not be stored for
//! a passing reason stays for the next round.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use peershare_core::wire::message::MessageResponse;

use super::{Inner, Via};
use crate::index_link::IndexLink;
use crate::views::LinkState;
use crate::NodeError;

/// How often a joined peer looks in its mailbox.
const COLLECT_EVERY: Duration = Duration::from_secs(30);
/// Letters fetched per request.
const PAGE: u32 = 32;

/// Collects letters until the daemon stops (at once when there is no index).
pub(super) async fn collect(inner: Arc<Inner>) {
    let Some(link) = inner.index.clone() else {
        return;
    };
    let mut status = link.watch_status();
    loop {
        if status.borrow_and_update().state == LinkState::Joined {
            if let Err(e) = collect_once(&inner, &link).await {
                tracing::info!("cannot collect letters from the index: {e}");
            }
        }
        let wait = tokio::time::sleep(COLLECT_EVERY);
        tokio::pin!(wait);
        // Only a (re)join or the timer starts the next collection.
        loop {
            let joined_before = status.borrow().state == LinkState::Joined;
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !joined_before && status.borrow().state == LinkState::Joined {
                        break;
                    }
                }
                _ = &mut wait => break,
            }
        }
    }
}

async fn collect_once(inner: &Inner, link: &IndexLink) -> Result<(), NodeError> {
    let token = link.token()?;
    let me = inner.keys.peer_id().to_string();
    let mut after = 0;
    loop {
        let letters = link.client().fetch_mail(&token, &me, after, PAGE).await?;
        let mut collected = Vec::with_capacity(letters.len());
        for letter in &letters {
            after = after.max(letter.id);
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&letter.envelope)
            else {
                collected.push(letter.id);
                continue;
            };
            match inner.receive(&bytes, Via::Mailbox).await {
                MessageResponse::Refused { retry: true, .. } => {}
                MessageResponse::Refused { reason, .. } => {
                    tracing::info!(
                        from = letter.from_user,
                        "dropped a letter from the mailbox: {reason}"
                    );
                    collected.push(letter.id);
                }
                _ => collected.push(letter.id),
            }
        }
        if !collected.is_empty() {
            link.client().ack_mail(&token, &me, &collected).await?;
        }
        if letters.len() < PAGE as usize {
            return Ok(());
        }
    }
}
