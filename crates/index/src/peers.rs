//! Peers joining, staying online and leaving: a join challenge (a server
//! nonce), the join itself (which proves the caller holds the peer id's key
//! by a signature over `"peershare-join:" + nonce` and replaces the peer's
//! whole file list and its messaging key card), heartbeats, and leave.
//!
//! A peer is online while it has not left and its last heartbeat is younger
//! than the configured timeout; that is decided at query time from the
//! stored times. This module never lets a user touch another user's peer and
//! never accepts a peer id without a valid signature by its key. A messaging
//! key card is stored as the text it is given, never interpreted.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use libp2p_identity::PublicKey;
use multiaddr::Multiaddr;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{audited_write, Action, AuditEvent};
use crate::auth::AuthUser;
use crate::cluster::Change;
use crate::error::{refused, PeerRefusal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ClientAddr};
use crate::files::{self, FileInput};
use crate::gate::ListSlot;
use crate::search::{self, catalogue::OnlinePeer};
use crate::state::AppState;
use crate::store::{now_ms, JoiningPeer};
use crate::validate;

/// The prefix of the message a joining peer signs, before the nonce.
pub const JOIN_MESSAGE_PREFIX: &str = "peershare-join:";
/// How long a join challenge stays valid, in milliseconds.
pub const CHALLENGE_LIFETIME_MS: i64 = 5 * 60 * 1000;
/// Most addresses one peer may announce.
pub const MAX_ADDRS: usize = 32;
/// Longest address, in bytes.
pub const MAX_ADDR_BYTES: usize = 512;
/// Longest messaging key card, in characters.
pub const MAX_MESSAGE_KEY_CHARS: usize = 1024;

/// Ask for a join challenge for a peer id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeRequest {
    /// The libp2p peer id that will join, e.g. `12D3KooW…`.
    pub peer_id: String,
}

/// A join challenge: sign `message` with the peer's key and join within five minutes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// A random nonce (64 hex digits).
    pub nonce: String,
    /// The exact bytes to sign (ASCII): `"peershare-join:" + nonce`.
    pub message: String,
    /// When the challenge stops working, in milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// Join: a peer's identity proof, addresses and whole file list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinRequest {
    /// The libp2p peer id.
    pub peer_id: String,
    /// Multiaddrs where other peers reach this one.
    pub addrs: Vec<String>,
    /// The peer's public key, protobuf-encoded (libp2p), as hex or base64.
    pub public_key: String,
    /// Signature over `"peershare-join:" + nonce` by that key, as hex or base64.
    pub signature: String,
    /// Every file the peer shares; replaces any earlier list.
    pub files: Vec<FileInput>,
    /// The peer's signed messaging key card, base64 (at most 1024 characters),
    /// opaque to the index; replaces any earlier card (absent: none).
    #[serde(default)]
    pub message_key: Option<String>,
}

/// A peer that joined.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Joined {
    /// The peer id.
    pub peer_id: String,
    /// Files now listed for it.
    pub files: usize,
    /// Send a heartbeat this often, in seconds.
    pub heartbeat_secs: u64,
    /// Without a heartbeat for this long the peer counts as offline, in seconds.
    pub peer_timeout_secs: u64,
    /// A few online peers (full addresses ending in `/p2p/<id>`) to join the DHT through.
    pub bootstrap: Vec<String>,
}

/// Most peers handed to a joining peer for the DHT.
pub const BOOTSTRAP_PEERS: usize = 5;

/// Full addresses of a few online peers other than `peer_id`, from the
/// catalogue (the store keeps no index on when peers were last seen:
/// every heartbeat would update it). On a blocking thread: the
/// catalogue's lock waits for any join being applied.
async fn bootstrap_addrs(state: &AppState, peer_id: &str) -> Result<Vec<String>, ApiError> {
    let catalogue = state.catalogue().clone();
    let except = peer_id.to_string();
    let recent =
        tokio::task::spawn_blocking(move || catalogue.recent_peers(BOOTSTRAP_PEERS, &except))
            .await
            .map_err(|e| ApiError::Internal(format!("bootstrap task failed: {e}")))?;
    Ok(recent
        .into_iter()
        .flat_map(|(id, addrs)| addrs.into_iter().map(move |a| format!("{a}/p2p/{id}")))
        .collect())
}

