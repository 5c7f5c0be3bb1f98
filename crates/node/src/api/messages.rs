//! Handlers for messages and contacts: sending, the chats list, one
//! chat's history (marking it read), and contacts (add, remove, block,
//! trust a changed key).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::ApiJson;
use super::ApiState;
use crate::views::{
    ApiError, ChatView, ContactRequest, ContactView, MessageView, SendMessageRequest, SentMessage,
};
use crate::NodeError;

/// Most messages one chat page holds.
const MAX_PAGE: u32 = 1000;

/// Seals a message for each of the recipient's peers and queues it.
#[utoipa::path(post, path = "/messages", tag = "messages", request_body = SendMessageRequest,
    responses(
        (status = 202, description = "Queued for delivery (or held: see the message's state and note)", body = SentMessage),
        (status = 400, description = "Empty or oversize text, or a bad name", body = ApiError),
        (status = 404, description = "No such user, or no key known for them", body = ApiError),
    ))]
pub(super) async fn send(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<SendMessageRequest>,
) -> Result<(StatusCode, Json<SentMessage>), NodeError> {
    let sent = s.node.messenger.send(&body.to, &body.text).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// Every conversation with its unread count, the most recent first.
#[utoipa::path(get, path = "/chats", tag = "messages",
    responses((status = 200, body = Vec<ChatView>)))]
pub(super) async fn chats(State(s): State<ApiState>) -> Result<Json<Vec<ChatView>>, NodeError> {
    Ok(Json(s.node.messenger.chats().await?))
}

/// How much of a chat to show.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ChatQuery {
    /// The latest this many messages (default 100, at most 1000).
    limit: Option<u32>,
    /// `false` to leave unread messages unread (default: they are marked read, and their senders told).
    mark_read: Option<bool>,
}

/// One conversation, oldest message first.
#[utoipa::path(get, path = "/chats/{name}", tag = "messages", params(
        ("name" = String, Path, description = "A user name or a peer id"), ChatQuery),
    responses((status = 200, body = Vec<MessageView>), (status = 400, body = ApiError)))]
pub(super) async fn chat(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<ChatQuery>,
) -> Result<Json<Vec<MessageView>>, NodeError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let messages = s
        .node
        .messenger
        .chat(&name, limit, q.mark_read.unwrap_or(true))
        .await?;
    Ok(Json(messages))
}

/// Contacts and blocked names, with presence.
#[utoipa::path(get, path = "/contacts", tag = "messages",
    responses((status = 200, body = Vec<ContactView>)))]
pub(super) async fn contacts(
    State(s): State<ApiState>,
) -> Result<Json<Vec<ContactView>>, NodeError> {
    Ok(Json(s.node.messenger.contacts().await?))
}

/// Adds a contact.
#[utoipa::path(post, path = "/contacts", tag = "messages", request_body = ContactRequest,
    responses((status = 204, description = "Added"), (status = 400, body = ApiError)))]
pub(super) async fn add_contact(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<ContactRequest>,
) -> Result<StatusCode, NodeError> {
    s.node.messenger.add_contact(&body.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a contact (its pinned keys stay, so a change is still noticed).
#[utoipa::path(delete, path = "/contacts/{name}", tag = "messages",
    params(("name" = String, Path, description = "A user name or a peer id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ApiError)))]
pub(super) async fn remove_contact(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, NodeError> {
    if s.node.messenger.remove_contact(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(NodeError::NotFound(format!("{name} is not a contact")))
    }
}

/// Block or unblock.
#[derive(Deserialize, ToSchema)]
pub(super) struct BlockRequest {
    /// `true` to block, `false` to unblock.
    blocked: bool,
}

/// Blocks or unblocks a name: its messages and download requests are refused.
#[utoipa::path(post, path = "/contacts/{name}/block", tag = "messages", request_body = BlockRequest,
    params(("name" = String, Path, description = "A user name or a peer id")),
    responses((status = 204, description = "Done"), (status = 400, body = ApiError)))]
pub(super) async fn block(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<BlockRequest>,
) -> Result<StatusCode, NodeError> {
    s.node.messenger.block(&name, body.blocked).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What trusting a name did.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Trusted {
    /// Held messages now sent.
    pub released: usize,
}

/// Trusts the peers a name resolves to now (after its keys changed) and sends what was held.
#[utoipa::path(post, path = "/contacts/{name}/trust", tag = "messages",
    params(("name" = String, Path, description = "A user name or a peer id")),
    responses((status = 200, body = Trusted), (status = 404, body = ApiError)))]
pub(super) async fn trust(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Trusted>, NodeError> {
    let released = s.node.messenger.trust(&name).await?;
    Ok(Json(Trusted { released }))
}
