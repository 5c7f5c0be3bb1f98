//! The JSON request body extractor of the local API: a body must be a JSON
//! object, and a whole number written with a fraction (`1000.0`) counts as
//! the integer it is.
//!
//! It only parses; it never acts on what it read. Its refusals use the API's
//! JSON error shape (plain-text refusals of the inner `Json` extractor are
//! turned into that shape by the router's `json_errors` layer).

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON object body deserialized into `T`.
pub(super) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        peershare_core::api_schema::object_body(value)
            .map(Self)
            .map_err(|e| {
                super::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    &e.to_string(),
                )
            })
    }
}