/// Decodes bytes sent as hex or as base64 (standard or URL-safe, padded or not).
pub fn decode_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(bytes) = hex::decode(text) {
            return Some(bytes);
        }
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Checks a messaging key card: 1–1024 characters of base64 (standard or
/// URL-safe, padded or not); the index never looks further inside.
fn check_message_key(key: &str) -> Result<&str, ApiError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let chars = key.chars().count();
    if chars > MAX_MESSAGE_KEY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_message_key",
            format!(
                "message_key has {chars} characters; a messaging key card may have at most {MAX_MESSAGE_KEY_CHARS} (send the signed card as base64, or leave message_key out)"
            ),
        ));
    }
    let decodes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .any(|engine| engine.decode(key).is_ok());
    if key.is_empty() || !decodes {
        return Err(ApiError::bad_request(
            "invalid_message_key",
            "message_key must be the peer's signed messaging key card as base64 text; leave message_key out to join without one",
        ));
    }
    Ok(key)
}

fn check_addrs(addrs: &[String]) -> Result<String, ApiError> {
    if addrs.len() > MAX_ADDRS {
        return Err(ApiError::bad_request(
            "invalid_addr",
            format!(
                "{} addresses is too many; send at most {MAX_ADDRS}",
                addrs.len()
            ),
        ));
    }
    let mut canonical = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let parsed = (addr.len() <= MAX_ADDR_BYTES)
            .then(|| Multiaddr::from_str(addr).ok())
            .flatten()
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_addr",
                    format!(
                        "{:?} is not a multiaddr (like /ip4/192.0.2.1/tcp/1100)",
                        crate::validate::truncated(addr)
                    ),
                )
            })?;
        canonical.push(parsed.to_string());
    }
    serde_json::to_string(&canonical).map_err(|e| ApiError::Internal(format!("addrs json: {e}")))
}

/// Get a nonce to sign before joining.
#[utoipa::path(post, path = "/peers/challenge", tag = "peers", request_body = ChallengeRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Sign `message` with the peer key and join", body = Challenge),
        (status = 400, description = "Not a peer id", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Peer id belongs to another user", body = ErrorBody),
    ))]
pub async fn challenge(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiJson(body): ApiJson<ChallengeRequest>,
) -> Result<(StatusCode, Json<Challenge>), ApiError> {
    let event = AuditEvent::new(Action::Challenge, client)
        .user(&user.name)
        .peer(&crate::validate::truncated(&body.peer_id));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let peer_id = validate::peer_id(&body.peer_id)?.to_string();
        if state
            .store()
            .peer_owner(&peer_id)
            .await?
            .is_some_and(|owner| owner != user.id)
        {
            return Err(PeerRefusal::NotYours.for_peer(&peer_id));
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let expires_at = now_ms() + CHALLENGE_LIFETIME_MS;
        state
            .store()
            .put_challenge(user.id, &peer_id, &nonce, expires_at, &audit)
            .await?;
        Ok((
            StatusCode::CREATED,
            Json(Challenge {
                message: format!("{JOIN_MESSAGE_PREFIX}{nonce}"),
                nonce,
                expires_at,
            }),
        ))
    })
    .await
}

/// Join (or re-join) a peer with its addresses and whole file list.
#[utoipa::path(post, path = "/peers", tag = "peers", request_body = JoinRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Joined; send heartbeats", body = Joined),
        (status = 400, description = "Bad peer id, key, address, file or message key", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Key or signature does not match, no open challenge, or the peer id belongs to another user", body = ErrorBody),
        (status = 413, description = "File list too large", body = ErrorBody),
        (status = 422, description = "Missing fields or wrong types", body = ErrorBody),
        (status = 429, description = "The user would list more files than one user may (listing_quota)", body = ErrorBody),
        (status = 503, description = "Busy with other joins and publishes; retry after Retry-After seconds", body = ErrorBody),
    ))]
