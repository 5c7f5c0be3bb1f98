//! The daemon's local HTTP API (JSON under `/api/v1`), used by the CLI and,
//! later, the web UI. It binds 127.0.0.1 unless told otherwise.
//!
//! Every request needs the bearer token kept in the data folder, and the
//! Host and Origin headers must name a loopback address, so a web page in
//! the person's browser cannot drive the daemon. Handlers only translate
//! HTTP to the engine's calls; they hold no state of their own.

pub mod events;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::views::{ApiError, GetAnswer, GetRequest, RequestAnswer};
use subtle::ConstantTimeEq;

use crate::daemon::Node;
use crate::discovery;
use crate::index_link::client::{IndexError, SearchParams};
use crate::index_link::{IndexLink, IndexStatus};
use crate::NodeError;
use peershare_core::FileId;

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
        .route("/api/v1/shares/folders", post(add_folder))
        .route("/api/v1/shares/folders/remove", post(remove_folder))
        .route("/api/v1/sharing", post(set_sharing))
        .route("/api/v1/rescan", post(rescan))
        .route("/api/v1/link", get(share_link))
        .route("/api/v1/browse", get(browse))
        .route(
            "/api/v1/downloads",
            get(list_downloads).post(start_download),
        )
        .route("/api/v1/downloads/{id}", get(one_download))
        .route("/api/v1/downloads/{id}", delete(remove_download))
        .route("/api/v1/downloads/{id}/pause", post(pause_download))
        .route("/api/v1/downloads/{id}/resume", post(resume_download))
        .route("/api/v1/downloads/{id}/cancel", post(cancel_download))
        .route("/api/v1/downloads/clean", post(clean_downloads))
        .route("/api/v1/events", get(events))
        .route("/api/v1/uploads", get(uploads))
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

/// Serves the API on `listener` until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
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
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(state.token.as_bytes())));
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

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ApiError {
        code: code.to_string(),
        message: message.to_string(),
    };
    (status, Json(body)).into_response()
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
            NodeError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            NodeError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
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
    sharing_online: bool,
    downloads_dir: String,
    policy: crate::transfer::upload::gate::Policy,
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
        sharing_online: node.shares.is_online(),
        downloads_dir: node.downloads_dir.display().to_string(),
        policy: node.gate.policy(),
        max_uploads: node.max_uploads,
        uploads_running: node.gate.busy_slots(),
        index: node.index.as_ref().map(IndexLink::status),
    })
}

async fn shares(State(s): State<ApiState>) -> Json<views::SharesView> {
    let (files, total) = s.node.shares.page(0, u32::MAX, &Default::default());
    Json(views::SharesView {
        online: s.node.shares.is_online(),
        folders: folder_names(&s.node),
        files,
        total,
    })
}

fn folder_names(node: &Node) -> Vec<String> {
    let roots = node.shares.roots();
    roots.iter().map(|p| p.display().to_string()).collect()
}

async fn add_folder(
    State(s): State<ApiState>,
    Json(body): Json<views::FolderRequest>,
) -> Result<Json<views::FoldersChanged>, NodeError> {
    let path = std::path::Path::new(&body.path);
    let report = s.node.shares.add_folder(path, &s.node.data_dir).await?;
    Ok(folders_changed(&s.node, report))
}

async fn remove_folder(
    State(s): State<ApiState>,
    Json(body): Json<views::FolderRequest>,
) -> Result<Json<views::FoldersChanged>, NodeError> {
    let report = s
        .node
        .shares
        .remove_folder(std::path::Path::new(&body.path))
        .await?;
    Ok(folders_changed(&s.node, report))
}

fn folders_changed(node: &Node, report: crate::share::RescanReport) -> Json<views::FoldersChanged> {
    Json(views::FoldersChanged {
        folders: folder_names(node),
        shared_files: report.shared_files,
        hashed: report.hashed,
    })
}

async fn set_sharing(
    State(s): State<ApiState>,
    Json(body): Json<views::SharingRequest>,
) -> Result<Json<views::SharingRequest>, NodeError> {
    s.node.set_sharing(body.online).await?;
    Ok(Json(views::SharingRequest {
        online: s.node.shares.is_online(),
    }))
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
    let (peer, dial) = crate::discovery::people::peer_to_browse(&s.node.host, &q.peer).await?;
    let listing =
        crate::discovery::browse::browse_all(&s.node.host, peer, dial, &Default::default()).await?;
    Ok(Json(json!({
        "peer": peer.to_string(),
        "files": listing.files,
        "total": listing.total,
        "truncated": listing.truncated,
    })))
}

