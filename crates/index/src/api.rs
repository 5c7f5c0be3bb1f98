//! The HTTP surface: the router under `/api/v1`, the shared state handlers
//! see, body limits, and extractors that turn every malformed request
//! (bad JSON, wrong types, missing fields, oversized bodies, bad query or
//! path values, unknown routes) into the JSON error shape.
//!
//! This module wires handlers together; it never holds business rules or SQL
//! (those live in the handler modules and in [`crate::store`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::Audit;
use crate::auth::{LoginLimiter, TokenCache};
use crate::config::IndexConfig;
use crate::error::ApiError;
use crate::gate::Gate;
use crate::store::Store;
use crate::tls::TlsListener;
use crate::{accounts, audit, files, openapi, peers, search, users};

/// Largest body accepted by join and publish (a whole file list).
pub const LARGE_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Largest body accepted everywhere else.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Store,
    config: IndexConfig,
    limiter: LoginLimiter,
    tokens: TokenCache,
    audit: Audit,
    search_gate: Gate,
    list_gate: Gate,
}

/// Joins and publishes (whole file lists) handled at once.
const LIST_SLOTS: usize = 2;
/// Joins and publishes waiting for a slot before more are answered 503.
const LIST_QUEUE: usize = 32;
/// Longest wait for a join or publish slot.
const LIST_MAX_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for a search slot.
const SEARCH_MAX_WAIT: Duration = Duration::from_secs(2);

impl AppState {
    /// Bundles the parts handlers need.
    pub fn new(store: Store, config: IndexConfig, audit: Audit) -> Self {
        let search_gate = Gate::new(
            "searches",
            config.search_slots as usize,
            config.search_queue as usize,
            SEARCH_MAX_WAIT,
        );
        Self {
            inner: Arc::new(StateInner {
                store,
                config,
                limiter: LoginLimiter::default(),
                tokens: TokenCache::default(),
                audit,
                search_gate,
                list_gate: Gate::new("joins and publishes", LIST_SLOTS, LIST_QUEUE, LIST_MAX_WAIT),
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings the index runs with.
    pub fn config(&self) -> &IndexConfig {
        &self.inner.config
    }

    /// The failed-login counters.
    pub fn limiter(&self) -> &LoginLimiter {
        &self.inner.limiter
    }

    /// Recently validated login tokens.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// Admission of searches.
    pub fn search_gate(&self) -> &Gate {
        &self.inner.search_gate
    }

    /// Admission of joins and publishes.
    pub fn list_gate(&self) -> &Gate {
        &self.inner.list_gate
    }

    /// The audit log writer.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// The oldest `last_seen` (ms) that still counts as online at `now`.
    pub fn online_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(crate::store::ms(self.inner.config.peer_timeout))
    }
}

/// All documented routes, relative to `/api/v1`.
fn api_routes() -> OpenApiRouter<AppState> {
    let large = OpenApiRouter::new()
        .routes(routes!(peers::join))
        .routes(routes!(files::publish))
        .layer(DefaultBodyLimit::max(LARGE_BODY_LIMIT));
    let small = OpenApiRouter::new()
        .routes(routes!(accounts::register, users::list_users))
        .routes(routes!(accounts::unregister))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(peers::challenge))
        .routes(routes!(peers::heartbeat))
        .routes(routes!(peers::leave, users::peer_owner))
        .routes(routes!(files::unpublish))
        .routes(routes!(search::search))
        .routes(routes!(users::user_files))
        .routes(routes!(audit::list_audit))
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT));
    OpenApiRouter::with_openapi(openapi::base()).nest("/api/v1", large.merge(small))
}

/// The OpenAPI document of the API, generated from the handlers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// The complete router with its state.
pub fn router(state: AppState) -> Router {
    let (router, doc) = api_routes().split_for_parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "there is no endpoint {method} {}; the API is described at /api/v1/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} does not accept {method}; see /api/v1/openapi.json for the methods it takes",
        uri.path()
    ))
}

/// A JSON request body whose rejections are JSON errors.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::Unprocessable(format!(
            "the JSON body does not have the fields this endpoint needs ({detail}); see /api/v1/openapi.json"
        )),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON ({detail}); send a JSON object"),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with the header Content-Type: application/json".into(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(format!(
                "the body is too large for this endpoint (limit {} KiB for file lists, {} KiB elsewhere); send fewer files per request",
                LARGE_BODY_LIMIT / 1024,
                SMALL_BODY_LIMIT / 1024
            ))
        }
        other => ApiError::bad_request(
            "unreadable_body",
            format!("the body could not be read ({}); send it again", other.body_text()),
        ),
    }
}

/// Query-string parameters whose rejections are JSON errors.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "the query string is invalid ({}); see /api/v1/openapi.json",
                        e.body_text()
                    ),
                )
            })
    }
}

/// Path parameters whose rejections are JSON errors.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(
                    "invalid_path",
                    format!("the URL path is invalid ({})", e.body_text()),
                )
            })
    }
}

/// The client's IP address, when the server knows it.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The address as text for the audit log.
    pub fn text(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<RemoteAddr>>()
                .map(|c| c.0 .0.ip()),
        ))
    }
}

/// The remote address of a connection (plain TCP or TLS), recorded by the
/// server for [`ClientAddr`].
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for RemoteAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for RemoteAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}
