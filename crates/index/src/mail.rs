//! Mailboxes for end-to-end-encrypted messages: a user leaves sealed letters
//! for recipient peers (`POST /mail`), the owner of a recipient peer collects
//! them (`GET /mail`) and acknowledges them (`POST /mail/ack`), which deletes
//! them; letters nobody collects are deleted after `mail_ttl`. Mailboxes are
//! bounded per recipient peer and per sender and recipient peer.
//!
//! The index never sees plaintext: an envelope is opaque bytes sealed by the
//! sending peer for the recipient's messaging key, stored and handed out
//! exactly as given. This module never decodes, logs or audits an envelope's
//! content, never hands a letter to anyone but the owner of its recipient
//! peer, and never stores part of a batch.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{audited_write, Action, AuditEvent};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, ClientAddr, MAIL_BODY_LIMIT};
use crate::state::AppState;
use crate::store::{ms, now_ms, LetterRow, MailLimits, NewLetter, User};
use crate::validate;

/// Most letters in one send.
pub const MAX_LETTERS_PER_SEND: usize = 16;
/// Largest envelope, in bytes (decoded).
pub const MAX_ENVELOPE_BYTES: usize = 96 * 1024;
/// Most ids in one acknowledgement.
pub const MAX_ACK_IDS: usize = 1000;
/// Letters per mailbox read unless asked otherwise.
pub const DEFAULT_FETCH: u32 = 100;
/// Most letters per mailbox read.
pub const MAX_FETCH: u32 = 200;

// A full send (every envelope at its largest, as base64) fits the body limit.
const _: () = assert!(
    MAX_LETTERS_PER_SEND * MAX_ENVELOPE_BYTES.div_ceil(3) * 4 + 32 * 1024 <= MAIL_BODY_LIMIT
);

/// One sealed letter to leave for a peer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutgoingLetter {
    /// The recipient peer's libp2p id; it must have joined this index at least once.
    pub to_peer: String,
    /// The sealed envelope, standard base64 (1 to 98304 bytes decoded), opaque to the index.
    pub envelope: String,
}

/// Letters to leave in mailboxes: all are stored, or none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendMail {
    /// 1 to 16 letters.
    #[schema(min_items = 1, max_items = 16)]
    pub letters: Vec<OutgoingLetter>,
}

/// Letters stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MailSent {
    /// The new letters' ids, in the order sent.
    pub stored: Vec<i64>,
    /// When they are deleted unless collected, in milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// Which mailbox to read, and from where.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailboxParams {
    /// One of your peers (joined by your account, online or not).
    pub peer_id: String,
    /// Only letters with a larger id (default 0: from the start).
    pub after: Option<i64>,
    /// Letters to return (1–200, default 100).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A letter waiting in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoredLetter {
    /// Sequence number; page with `after` and acknowledge with it.
    pub id: i64,
    /// The user who sent it (the sealed envelope says who really wrote it).
    pub from_user: String,
    /// The sealed envelope exactly as sent, standard base64.
    pub envelope: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_at: i64,
    /// When it is deleted unless acknowledged first, in milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// A page of one peer's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Mailbox {
    /// Unexpired letters, by id.
    pub letters: Vec<StoredLetter>,
}

/// Letters collected, to delete.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AckMail {
    /// The recipient peer (one of yours).
    pub peer_id: String,
    /// Ids of its letters (at most 1000); ids of other mailboxes are ignored.
    #[schema(max_items = 1000)]
    pub ids: Vec<i64>,
}

/// The result of an acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MailAcked {
    /// Letters deleted.
    pub deleted: u64,
}

