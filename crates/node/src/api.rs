//! The daemon's local HTTP API (JSON under `/api/v1`), used by the CLI and,
//! later, the web UI. It binds 127.0.0.1 unless told otherwise.
//!
//! Every request needs the bearer token kept in the data folder, and the
//! Host and Origin headers must name a loopback address, so a web page in
//! the person's browser cannot drive the daemon. Handlers only translate
//! HTTP to the engine's calls; they hold no state of their own.

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::daemon::Node;
use crate::index_client::{IndexError, SearchParams};
use crate::index_link::{IndexLink, IndexStatus};
use crate::NodeError;

/// The token file's name inside the data folder.
pub const TOKEN_FILE: &str = "api-token";
/// The file where the daemon writes the address its API listens on.
pub const ADDR_FILE: &str = "api.addr";
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct ApiState {
    node: Node,
    token: String,
}

/// Builds the API router for `node`, guarded by `token`.
pub fn router(node: Node, token: String) -> Router {
    let state = ApiState { node, token };
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/shares", get(shares))
        .route("/api/v1/rescan", post(rescan))
        .route("/api/v1/browse", get(browse))
        .route(
            "/api/v1/downloads",
            get(list_downloads).post(start_download),
        )
        .route("/api/v1/downloads/{id}", get(one_download))
        .route("/api/v1/requests", get(requests))
        .route("/api/v1/requests/{id}/accept", post(accept))
        .route("/api/v1/requests/{id}/reject", post(reject))
        .route("/api/v1/search", get(search_everywhere))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/index/register", post(index_register))
        .route("/api/v1/index/login", post(index_login))
        .route("/api/v1/index/logout", post(index_logout))
        .route("/api/v1/index/unregister", post(index_unregister))
        .route("/api/v1/index/users", get(index_users))
        .route("/api/v1/index/users/{name}/files", get(index_user_files))
        .route("/api/v1/users/{name}/files", get(user_files))
        .route("/api/v1/index/audit", get(index_audit))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("local API stopped: {e}");
    }
}

/// Checks the token and that Host/Origin are loopback names.
async fn guard(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback_authority);
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .is_none_or(|o| o.strip_prefix("http://").is_some_and(is_loopback_authority));
    if !host_ok || !origin_ok {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests must come from this machine (Host/Origin is not a loopback address)",
        );
    }
    let token_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()));
    if !token_ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API token: it is in the daemon's data folder (file api-token)",
        );
    }
    next.run(request).await
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            NodeError::Index(IndexError::Refused { status, code, .. }) => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                code.as_str(),
            ),
            NodeError::Index(IndexError::Unreachable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "index_unreachable")
            }
            NodeError::Index(IndexError::BadAnswer { .. }) => {
                (StatusCode::BAD_GATEWAY, "index_bad_answer")
            }
            NodeError::NotLoggedIn(_) => (StatusCode::UNAUTHORIZED, "not_logged_in"),
            NodeError::NoIndex => (StatusCode::CONFLICT, "no_index"),
            NodeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            NodeError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            NodeError::PeerUnreachable(_) => (StatusCode::BAD_GATEWAY, "peer_unreachable"),
            NodeError::Refused(_) => (StatusCode::CONFLICT, "refused"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        error(status, code, &self.to_string())
    }
}

/// What `status` shows.
#[derive(Serialize)]
struct StatusView {
    peer_id: String,
    addrs: Vec<String>,
    data_port: u16,
    shares: Vec<String>,
    shared_files: usize,
    downloads_dir: String,
    policy: crate::gate::Policy,
    max_uploads: usize,
    uploads_running: usize,
    index: Option<IndexStatus>,
}

async fn status(State(s): State<ApiState>) -> Json<StatusView> {
    let node = &s.node;
    Json(StatusView {
        peer_id: node.host.peer_id().to_string(),
        addrs: node.host.addrs().iter().map(|a| a.to_string()).collect(),
        data_port: node.data_port,
        shares: node
            .shares
            .roots()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        shared_files: node.shares.len(),
        downloads_dir: node.downloads_dir.display().to_string(),
        policy: node.gate.policy(),
        max_uploads: node.max_uploads,
        uploads_running: node.gate.busy_slots(),
        index: node.index.as_ref().map(IndexLink::status),
    })
}

async fn shares(State(s): State<ApiState>) -> impl IntoResponse {
    let (files, total) = s.node.shares.page(0, u32::MAX, &Default::default());
    Json(json!({ "files": files, "total": total }))
}

async fn rescan(State(s): State<ApiState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.shares.rescan().await?))
}

#[derive(Deserialize)]
struct BrowseQuery {
    peer: String,
}

async fn browse(
    State(s): State<ApiState>,
    Query(q): Query<BrowseQuery>,
) -> Result<impl IntoResponse, NodeError> {
    let (peer, dial) = crate::people::peer_to_browse(&s.node.host, &q.peer).await?;
    let listing = crate::browse::browse_all(&s.node.host, peer, dial, &Default::default()).await?;
    Ok(Json(json!({
        "peer": peer.to_string(),
        "files": listing.files,
        "total": listing.total,
        "truncated": listing.truncated,
    })))
}

