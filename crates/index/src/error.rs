//! The index's error types: [`IndexError`] for starting the server and
//! [`ApiError`] for answering a request, which always becomes a JSON body
//! `{"error": code, "message": text}` with the matching HTTP status.
//!
//! This module turns errors into responses; it never decides what is allowed
//! and never leaks database details to a client (those go to the log).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why the index could not start.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The data folder could not be created.
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The SQLite database could not be opened.
    #[error("cannot open the index database {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: sqlx::Error,
    },
    /// The PostgreSQL database could not be reached or used.
    #[error("cannot open the index database {database}: {source}")]
    Postgres {
        /// The database's URL without its password.
        database: String,
        /// What PostgreSQL (or the connection to it) said.
        source: sqlx::Error,
    },
    /// The `database` setting (`--database`) is not one the index accepts.
    #[error("{0}")]
    DatabaseSetting(String),
    /// The schema could not be brought up to date.
    #[error("cannot update the index database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The search catalogue could not be built.
    #[error("cannot build the search index: {0}")]
    Search(String),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {path}: {message}")]
    Tls {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Only one of the TLS certificate and key is set.
    #[error("TLS needs both a certificate (tls_cert, --tls-cert) and a key (tls_key, --tls-key); only one is set")]
    TlsHalfConfigured,
    /// The listen address is taken or not ours.
    #[error(
        "cannot listen on {addr}: {source} (is another index running? choose another --listen)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `name_taken`.
    pub error: String,
    /// What went wrong and what to do next, for a person.
    pub message: String,
}

/// A request that cannot be served; each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a field breaks a rule.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 401: no valid credentials.
    #[error("{message}")]
    Unauthorized {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 403 with a code of its own, e.g. `not_your_peer`.
    #[error("{message}")]
    Denied {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 404: the thing does not exist (or is not yours to see).
    #[error("{0}")]
    NotFound(String),
    /// 404 with a code of its own, e.g. `unknown_recipient`.
    #[error("{message}")]
    Unknown {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request clashes with existing data.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 413: the body is larger than this endpoint accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON with missing fields or wrong types.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: too many attempts; retry after the given number of seconds.
    #[error("{message}")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
        /// Human text.
        message: String,
    },
    /// 429: a quota is used up until something else happens (no Retry-After:
    /// waiting alone does not free it), e.g. `mailbox_full`.
    #[error("{message}")]
    QuotaExceeded {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 503: too busy right now; retry after the given number of seconds.
    #[error("{message}")]
    Busy {
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
        /// Human text.
        message: String,
    },
    /// 500: our fault; details are in the server log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with the given code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 401 with the given code and message.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::Unknown { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Denied { code, .. }
            | Self::Unknown { code, .. }
            | Self::Conflict { code, .. }
            | Self::QuotaExceeded { code, .. } => code,
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge(_) => "body_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unprocessable(_) => "invalid_body",
            Self::RateLimited { .. } => "rate_limited",
            Self::Busy { .. } => "busy",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!("{detail}");
                "the index hit an internal error and changed nothing; try again, and tell the index operator if it keeps happening".to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: self.code().to_string(),
            message,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited {
            retry_after_secs, ..
        }
        | Self::Busy {
            retry_after_secs, ..
        } = self
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Why an operation on a peer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRefusal {
    /// No such peer has ever joined.
    Unknown,
    /// The peer belongs to another user.
    NotYours,
    /// The peer left; it must join again.
    Left,
}

impl PeerRefusal {
    /// The API error for this refusal of a write to `peer_id`.
    pub fn for_peer(self, peer_id: &str) -> ApiError {
        match self {
            PeerRefusal::Unknown => ApiError::NotFound(format!(
                "peer {peer_id} has not joined this index; join it first with POST /api/v1/peers"
            )),
            PeerRefusal::NotYours => ApiError::Forbidden(format!(
                "peer {peer_id} belongs to another user; you can only change your own peers"
            )),
            PeerRefusal::Left => ApiError::Conflict {
                code: "peer_left",
                message: format!(
                    "peer {peer_id} has left the index; join again with POST /api/v1/peers"
                ),
            },
        }
    }
}

/// Why the store refused a batch of letters (nothing of it was stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailRefusal {
    /// No peer with this id has ever joined.
    UnknownRecipient(String),
    /// `adding` more letters for the recipient peer would pass its `limit`.
    RecipientFull {
        /// The recipient peer.
        peer_id: String,
        /// Letters waiting for it before this request.
        waiting: i64,
        /// Letters for it in this request.
        adding: usize,
        /// The configured limit per recipient peer.
        limit: u32,
    },
    /// `adding` more letters from the sender for the peer would pass `limit`.
    SenderFull {
        /// The recipient peer.
        peer_id: String,
        /// Letters from the sender waiting for it before this request.
        waiting: i64,
        /// Letters for it in this request.
        adding: usize,
        /// The configured limit per sender and recipient peer.
        limit: u32,
    },
}

impl From<MailRefusal> for ApiError {
    fn from(r: MailRefusal) -> Self {
        match r {
            MailRefusal::UnknownRecipient(peer_id) => ApiError::Unknown {
                code: "unknown_recipient",
                message: format!(
                    "no peer {peer_id} has ever joined this index; check the recipient's peer ids with GET /api/v1/users/{{name}}/peers; nothing was sent"
                ),
            },
            MailRefusal::RecipientFull {
                peer_id,
                waiting,
                adding,
                limit,
            } => ApiError::QuotaExceeded {
                code: "mailbox_full",
                message: format!(
                    "the mailbox of peer {peer_id} is full: {waiting} letters are waiting and this request adds {adding}, but a recipient peer holds at most {limit}; nothing was sent: letters will be accepted again once the recipient collects them"
                ),
            },
            MailRefusal::SenderFull {
                peer_id,
                waiting,
                adding,
                limit,
            } => ApiError::QuotaExceeded {
                code: "mailbox_full",
                message: format!(
                    "your letters to peer {peer_id} are at their limit: {waiting} from you are waiting and this request adds {adding}, but one user may have at most {limit} waiting for one recipient peer; nothing was sent: letters will be accepted again once the recipient collects them"
                ),
            },
        }
    }
}

/// Maps a store refusal for `peer_id` to the API error.
pub fn refused(peer_id: &str) -> impl Fn(PeerRefusal) -> ApiError + '_ {
    move |r| r.for_peer(peer_id)
}