/// Checks a batch of letters and decodes their envelopes.
fn check_letters(letters: &[OutgoingLetter]) -> Result<Vec<NewLetter>, ApiError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    if letters.is_empty() || letters.len() > MAX_LETTERS_PER_SEND {
        return Err(ApiError::bad_request(
            "invalid_letters",
            format!(
                "{} letters in one request; send 1 to {MAX_LETTERS_PER_SEND} (split larger batches)",
                letters.len()
            ),
        ));
    }
    letters
        .iter()
        .enumerate()
        .map(|(i, letter)| {
            let n = i + 1;
            let to_peer = validate::peer_id(&letter.to_peer)?.to_string();
            let envelope = STANDARD
                .decode(&letter.envelope)
                .or_else(|_| STANDARD_NO_PAD.decode(&letter.envelope))
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_envelope",
                        format!("the envelope of letter {n} is not standard base64; send the sealed bytes base64-encoded; nothing was sent"),
                    )
                })?;
            if envelope.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_envelope",
                    format!("the envelope of letter {n} is empty; send the sealed message; nothing was sent"),
                ));
            }
            if envelope.len() > MAX_ENVELOPE_BYTES {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the envelope of letter {n} has {} bytes; an envelope may have at most {MAX_ENVELOPE_BYTES} (96 KiB): send large content as a file instead; nothing was sent",
                    envelope.len()
                )));
            }
            Ok(NewLetter { to_peer, envelope })
        })
        .collect()
}

/// The page size of a mailbox read.
fn fetch_limit(limit: Option<u32>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(i64::from(DEFAULT_FETCH)),
        Some(n @ 1..=MAX_FETCH) => Ok(i64::from(n)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_FETCH}; page with after=<last id> for more"),
        )),
    }
}

/// The answer when `peer_id` is not one of the caller's peers.
fn not_your_peer(peer_id: &str) -> ApiError {
    ApiError::Denied {
        code: "not_your_peer",
        message: format!(
            "peer {peer_id} is not one of your peers; a mailbox is read and acknowledged only by the account that joined its peer (log in as that user, or use your own peer's id)"
        ),
    }
}

fn stored_letter(row: LetterRow) -> StoredLetter {
    StoredLetter {
        id: row.id,
        from_user: row.from_user,
        envelope: base64::engine::general_purpose::STANDARD.encode(&row.envelope),
        stored_at: row.stored_at,
        expires_at: row.expires_at,
    }
}

/// Leave sealed letters for peers (all or none).
#[utoipa::path(post, path = "/mail", tag = "mail", request_body = SendMail,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored; the ids are in the order sent", body = MailSent),
        (status = 400, description = "No letters or more than 16, a bad peer id, or an envelope that is not base64 or is empty", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "`unknown_recipient`: a recipient peer never joined this index", body = ErrorBody),
        (status = 413, description = "An envelope over 96 KiB, or the body over its limit", body = ErrorBody),
        (status = 422, description = "Missing fields or wrong types", body = ErrorBody),
        (status = 429, description = "`mailbox_full`: a recipient's mailbox, or your share of it, is full until the recipient collects letters", body = ErrorBody),
    ))]
pub async fn send(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiJson(body): ApiJson<SendMail>,
) -> Result<(StatusCode, Json<MailSent>), ApiError> {
    let recipients: BTreeSet<&str> = body.letters.iter().map(|l| l.to_peer.as_str()).collect();
    let mut event = AuditEvent::new(Action::MailSend, client)
        .user(&user.name)
        .detail(format!(
            "{} letters to {} peers",
            body.letters.len(),
            recipients.len()
        ));
    if let [only] = recipients.iter().collect::<Vec<_>>().as_slice() {
        event = event.peer(&validate::truncated(only));
    }
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let letters = check_letters(&body.letters)?;
        let config = state.config();
        let limits = MailLimits {
            per_recipient: config.mailbox_per_recipient,
            per_sender: config.mailbox_per_sender,
        };
        let sender = User {
            id: user.id,
            name: user.name.clone(),
        };
        let now = now_ms();
        let expires_at = now.saturating_add(ms(config.mail_ttl));
        let stored = state
            .store()
            .send_letters(&sender, &letters, limits, now, expires_at, &audit)
            .await?
            .map_err(ApiError::from)?;
        Ok((StatusCode::CREATED, Json(MailSent { stored, expires_at })))
    })
    .await
}

