//! The daemon's local HTTP API (JSON under `/api/v1`), used by the CLI and
//! the web UI, described by an OpenAPI document generated from the handlers
//! (`/api/v1/openapi.json`, checked in as `docs/local-api.json`). It binds
//! 127.0.0.1 unless told otherwise.
//!
//! Every request needs the bearer token kept in the data folder, and the
//! Host and Origin headers must name a loopback address, so a web page in
//! the person's browser cannot drive the daemon. Handlers only translate
//! HTTP to the engine's calls; they hold no state of their own. Errors are
//! [`ApiError`]: a stable `code` and a message saying what to do.

mod messages;
mod network;
mod openapi;
mod sharing;
mod transfers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::index_link::client::IndexClientError;
use crate::node::Node;
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
        .routes(routes!(messages::trust));
    OpenApiRouter::with_openapi(openapi::base()).nest("/api/v1", routes)
}

/// The OpenAPI document of the local API, generated from the handlers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// Builds the API router for `node`, guarded by `token`.
pub fn router(node: Node, token: String) -> Router {
    let state = ApiState {
        node,
        token: token.into(),
    };
    let (routes, doc) = api_routes().split_for_parts();
    let doc = Arc::new(doc);
    routes
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
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
    fn only_loopback_authorities_pass() {
        assert!(is_loopback_authority("127.0.0.1:1101"));
        assert!(is_loopback_authority("localhost:1101"));
        assert!(is_loopback_authority("[::1]:1101"));
        assert!(!is_loopback_authority("evil.example:1101"));
        assert!(!is_loopback_authority("192.168.1.5:1101"));
        assert!(!is_loopback_authority("127.0.0.1.evil.example"));
    }

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
