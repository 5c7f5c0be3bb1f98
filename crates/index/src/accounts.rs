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
use crate::store::{ms, now_ms, NewUser};
use crate::validate;

/// A name and password, to register or to log in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    /// User name: 1–64 characters after NFKC normalisation, no control,
    /// invisible or direction-changing characters, letters of one script
    /// only, and not a look-alike of an existing name. Names are compared
    /// in their normalised form.
    pub name: String,
    /// Password: 1–1024 bytes.
    pub password: String,
}

/// A registered account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The new user's name, normalised (the form to log in and be found by).
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

/// Runs argon2 work off the async threads, in the bounded hashing pool
/// (503 when its line is full).
async fn in_hashing_pool<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = state.limiter().hashing().enter().await?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task: {e}")))
}

/// Create an account.
#[utoipa::path(post, path = "/users", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, description = "Registered; log in next", body = Registered),
        (status = 400, description = "Bad name or password", body = ErrorBody),
        (status = 403, description = "The name is a configured admin name whose account was deleted", body = ErrorBody),
        (status = 409, description = "Name taken, or too like a taken name", body = ErrorBody),
        (status = 422, description = "Missing fields or wrong types", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many passwords being checked; see Retry-After", body = ErrorBody),
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
        let name = name.as_str();
        validate::password(&body.password)?;
        if state.store().user_exists(name).await? {
            return Err(name_taken(name));
        }
        let skeleton = validate::user_name_skeleton(name);
        if let Some(other) = state.store().user_with_skeleton(&skeleton).await? {
            return Err(ApiError::Conflict {
                code: "name_taken",
                message: format!(
                    "the name {name:?} looks like the existing name {other:?}; choose a clearly different one"
                ),
            });
        }
        let admin = state.admins().configured(name);
        if admin {
            state.admins().sync(state.store()).await?;
        }
        let per_minute = state.config().registrations_per_minute as usize;
        state.limiter().register(client.0, per_minute)?;
        let password = body.password.clone();
        let hash = in_hashing_pool(&state, move || auth::hash_password(&password)).await??;
        match state
            .store()
            .create_account(name, Some(&skeleton), &hash, now_ms(), admin, &audit)
            .await?
        {
            NewUser::Created(_) => Ok((
                StatusCode::CREATED,
                Json(Registered {
                    name: name.to_string(),
                }),
            )),
            NewUser::Taken => Err(name_taken(name)),
            NewUser::Reserved => Err(ApiError::Forbidden(format!(
                "the name {name:?} is reserved for this index's admin, whose account was deleted; only the index operator can hand it to a new account (by removing --admin {name} for one run and adding it back)"
            ))),
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
        (status = 429, description = "Too many failed attempts for this name from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many passwords being checked; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let event = AuditEvent::new(Action::Login, client).user(&validate::truncated(&body.name));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let bad_credentials = || {
            ApiError::unauthorized(
                "bad_credentials",
                "wrong user name or password; check both and try again (register first if you have no account)",
            )
        };
        // Counted before the password is checked, so a burst cannot pass the limit.
        let key = validate::truncated(&validate::user_name_key(&body.name));
        let attempt = state.limiter().begin(&key, client.0)?;
        // No account can have a name that registration refuses.
        let Ok(name) = validate::user_name(&body.name) else {
            return Err(bad_credentials());
        };
        let stored = state.store().credentials(&name).await?;
        let password = body.password.clone();
        let hash = stored.as_ref().map(|(_, h)| h.clone());
        let checked = in_hashing_pool(&state, move || {
            auth::verify_password(&password, hash.as_deref())
        })
        .await;
        let ok = match checked {
            Ok(ok) => ok,
            Err(e) => {
                state.limiter().not_tried(attempt);
                return Err(e);
            }
        };
        let Some((user_id, _)) = stored.filter(|_| ok) else {
            return Err(bad_credentials());
        };
        state.limiter().succeeded(attempt);
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
                name,
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
        let notice = state
            .cluster()
            .notice(crate::cluster::Change::UserGone(&user.name));
        state.store().delete_user(user.id, &audit, &notice).await?;
        state.catalogue().remove_user(&user.name);
        state.tokens().forget_user(user.id);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