#[derive(Deserialize)]
struct StartDownload {
    /// A full peer address; without one the file is looked up in the index by name.
    peer: Option<String>,
    file: String,
}

async fn start_download(
    State(s): State<ApiState>,
    Json(body): Json<StartDownload>,
) -> Result<impl IntoResponse, NodeError> {
    let view = match &body.peer {
        Some(peer) => s.node.downloads.start(peer, &body.file).await?,
        None => {
            let (id, sources) = crate::search::locate(&s.node, &body.file).await?;
            s.node
                .downloads
                .start_from_any(&sources, &id.to_hex())
                .await?
        }
    };
    Ok((StatusCode::CREATED, Json(view)))
}

async fn search_everywhere(
    State(s): State<ApiState>,
    Query(params): Query<SearchParams>,
) -> impl IntoResponse {
    Json(crate::search::search(&s.node, &params).await)
}

async fn peers(State(s): State<ApiState>) -> impl IntoResponse {
    Json(json!({ "peers": s.node.host.book().list() }))
}

fn link(s: &ApiState) -> Result<&IndexLink, NodeError> {
    s.node.index.as_ref().ok_or(NodeError::NoIndex)
}

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
}

async fn index_register(
    State(s): State<ApiState>,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse, NodeError> {
    let session = link(&s)?.register(&body.name, &body.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": session.name, "expires_at": session.expires_at })),
    ))
}

async fn index_login(
    State(s): State<ApiState>,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse, NodeError> {
    let session = link(&s)?.login(&body.name, &body.password).await?;
    Ok(Json(
        json!({ "name": session.name, "expires_at": session.expires_at }),
    ))
}

async fn index_logout(State(s): State<ApiState>) -> Result<impl IntoResponse, NodeError> {
    link(&s)?.logout().await?;
    Ok(Json(json!({ "logged_out": true })))
}

async fn index_unregister(State(s): State<ApiState>) -> Result<impl IntoResponse, NodeError> {
    link(&s)?.unregister().await?;
    Ok(Json(json!({ "unregistered": true })))
}

#[derive(Deserialize)]
struct UsersQuery {
    #[serde(default)]
    all: bool,
}

async fn index_users(
    State(s): State<ApiState>,
    Query(q): Query<UsersQuery>,
) -> Result<impl IntoResponse, NodeError> {
    let link = link(&s)?;
    Ok(Json(link.client().users(&link.token()?, q.all).await?))
}

async fn index_user_files(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, NodeError> {
    let link = link(&s)?;
    Ok(Json(
        link.client()
            .user_files(&link.token()?, &name, &query)
            .await?,
    ))
}

async fn user_files(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(
        crate::people::user_files(&s.node, &name, &query).await?,
    ))
}

async fn index_audit(
    State(s): State<ApiState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, NodeError> {
    let link = link(&s)?;
    Ok(Json(link.client().audit(&link.token()?, &query).await?))
}

async fn list_downloads(State(s): State<ApiState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.downloads.list().await?))
}

async fn one_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, NodeError> {
    match s.node.downloads.get(id).await? {
        Some(view) => Ok(Json(view)),
        None => Err(NodeError::NotFound(format!("no download number {id}"))),
    }
}

async fn requests(State(s): State<ApiState>) -> impl IntoResponse {
    Json(s.node.gate.pending())
}

async fn accept(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<impl IntoResponse, NodeError> {
    answer(&s, id, true).await
}

async fn reject(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<impl IntoResponse, NodeError> {
    answer(&s, id, false).await
}

async fn answer(s: &ApiState, id: u64, accept: bool) -> Result<Json<serde_json::Value>, NodeError> {
    let response = s.node.gate.answer(id, accept).ok_or_else(|| {
        NodeError::NotFound(format!(
            "no request number {id} is waiting (answered or timed out); `peershare requests` lists them"
        ))
    })?;
    let granted = matches!(
        response,
        peershare_core::wire::control::TransferResponse::Granted { .. }
    );
    s.node.host.answer(id, response).await?;
    Ok(Json(
        json!({ "id": id, "accepted": accept, "granted": granted }),
    ))
}

/// The address the API listens on, for `api.addr`.
pub fn addr_file_contents(addr: SocketAddr) -> String {
    format!("{addr}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_authorities_pass() {
        assert!(is_loopback_authority("127.0.0.1:1101"));
        assert!(is_loopback_authority("localhost:1101"));
        assert!(is_loopback_authority("[::1]:1101"));
        assert!(!is_loopback_authority("evil.example:1101"));
        assert!(!is_loopback_authority("192.168.1.5:1101"));
        assert!(!is_loopback_authority("127.0.0.1.evil.example"));
    }
}