async fn start_download(
    State(s): State<ApiState>,
    Json(body): Json<GetRequest>,
) -> Result<(StatusCode, Json<GetAnswer>), NodeError> {
    let downloads = &s.node.downloads;
    let answer = match (&body.peer, body.file.parse::<FileId>()) {
        (Some(peer), _) => downloads.start(peer, &body.file, body.again).await?,
        (None, Ok(id)) => {
            let from_link = match body.sources.is_empty() {
                true => None,
                false => downloads
                    .start_from_any(&body.sources, &id, body.again)
                    .await
                    .ok(),
            };
            match from_link {
                Some(answer) => answer,
                None => {
                    let holders = discovery::search::holders_of(&s.node, &id).await?;
                    downloads.start_from_any(&holders, &id, body.again).await?
                }
            }
        }
        (None, Err(_)) => {
            // One's own shared file (a first run's `get`): say where it is.
            let own = (!body.again)
                .then(|| s.node.shares.find(&body.file).ok())
                .flatten();
            if let Some(file) = own {
                let answer = GetAnswer::AlreadyHere {
                    file_id: file.id(),
                    path: file.path.display().to_string(),
                };
                return Ok((StatusCode::OK, Json(answer)));
            }
            let (id, sources) = discovery::search::locate(&s.node, &body.file).await?;
            downloads.start_from_any(&sources, &id, body.again).await?
        }
    };
    let status = match answer {
        GetAnswer::Started { .. } => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(answer)))
}

#[derive(Deserialize)]
struct LinkQuery {
    /// A shared file's id, shared name, or absolute path.
    file: String,
    /// Put this peer's addresses in the link.
    #[serde(default)]
    with_addrs: bool,
}

async fn share_link(
    State(s): State<ApiState>,
    Query(q): Query<LinkQuery>,
) -> Result<Json<views::LinkView>, NodeError> {
    let file = s.node.shares.find(&q.file)?;
    let sources = match q.with_addrs {
        true => s.node.host.addrs().iter().map(|a| a.to_string()).collect(),
        false => Vec::new(),
    };
    let link = peershare_core::link::ShareLink {
        id: file.id(),
        name: Some(file.name.clone()),
        size: Some(file.size),
        sources,
    };
    Ok(Json(views::LinkView {
        uri: link.to_uri(),
        file_id: file.id(),
        name: file.name,
        size: file.size,
    }))
}

async fn search_everywhere(
    State(s): State<ApiState>,
    Query(params): Query<SearchParams>,
) -> impl IntoResponse {
    Json(crate::discovery::search::search(&s.node, &params).await)
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
        crate::discovery::people::user_files(&s.node, &name, &query).await?,
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
        None => Err(NodeError::NotFound(format!(
            "no download number {id}; `peershare downloads` lists them"
        ))),
    }
}

async fn pause_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.downloads.pause(id).await?))
}

async fn resume_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.downloads.resume(id).await?))
}

async fn cancel_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.downloads.cancel(id).await?))
}

async fn remove_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, NodeError> {
    s.node.downloads.remove(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clean_downloads(State(s): State<ApiState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.downloads.clean().await?))
}

/// Server-Sent Events: one `data:` line of JSON ([`views::Event`]) per event.
async fn events(
    State(s): State<ApiState>,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>> {
    let subscription = s.node.bus.subscribe();
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let event = sub.next().await?;
        let sse = SseEvent::default()
            .id(event.seq.to_string())
            .json_data(&event)
            .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
        Some((Ok(sse), sub))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn requests(State(s): State<ApiState>) -> Json<Vec<views::PendingRequest>> {
    let mut pending = s.node.gate.pending();
    for request in &mut pending {
        request.user = user_of(&s.node, &request.peer).await;
    }
    Json(pending)
}

async fn uploads(State(s): State<ApiState>) -> Json<Vec<views::UploadView>> {
    let mut running = s.node.uploads.list();
    for upload in &mut running {
        upload.user = user_of(&s.node, &upload.peer).await;
    }
    Json(running)
}

/// The user name the index gives a peer, if the daemon has an index and it knows one.
async fn user_of(node: &Node, peer_id: &str) -> Option<String> {
    node.index.as_ref()?.user_of(peer_id).await
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

async fn answer(s: &ApiState, id: u64, accept: bool) -> Result<Json<RequestAnswer>, NodeError> {
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
    Ok(Json(RequestAnswer {
        id,
        accepted: accept,
        granted,
    }))
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