/// Read the letters waiting for one of your peers.
#[utoipa::path(get, path = "/mail", tag = "mail", params(MailboxParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unexpired letters after `after`, by id", body = Mailbox),
        (status = 400, description = "Bad peer id or limit", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`not_your_peer`: the peer was not joined by your account", body = ErrorBody),
    ))]
pub async fn fetch(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiQuery(params): ApiQuery<MailboxParams>,
) -> Result<Json<Mailbox>, ApiError> {
    let event = AuditEvent::new(Action::MailFetch, client)
        .user(&user.name)
        .peer(&validate::truncated(&params.peer_id));
    let result = async {
        let peer_id = validate::peer_id(&params.peer_id)?.to_string();
        let limit = fetch_limit(params.limit)?;
        let rows = state
            .store()
            .letters(
                user.id,
                &peer_id,
                params.after.unwrap_or(0),
                now_ms(),
                limit,
            )
            .await?
            .map_err(|_| not_your_peer(&peer_id))?;
        Ok(Json(Mailbox {
            letters: rows.into_iter().map(stored_letter).collect(),
        }))
    }
    .await;
    let event = match &result {
        Ok(mailbox) => event.detail(format!("{} letters", mailbox.letters.len())),
        Err(_) => event,
    };
    state.audit().record_later(event.outcome(&result)).await;
    result
}

/// Delete letters of one of your peers once they are collected.
#[utoipa::path(post, path = "/mail/ack", tag = "mail", request_body = AckMail,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Those of the ids in this peer's mailbox are deleted", body = MailAcked),
        (status = 400, description = "Bad peer id or more than 1000 ids", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`not_your_peer`: the peer was not joined by your account", body = ErrorBody),
        (status = 422, description = "Missing fields or wrong types", body = ErrorBody),
    ))]
pub async fn ack(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiJson(body): ApiJson<AckMail>,
) -> Result<Json<MailAcked>, ApiError> {
    let event = AuditEvent::new(Action::MailAck, client)
        .user(&user.name)
        .peer(&validate::truncated(&body.peer_id))
        .detail(format!("{} ids", body.ids.len()));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let peer_id = validate::peer_id(&body.peer_id)?.to_string();
        if body.ids.len() > MAX_ACK_IDS {
            return Err(ApiError::bad_request(
                "invalid_ids",
                format!(
                    "{} ids in one acknowledgement; send at most {MAX_ACK_IDS} and the rest in another request",
                    body.ids.len()
                ),
            ));
        }
        let deleted = state
            .store()
            .ack_letters(user.id, &peer_id, &body.ids, &audit)
            .await?
            .map_err(|_| not_your_peer(&peer_id))?;
        Ok(Json(MailAcked { deleted }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(envelope: &str) -> OutgoingLetter {
        OutgoingLetter {
            to_peer: libp2p_identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id()
                .to_string(),
            envelope: envelope.into(),
        }
    }

    #[test]
    fn letters_are_checked_and_decoded() {
        let ok = check_letters(&[letter("aGVsbG8="), letter("aGVsbG8")]).unwrap();
        assert_eq!(ok[0].envelope, b"hello");
        assert_eq!(ok[1].envelope, b"hello");
        assert_eq!(check_letters(&[]).unwrap_err().code(), "invalid_letters");
        let many = vec![letter("aGVsbG8="); MAX_LETTERS_PER_SEND + 1];
        assert_eq!(check_letters(&many).unwrap_err().code(), "invalid_letters");
        assert_eq!(
            check_letters(&[letter("")]).unwrap_err().code(),
            "invalid_envelope"
        );
        assert_eq!(
            check_letters(&[letter("not base64!")]).unwrap_err().code(),
            "invalid_envelope"
        );
        let big =
            base64::engine::general_purpose::STANDARD.encode(vec![7u8; MAX_ENVELOPE_BYTES + 1]);
        assert_eq!(
            check_letters(&[letter(&big)]).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let mut bad_peer = letter("aGVsbG8=");
        bad_peer.to_peer = "nobody".into();
        assert_eq!(
            check_letters(&[bad_peer]).unwrap_err().code(),
            "invalid_peer_id"
        );
    }
}