pub async fn join(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    _slot: ListSlot,
    ApiJson(body): ApiJson<JoinRequest>,
) -> Result<Json<Joined>, ApiError> {
    let event = AuditEvent::new(Action::Join, client)
        .user(&user.name)
        .peer(&crate::validate::truncated(&body.peer_id))
        .detail(format!(
            "{} files{}",
            body.files.len(),
            if body.message_key.is_some() {
                ", message key"
            } else {
                ""
            }
        ));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let peer = validate::peer_id(&body.peer_id)?;
        let peer_id = peer.to_string();
        let addrs_json = check_addrs(&body.addrs)?;
        let files = files::check_files(&body.files)?;
        let message_key = body
            .message_key
            .as_deref()
            .map(check_message_key)
            .transpose()?;
        let key_bytes = decode_bytes(&body.public_key).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_public_key",
                "public_key must be the protobuf-encoded libp2p public key as hex or base64",
            )
        })?;
        let key = PublicKey::try_decode_protobuf(&key_bytes).map_err(|_| {
            ApiError::bad_request(
                "invalid_public_key",
                "public_key is not a protobuf-encoded libp2p public key (use PublicKey::encode_protobuf)",
            )
        })?;
        if key.to_peer_id() != peer {
            return Err(ApiError::Forbidden(format!(
                "public_key belongs to peer {}, not {peer_id}; send the key of the peer that joins",
                key.to_peer_id()
            )));
        }
        let signature = decode_bytes(&body.signature).ok_or_else(|| {
            ApiError::bad_request("invalid_signature", "signature must be hex or base64")
        })?;
        if state
            .store()
            .peer_owner(&peer_id)
            .await?
            .is_some_and(|owner| owner != user.id)
        {
            return Err(PeerRefusal::NotYours.for_peer(&peer_id));
        }
        let nonce = state
            .store()
            .take_challenge(user.id, &peer_id, now_ms())
            .await?
            .ok_or_else(|| {
                ApiError::Forbidden(format!(
                    "no open join challenge for {peer_id}; get one with POST /api/v1/peers/challenge (they expire after 5 minutes and work once)"
                ))
            })?;
        let message = format!("{JOIN_MESSAGE_PREFIX}{nonce}");
        if !key.verify(message.as_bytes(), &signature) {
            return Err(ApiError::Forbidden(
                "the signature does not verify with this peer's key; sign the challenge's message with the peer key and request a new challenge".into(),
            ));
        }
        search::room_for_files(&state, &user.name, &peer_id, files.len(), true)?;
        let now = now_ms();
        state
            .store()
            .join_peer(
                user.id,
                &JoiningPeer {
                    peer_id: &peer_id,
                    addrs_json: &addrs_json,
                    message_key,
                },
                &files,
                now,
                &audit,
                &state.cluster().notice(Change::Peer(&peer_id)),
            )
            .await?
            .map_err(refused(&peer_id))?;
        let online = OnlinePeer {
            peer_id: peer_id.clone(),
            user: user.name.clone(),
            addrs: serde_json::from_str(&addrs_json).unwrap_or_default(),
            last_seen: now,
        };
        search::searchable(state.catalogue().join(online, &files)).await?;
        let bootstrap = bootstrap_addrs(&state, &peer_id).await?;
        Ok(Json(Joined {
            bootstrap,
            peer_id,
            files: files.len(),
            heartbeat_secs: state.config().heartbeat.as_secs().max(1),
            peer_timeout_secs: state.config().peer_timeout.as_secs().max(1),
        }))
    })
    .await
}

/// Keep one of your peers online.
#[utoipa::path(post, path = "/peers/{peer_id}/heartbeat", tag = "peers",
    params(("peer_id" = String, Path, description = "The peer's libp2p id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Seen now"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not your peer", body = ErrorBody),
        (status = 404, description = "Never joined", body = ErrorBody),
        (status = 409, description = "The peer left; join again", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(peer_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    // Heartbeats are frequent and change nothing but a time: not audited.
    let peer_id = validate::peer_id(&peer_id)?.to_string();
    let (hit, now) = state
        .heartbeats()
        .beat(user.id, &peer_id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !hit {
        // A peer that left or changed hands between the two statements.
        let refusal = state.store().heartbeat_refusal(user.id, &peer_id).await?;
        return Err(refused(&peer_id)(refusal.unwrap_or(PeerRefusal::Left)));
    }
    if !state.catalogue().heartbeat(&peer_id, now) {
        // It had timed out (or joined through another index process): back
        // in search with the files the store has.
        crate::cluster::reload_peer(&state, &peer_id).await?;
        state.cluster().announce(Change::Peer(&peer_id)).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Take one of your peers offline now (its file list is kept for browse `all=true`).
#[utoipa::path(delete, path = "/peers/{peer_id}", tag = "peers",
    params(("peer_id" = String, Path, description = "The peer's libp2p id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not your peer", body = ErrorBody),
        (status = 404, description = "Never joined", body = ErrorBody),
    ))]
pub async fn leave(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiPath(peer_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let event = AuditEvent::new(Action::Leave, client)
        .user(&user.name)
        .peer(&crate::validate::truncated(&peer_id));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let peer_id = validate::peer_id(&peer_id)?.to_string();
        state
            .store()
            .leave(
                user.id,
                &peer_id,
                now_ms(),
                &audit,
                &state.cluster().notice(Change::Peer(&peer_id)),
            )
            .await?
            .map_err(refused(&peer_id))?;
        state.catalogue().remove_peer(&peer_id);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
