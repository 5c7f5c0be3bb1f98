//! Extractors that turn every malformed request (bad JSON, a body that is
//! not an object, wrong types, missing fields, oversized bodies, bad query or
//! path values) into the JSON error shape, and the client's address for the
//! audit log. A whole number written with a fraction (`1000.0`) counts as
//! the integer it is.
//!
//! They parse and reject; they never look at the store or the state.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::serve::IncomingStream;
use axum::Json;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::tls::TlsListener;

/// Largest body accepted by join and publish (a whole file list).
pub const LARGE_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Largest body accepted by sending mail: 16 envelopes of 96 KiB as base64
/// (2 MiB) with room for the JSON around them.
pub const MAIL_BODY_LIMIT: usize = 2 * 1024 * 1024 + 64 * 1024;
/// Largest body accepted everywhere else.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body whose rejections are JSON errors.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        peershare_core::api_schema::object_body(value)
            .map(Self)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))
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
                "the body is too large for this endpoint (limit {} KiB for file lists, {} KiB for mail, {} KiB elsewhere); send fewer files or letters per request",
                LARGE_BODY_LIMIT / 1024,
                MAIL_BODY_LIMIT / 1024,
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
