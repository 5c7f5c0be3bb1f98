//! Proving who is calling: argon2 password hashes, random bearer tokens (only
//! their hash is stored), the [`AuthUser`] extractor that turns an
//! `Authorization: Bearer TOKEN` header into a user, and the [`LoginLimiter`]
//! that slows down password guessing per user name and per client address.
//!
//! This module answers "who is this?"; it never decides what that user may do
//! (handlers check ownership) and never stores or logs a token or password.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;

use crate::api::AppState;
use crate::error::ApiError;
use crate::store::now_ms;

/// Failed logins per user name allowed within [`LIMIT_WINDOW`].
pub const MAX_FAILURES_PER_NAME: usize = 5;
/// Failed logins per client address allowed within [`LIMIT_WINDOW`].
pub const MAX_FAILURES_PER_ADDR: usize = 20;
/// The sliding window failed logins are counted in.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// Counters kept before old ones are swept eagerly.
const MAX_TRACKED_KEYS: usize = 100_000;

/// Hashes a password with argon2id and a random salt (slow on purpose: call
/// it off the async threads, e.g. with `spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("argon2 hash: {e}")))
}

/// Checks a password against a stored argon2 hash; `None` as the hash still
/// spends the same time (so unknown names cannot be told apart) and fails.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password("peershare dummy password").unwrap_or_else(|_| String::new())
    });
    let hash_text = stored.unwrap_or(dummy);
    let Ok(hash) = PasswordHash::new(hash_text) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok();
    ok && stored.is_some()
}

/// A fresh bearer token: 32 random bytes as 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The form a token is stored and looked up in (BLAKE3, hex).
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// The user a request is authenticated as.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// Database id.
    pub id: i64,
    /// User name.
    pub name: String,
    /// Hash of the token used, to revoke this session.
    pub token_hash: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_token",
                    "this needs a login: get a token with POST /api/v1/sessions and send it as Authorization: Bearer TOKEN",
                )
            })?
            .to_str()
            .unwrap_or("");
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_token",
                    "the Authorization header must be \"Bearer TOKEN\" with the token from POST /api/v1/sessions",
                )
            })?;
        let hash = token_hash(token);
        match state.store().session_user(&hash, now_ms()).await? {
            Some(user) => Ok(Self {
                id: user.id,
                name: user.name,
                token_hash: hash,
            }),
            None => Err(ApiError::unauthorized(
                "invalid_token",
                "this token is unknown, expired or was logged out; log in again with POST /api/v1/sessions",
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LimitKey {
    Name(String),
    Addr(IpAddr),
}

/// Counts failed logins per user name and per client address in a sliding
/// window and refuses further attempts once either count is too high.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<LimitKey, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// `Err(429)` if this name or address has failed too often recently.
    pub fn check(&self, name: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = None::<Duration>;
        let mut keys = vec![(LimitKey::Name(name.to_string()), MAX_FAILURES_PER_NAME)];
        if let Some(addr) = addr {
            keys.push((LimitKey::Addr(addr), MAX_FAILURES_PER_ADDR));
        }
        for (key, max) in keys {
            if let Some(times) = map.get_mut(&key) {
                prune(times, now);
                if times.len() >= max {
                    let oldest = times[times.len() - max];
                    let until = (oldest + LIMIT_WINDOW).saturating_duration_since(now);
                    wait = Some(wait.map_or(until, |w| w.max(until)));
                }
            }
        }
        match wait {
            None => Ok(()),
            Some(wait) => {
                let secs = wait.as_secs() + 1;
                Err(ApiError::RateLimited {
                    retry_after_secs: secs,
                    message: format!(
                        "too many failed logins for this name or from this address; try again in {secs} seconds"
                    ),
                })
            }
        }
    }

    /// Records a failed login.
    pub fn failed(&self, name: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_KEYS {
            map.retain(|_, times| {
                prune(times, now);
                !times.is_empty()
            });
        }
        let mut keys = vec![LimitKey::Name(name.to_string())];
        keys.extend(addr.map(LimitKey::Addr));
        for key in keys {
            let times = map.entry(key).or_default();
            prune(times, now);
            times.push_back(now);
            while times.len() > MAX_FAILURES_PER_ADDR {
                times.pop_front();
            }
        }
    }

    /// Forgets the failures of a name after a successful login.
    pub fn succeeded(&self, name: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&LimitKey::Name(name.to_string()));
    }

    /// Drops counters whose failures all left the window.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, times| {
            prune(times, now);
            !times.is_empty()
        });
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= LIMIT_WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_five_failures_per_name() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_NAME {
            assert!(l.check("bob", Some(ip)).is_ok());
            l.failed("bob", Some(ip));
        }
        assert!(matches!(
            l.check("bob", Some(ip)),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(l.check("carol", Some(ip)).is_ok());
        l.succeeded("bob");
        assert!(l.check("bob", Some(ip)).is_ok());
    }

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("secret").unwrap();
        assert!(verify_password("secret", Some(&h)));
        assert!(!verify_password("wrong", Some(&h)));
        assert!(!verify_password("secret", None));
    }
}
