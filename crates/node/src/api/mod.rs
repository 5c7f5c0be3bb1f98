//! The daemon's local HTTP API (JSON under `/api/v1`), used by the CLI and
//! the web UI, described by an OpenAPI document generated from the handlers
//! (`/api/v1/openapi.json`, checked in as `docs/local-api.json`). It binds
//! 127.0.0.1 unless told otherwise.
//!
//! The same listener serves the web UI (`/`, `/login`, `/assets/…`). Every
//! request needs the bearer token kept in the data folder or a web UI
//! session with its CSRF token, and Host and Origin are checked, so no
//! other web page in the person's browser can drive the daemon ([`access`]).
//! Handlers only translate
//! HTTP to the engine's calls; they hold no state of their own. Errors are
//! [`ApiError`]: a stable `code` and a message saying what to do.

mod access;
mod body;
mod messages;
mod network;
mod openapi;
mod sharing;
mod transfers;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peershare_core::conn_limit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::index_link::client::IndexClientError;
use crate::node::Node;
use crate::ui::{Reach, WebUi};
use crate::views::ApiError;
use crate::NodeError;

/// The token file's name inside the data folder.
pub const TOKEN_FILE: &str = "api-token";
/// The file where the daemon writes the address its API listens on.
pub const ADDR_FILE: &str = "api.addr";
/// Room for the longest message's text, escaped as JSON.
const MAX_BODY: usize = 512 * 1024;

/// What every handler gets.
#[derive(Clone)]
struct ApiState {
    node: Node,
    token: Arc<str>,
    ui: WebUi,
    reach: Reach,
    /// The listener's own port (names the session cookie).
    port: u16,
    /// The loopback listener's address, for login links.
    local_addr: SocketAddr,
}

/// One listener the API and web UI are served on.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// How browsers reach it.
    pub reach: Reach,
    /// Its port.
    pub port: u16,
    /// The loopback listener's address (login links point there).
    pub local_addr: SocketAddr,
}

/// Every documented route, relative to `/api/v1`.
fn api_routes() -> OpenApiRouter<ApiState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(sharing::status))
        .routes(routes!(sharing::shares))
        .routes(routes!(sharing::add_folder))
        .routes(routes!(sharing::remove_folder))
        .routes(routes!(sharing::set_sharing))
        .routes(routes!(sharing::rescan))
        .routes(routes!(sharing::share_link))
        .routes(routes!(
            transfers::list_downloads,
            transfers::start_download
        ))
        .routes(routes!(transfers::one_download, transfers::remove_download))
        .routes(routes!(transfers::pause_download))
        .routes(routes!(transfers::rate_download))
        .routes(routes!(transfers::resume_download))
        .routes(routes!(transfers::cancel_download))
        .routes(routes!(transfers::clean_downloads))
        .routes(routes!(transfers::uploads))
        .routes(routes!(transfers::limits, transfers::set_limits))
        .routes(routes!(transfers::set_policy))
        .routes(routes!(transfers::open_folder))
        .routes(routes!(transfers::requests))
        .routes(routes!(transfers::accept))
        .routes(routes!(transfers::reject))
        .routes(routes!(transfers::events))
        .routes(routes!(network::browse))
        .routes(routes!(network::search))
        .routes(routes!(network::peers))
        .routes(routes!(network::register))
        .routes(routes!(network::login))
        .routes(routes!(network::logout))
        .routes(routes!(network::unregister))
        .routes(routes!(network::index_users))
        .routes(routes!(network::index_user_files))
        .routes(routes!(network::user_files))
        .routes(routes!(network::audit))
        .routes(routes!(messages::send))
        .routes(routes!(messages::chats))
        .routes(routes!(messages::chat))
        .routes(routes!(messages::contacts, messages::add_contact))
        .routes(routes!(messages::remove_contact))
        .routes(routes!(messages::block))
        .routes(routes!(messages::trust))
        .routes(routes!(ui::session))
        .routes(routes!(ui::new_link));
    OpenApiRouter::with_openapi(openapi::base()).nest("/api/v1", routes)
}

