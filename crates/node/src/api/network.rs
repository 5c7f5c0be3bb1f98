//! Handlers for the network: browsing a peer, the merged search, known
//! peers, and the index (account, users, a user's files, the audit log).
//! Listings the index makes are passed through as the index sends them
//! (see its own OpenAPI document).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::body::ApiJson;
use super::ApiState;
use crate::discovery::search::Merged;
use crate::index_link::client::SearchParams;
use crate::index_link::IndexLink;
use crate::views::{ApiError, BrowseView, FileEntry, PeersView, SessionView, UserFilesView};
use crate::NodeError;

/// Which peer to browse.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct BrowseQuery {
    /// A full peer address (…/p2p/<id>) or a peer id.
    peer: String,
}

/// The files one peer shares, asked of that peer.
#[utoipa::path(get, path = "/browse", tag = "network", params(BrowseQuery),
    responses(
        (status = 200, body = BrowseView),
        (status = 502, description = "The peer could not be reached", body = ApiError),
    ))]
pub(super) async fn browse(
    State(s): State<ApiState>,
    Query(q): Query<BrowseQuery>,
) -> Result<Json<BrowseView>, NodeError> {
    let host = &s.node.host;
    let (peer, dial) = crate::discovery::people::peer_to_browse(host, &q.peer).await?;
    let listing =
        crate::discovery::browse::browse_all(host, peer, dial, &Default::default()).await?;
    Ok(Json(BrowseView {
        peer: peer.to_string(),
        files: listing.files.into_iter().map(FileEntry::from).collect(),
        total: listing.total,
        truncated: listing.truncated,
    }))
}

/// Files of online peers by name, from the index and the DHT, one row per file id.
#[utoipa::path(get, path = "/search", tag = "network", params(SearchParams),
    responses((status = 200, body = Merged)))]
pub(super) async fn search(
    State(s): State<ApiState>,
    Query(params): Query<SearchParams>,
) -> Json<Merged> {
    Json(crate::discovery::search::search(s.node.reach(), &params).await)
}

/// Known peers: how each was found, connected or not.
#[utoipa::path(get, path = "/peers", tag = "network",
    responses((status = 200, body = PeersView)))]
pub(super) async fn peers(State(s): State<ApiState>) -> Json<PeersView> {
    Json(PeersView {
        peers: s.node.host.peers(),
    })
}

fn link(s: &ApiState) -> Result<&IndexLink, NodeError> {
    s.node.index.as_ref().ok_or(NodeError::NoIndex)
}

/// A user name and password.
#[derive(Deserialize, ToSchema)]
pub(super) struct Credentials {
    /// The user name.
    name: String,
    /// The password.
    password: String,
}

/// Creates an account on the index and logs in with it; the daemon joins.
#[utoipa::path(post, path = "/index/register", tag = "network", request_body = Credentials,
    responses(
        (status = 201, body = SessionView),
        (status = 409, description = "The name is taken, or there is no index", body = ApiError),
    ))]
pub(super) async fn register(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<SessionView>), NodeError> {
    let link = link(&s)?;
    let session = link.register(&body.name, &body.password).await?;
    let view = SessionView {
        name: session.name,
        expires_at: session.expires_at,
        index: link.status(),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Logs in to the index; the daemon keeps the session and joins.
#[utoipa::path(post, path = "/index/login", tag = "network", request_body = Credentials,
    responses(
        (status = 200, body = SessionView),
        (status = 401, description = "Wrong name or password", body = ApiError),
    ))]
pub(super) async fn login(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Json<SessionView>, NodeError> {
    let link = link(&s)?;
    let session = link.login(&body.name, &body.password).await?;
    Ok(Json(SessionView {
        name: session.name,
        expires_at: session.expires_at,
        index: link.status(),
    }))
}

/// Leaves the index and ends the session.
#[utoipa::path(post, path = "/index/logout", tag = "network",
    responses((status = 204, description = "Logged out"), (status = 401, body = ApiError)))]
pub(super) async fn logout(State(s): State<ApiState>) -> Result<StatusCode, NodeError> {
    link(&s)?.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the account with its peers and files on the index.
#[utoipa::path(post, path = "/index/unregister", tag = "network",
    responses((status = 204, description = "Deleted"), (status = 401, body = ApiError)))]
pub(super) async fn unregister(State(s): State<ApiState>) -> Result<StatusCode, NodeError> {
    link(&s)?.unregister().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether to list offline users too.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UsersQuery {
    /// `true` for every user, online or not.
    #[serde(default)]
    all: bool,
}

/// Users on the index (online ones unless `all`), as the index lists them.
#[utoipa::path(get, path = "/index/users", tag = "network", params(UsersQuery),
    responses((status = 200, description = "The index's users list", body = Object)))]
pub(super) async fn index_users(
    State(s): State<ApiState>,
    Query(q): Query<UsersQuery>,
) -> Result<Json<Value>, NodeError> {
    let link = link(&s)?;
    Ok(Json(link.client().users(&link.token()?, q.all).await?))
}

/// One user's files, as the index lists them (query passed through: `all`, `offset`, `limit`).
#[utoipa::path(get, path = "/index/users/{name}/files", tag = "network",
    params(("name" = String, Path, description = "The user name")),
    responses((status = 200, description = "The index's listing", body = Object), (status = 404, body = ApiError)))]
pub(super) async fn index_user_files(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, NodeError> {
    let link = link(&s)?;
    let token = link.token()?;
    Ok(Json(link.client().user_files(&token, &name, &query).await?))
}

/// One user's files through the index, or through the DHT when the index cannot be asked.
#[utoipa::path(get, path = "/users/{name}/files", tag = "network",
    params(("name" = String, Path, description = "The user name")),
    responses((status = 200, body = UserFilesView), (status = 404, body = ApiError)))]
pub(super) async fn user_files(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<UserFilesView>, NodeError> {
    Ok(Json(
        crate::discovery::people::user_files(s.node.reach(), &name, &query).await?,
    ))
}

/// A page of the index's audit log (admins only; query passed through: `limit`, `offset`).
#[utoipa::path(get, path = "/index/audit", tag = "network",
    responses((status = 200, description = "The index's audit page", body = Object), (status = 403, body = ApiError)))]
pub(super) async fn audit(
    State(s): State<ApiState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, NodeError> {
    let link = link(&s)?;
    Ok(Json(link.client().audit(&link.token()?, &query).await?))
}
