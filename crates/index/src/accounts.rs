//! Accounts: register, log in (a bearer token that expires), log out
//! (revokes that token) and unregister (removes the user's peers, files and
//! tokens).
//!
//! This module only ever changes the calling user's own account; it never
//! reveals whether a failed login was a wrong name or a wrong password.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{audited_write, Action, AuditEvent};
use crate::auth::{self, AuthUser};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientAddr};
use crate::state::AppState;
use crate::store::{ms, now_ms};
use crate::validate;

/// A name and password, to register or to log in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    /// User name: 1–64 characters, no control characters.
    pub name: String,
    /// Password: 1–1024 bytes.
    pub password: String,
}

/// A registered account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The new user's name.
    pub name: String,
}

/// A login session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// When the token stops working, in milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// The logged-in user.
    pub name: String,
}

async fn hash_off_thread(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("hash task: {e}")))?
}

/// Create an account.
#[utoipa::path(post, path = "/users", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, description = "Registered; log in next", body = Registered),
        (status = 400, description = "Bad name or password", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Missing fields or wrong types", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let event = AuditEvent::new(Action::Register, client).user(&validate::truncated(&body.name));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let name = validate::user_name(&body.name)?;
        validate::password(&body.password)?;
        if state.store().user_exists(name).await? {
            return Err(name_taken(name));
        }
        let per_minute = state.config().registrations_per_minute as usize;
        state.limiter().register(client.0, per_minute)?;
        let hash = hash_off_thread(body.password.clone()).await?;
        match state
            .store()
            .create_user(name, &hash, now_ms(), &audit)
            .await?
        {
            Some(_) => Ok((
                StatusCode::CREATED,
                Json(Registered {
                    name: name.to_string(),
                }),
            )),
            None => Err(name_taken(name)),
        }
    })
    .await
}

fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict {
        code: "name_taken",
        message: format!("the name {name:?} is taken; choose another one"),
    }
}

/// Log in: exchange a name and password for a bearer token.
#[utoipa::path(post, path = "/sessions", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, description = "Logged in", body = Session),
        (status = 401, description = "Wrong name or password", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let event = AuditEvent::new(Action::Login, client).user(&validate::truncated(&body.name));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        state.limiter().check(&body.name, client.0)?;
        let stored = state.store().credentials(&body.name).await?;
        let password = body.password.clone();
        let hash = stored.as_ref().map(|(_, h)| h.clone());
        let ok = tokio::task::spawn_blocking(move || {
            auth::verify_password(&password, hash.as_deref())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("verify task: {e}")))?;
        let Some((user_id, _)) = stored.filter(|_| ok) else {
            state.limiter().failed(&body.name, client.0);
            return Err(ApiError::unauthorized(
                "bad_credentials",
                "wrong user name or password; check both and try again (register first if you have no account)",
            ));
        };
        state.limiter().succeeded(&body.name);
        let token = auth::new_token();
        let now = now_ms();
        let expires_at = now.saturating_add(ms(state.config().token_lifetime));
        state
            .store()
            .create_session(&auth::token_hash(&token), user_id, now, expires_at, &audit)
            .await?;
        Ok((
            StatusCode::CREATED,
            Json(Session {
                token,
                expires_at,
                name: body.name.clone(),
            }),
        ))
    })
    .await
}

/// Log out: revoke the token this request carries.
#[utoipa::path(delete, path = "/sessions/current", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Token revoked"),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    let event = AuditEvent::new(Action::Logout, client).user(&user.name);
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        state
            .store()
            .delete_session(&user.token_hash, &audit)
            .await?;
        state.tokens().forget_token(&user.token_hash);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Unregister: delete the calling user with all their peers, files and tokens.
#[utoipa::path(delete, path = "/users/me", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Account removed"),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub async fn unregister(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    let event = AuditEvent::new(Action::Unregister, client).user(&user.name);
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        state.store().delete_user(user.id, &audit).await?;
        state.tokens().forget_user(user.id);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