/// The OpenAPI document of the local API, generated from the handlers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    openapi::complete_document(&mut doc);
    doc
}

/// Builds the API and web UI router for `node` on one listener, guarded by
/// `token` and the web UI's sessions.
pub fn router(node: Node, token: String, ui: WebUi, listening: Listening) -> Router {
    let state = ApiState {
        node,
        token: token.into(),
        ui,
        reach: listening.reach,
        port: listening.port,
        local_addr: listening.local_addr,
    };
    let (routes, mut doc) = api_routes().split_for_parts();
    openapi::complete_document(&mut doc);
    let doc = Arc::new(doc);
    routes
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route("/", get(ui::page))
        .route("/assets/{*path}", get(ui::file))
        .route(
            "/login",
            get(ui::login_with_link).post(ui::login_with_password),
        )
        .route("/logout", post(ui::logout))
        .route("/favicon.ico", get(ui::favicon))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), access::guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Each listener of the API and web UI may use an eighth of the process's
/// file descriptors for connections.
const FD_SHARE: u64 = 8;

/// Serves the API on `listener` (plain TCP or TLS) until `stop` fires.
///
/// Connections are capped in total and per address and closed when idle
/// ([`conn_limit`]); the event stream's keep-alive comments count as
/// activity, so it stays open.
pub async fn serve<L>(listener: L, router: Router, stop: tokio_util::sync::CancellationToken)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use axum::serve::ListenerExt;
    let mut limits = conn_limit::ConnLimits::budgeted(FD_SHARE);
    if listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
        // Every local client has the same address.
        limits.max_per_ip = limits.max_total;
    }
    let listener = conn_limit::Limited::new(listener, limits);
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    // Tapping gives any listener the client's address as connect info.
    let served = axum::serve(listener.tap_io(|_| ()), service)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!("local API stopped: {e}");
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no_such_endpoint",
        &format!(
            "there is no endpoint {}; the API is described at /api/v1/openapi.json",
            uri.path()
        ),
    )
}

/// Turns the plain-text or empty error answers axum gives by itself (bad
/// JSON, query or path, wrong method, body too large or not JSON) into the
/// API's JSON error shape; HTML pages and JSON answers pass unchanged.
async fn json_errors(response: Response) -> Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .is_none_or(|t| t.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, fallback) = match status {
        StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "there is no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method; see /api/v1/openapi.json",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "invalid_body",
            "the JSON body does not have the expected fields",
        ),
        s if s.is_server_error() => ("internal", "the daemon could not answer"),
        _ => ("bad_request", "the request was refused"),
    };
    let message = if text.is_empty() {
        fallback.to_string()
    } else {
        text
    };
    let mut answer = error(status, code, &message);
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer
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
            NodeError::Index(IndexClientError::Refused { status, code, .. }) => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                code.as_str(),
            ),
            NodeError::Index(IndexClientError::Unreachable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "index_unreachable")
            }
            NodeError::Index(IndexClientError::BadAnswer { .. }) => {
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

/// The address the API listens on, for `api.addr`.
pub fn addr_file_contents(addr: SocketAddr) -> String {
    format!("{addr}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_local_api_json_matches_the_handlers() {
        let generated = serde_json::to_value(openapi_document()).unwrap();
        for path in [
            "/api/v1/downloads",
            "/api/v1/downloads/{id}/pause",
            "/api/v1/events",
            "/api/v1/shares/folders",
            "/api/v1/search",
        ] {
            assert!(generated["paths"][path].is_object(), "{path} missing");
        }
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/local-api.json");
        let current: Option<serde_json::Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if current.as_ref() != Some(&generated) {
            if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
                let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
                std::fs::write(&path, text).unwrap();
            } else {
                panic!(
                    "{} is missing or out of date with the local API; regenerate it with \
                     UPDATE_OPENAPI=1 cargo test --release -p peershare-node docs_local_api",
                    path.display()
                );
            }
        }
    }
}
