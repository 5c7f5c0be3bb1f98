//! The HTTP surface: the router under `/api/v1`, with each handler's body
//! limit, the OpenAPI document generated from the handlers, the status page
//! at `/`, and the JSON answers to unknown routes and methods.
//!
//! This module wires handlers together; it never holds business rules or SQL
//! (those live in the handler modules and in [`crate::store`]), and no
//! handler imports it.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{LARGE_BODY_LIMIT, MAIL_BODY_LIMIT, SMALL_BODY_LIMIT};
use crate::state::AppState;
use crate::{accounts, admin, files, mail, openapi, peers, search, status_page, users};

/// All documented routes, relative to `/api/v1`.
fn api_routes() -> OpenApiRouter<AppState> {
    let large = OpenApiRouter::new()
        .routes(routes!(peers::join))
        .routes(routes!(files::publish))
        .layer(DefaultBodyLimit::max(LARGE_BODY_LIMIT));
    // Up to 16 envelopes of 96 KiB; the GET on the same path has no body.
    let mail = OpenApiRouter::new()
        .routes(routes!(mail::send, mail::fetch))
        .layer(DefaultBodyLimit::max(MAIL_BODY_LIMIT));
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
        .routes(routes!(users::user_peers))
        .routes(routes!(mail::ack))
        .routes(routes!(admin::list_audit))
        .routes(routes!(status_page::stats))
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT));
    OpenApiRouter::with_openapi(openapi::base()).nest("/api/v1", large.merge(mail).merge(small))
}

/// The OpenAPI document of the API, generated from the handlers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    openapi::complete_document(&mut doc);
    doc
}

/// The complete router with its state.
pub fn router(state: AppState) -> Router {
    let (router, mut doc) = api_routes().split_for_parts();
    openapi::complete_document(&mut doc);
    let doc = Arc::new(doc);
    router
        .route("/", get(status_page::page))
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
