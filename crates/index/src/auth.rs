//! Proving who is calling: argon2 password hashes, random bearer tokens (only
//! their hash is stored), the [`AuthUser`] extractor that turns an
//! `Authorization: Bearer TOKEN` header into a user (through the
//! [`TokenCache`] of recently validated tokens), and the [`LoginLimiter`]
//! that counts login attempts (before checking them) per user name and
//! client address, per name and per address, limits registrations per
//! client address, and runs all argon2 work in a small bounded pool
//! (argon2 is costly in time and memory).
//!
//! This module answers "who is this?"; it never decides what that user may do
//! (handlers check ownership) and never stores or logs a token or password
//! (the cache is keyed by the token's hash too).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;

use crate::error::ApiError;
use crate::gate::Gate;
use crate::store::{now_ms, Store, User};

/// Failed logins for one user name from one client address allowed within
/// [`LIMIT_WINDOW`].
pub const MAX_FAILURES_PER_NAME_FROM_ADDR: usize = 5;
/// Failed logins for one user name from all addresses together allowed
/// within [`LIMIT_WINDOW`] (a guessing botnet; far above what one person does).
pub const MAX_FAILURES_PER_NAME: usize = 100;
/// Failed logins per client address allowed within [`LIMIT_WINDOW`].
pub const MAX_FAILURES_PER_ADDR: usize = 20;
/// The sliding window failed logins are counted in.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// Password hashes and checks running at once, at most (one per core).
const MAX_HASHING_SLOTS: usize = 8;
/// Password hashes and checks waiting for a slot before more are answered 503.
const HASHING_QUEUE: usize = 32;
/// Longest wait for a password-hashing slot.
const HASHING_MAX_WAIT: Duration = Duration::from_secs(10);
/// Counters kept before old ones are swept eagerly.
const MAX_TRACKED_KEYS: usize = 100_000;
/// How long a validated token is trusted without reading the database again.
/// Logout and unregister drop their tokens at once; this only bounds staleness.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);
/// Tokens cached at most; a full cache drops its stale entries, then all.
const TOKEN_CACHE_MAX: usize = 100_000;

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

/// Where a server keeps what a login token is checked against.
pub trait Sessions {
    /// The database holding sessions.
    fn store(&self) -> &Store;
    /// Recently validated tokens.
    fn tokens(&self) -> &TokenCache;
}

impl<S: Sessions + Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
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
        let now = now_ms();
        let cache = state.tokens();
        let user = match cache.get(&hash, now) {
            Some(user) => Some(user),
            None => {
                let generation = cache.generation();
                let found = state.store().session_user(&hash, now).await?;
                if let Some((user, expires_at)) = &found {
                    cache.insert(&hash, user, *expires_at, generation);
                }
                found.map(|(user, _)| user)
            }
        };
        match user {
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

/// Recently validated tokens (by hash) with their user, so most requests do
/// not read the session table. Entries live [`TOKEN_CACHE_TTL`] at most and
/// never past the session's expiry; [`TokenCache::forget_token`] and
/// [`TokenCache::forget_user`] drop them when a session or user is deleted.
#[derive(Debug, Default)]
pub struct TokenCache {
    inner: Mutex<TokenCacheInner>,
}

#[derive(Debug, Default)]
struct TokenCacheInner {
    entries: HashMap<String, CachedToken>,
    /// Bumped by every removal, so a lookup that raced one is not cached.
    generation: u64,
}

#[derive(Debug)]
struct CachedToken {
    user: User,
    expires_at_ms: i64,
    cached_at: Instant,
}

impl CachedToken {
    fn fresh(&self, now_ms: i64, now: Instant) -> bool {
        now_ms < self.expires_at_ms
            && now.saturating_duration_since(self.cached_at) < TOKEN_CACHE_TTL
    }
}

impl TokenCache {
    fn lock(&self) -> MutexGuard<'_, TokenCacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user of a cached, still valid token hash.
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<User> {
        let inner = self.lock();
        let entry = inner.entries.get(hash)?;
        entry
            .fresh(now_ms, Instant::now())
            .then(|| entry.user.clone())
    }

    /// The removal count to pass to [`TokenCache::insert`], read before the
    /// database lookup whose result is to be cached.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches a token found valid, unless a removal happened since `generation`.
    pub fn insert(&self, hash: &str, user: &User, expires_at_ms: i64, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= TOKEN_CACHE_MAX {
            let (now_ms, now) = (now_ms(), Instant::now());
            inner.entries.retain(|_, e| e.fresh(now_ms, now));
            if inner.entries.len() >= TOKEN_CACHE_MAX {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            hash.to_string(),
            CachedToken {
                user: user.clone(),
                expires_at_ms,
                cached_at: Instant::now(),
            },
        );
    }

    /// Drops one token (after its session was deleted).
    pub fn forget_token(&self, hash: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(hash);
    }

    /// Drops every token of a user (after the user was deleted).
    pub fn forget_user(&self, user_id: i64) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.retain(|_, e| e.user.id != user_id);
    }

    /// Drops entries that are no longer fresh.
    pub fn sweep(&self) {
        let (now_ms, now) = (now_ms(), Instant::now());
        self.lock().entries.retain(|_, e| e.fresh(now_ms, now));
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LimitKey {
    NameFrom(String, Option<IpAddr>),
    Name(String),
    Addr(IpAddr),
    Register(IpAddr),
}

impl LimitKey {
    /// Login attempts allowed under this key within [`LIMIT_WINDOW`].
    fn max(&self) -> usize {
        match self {
            Self::NameFrom(..) => MAX_FAILURES_PER_NAME_FROM_ADDR,
            Self::Name(_) => MAX_FAILURES_PER_NAME,
            Self::Addr(_) | Self::Register(_) => MAX_FAILURES_PER_ADDR,
        }
    }
}

/// A login attempt counted by [`LoginLimiter::begin`]: it stays counted as a
/// failure unless [`LoginLimiter::succeeded`] or [`LoginLimiter::not_tried`]
/// takes it back.
#[derive(Debug)]
#[must_use = "an attempt is a failure unless taken back"]
pub struct Attempt {
    keys: Vec<LimitKey>,
    at: Instant,
}

/// Counts login attempts per (user name, client address), per user name
/// and per client address, and registrations per client address, in a
/// sliding window of [`LIMIT_WINDOW`], and refuses further attempts once a
/// count is too high. An attempt is counted *before* its password is
/// checked, so concurrent guesses cannot pass the limit together. A guesser
/// at one address locks only that (name, address) pair; the per-name count
/// across all addresses has a much higher limit. It also holds the pool that
/// runs password hashing ([`LoginLimiter::hashing`]).
#[derive(Debug)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<LimitKey, VecDeque<Instant>>>,
    hashing: Gate,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            failures: Mutex::default(),
            hashing: Gate::new(
                "password checks",
                cores.clamp(2, MAX_HASHING_SLOTS),
                HASHING_QUEUE,
                HASHING_MAX_WAIT,
            ),
        }
    }
}

impl LoginLimiter {
    /// The pool every argon2 hash and check runs in: a few at once, a
    /// bounded line, 503 past it (each one holds ~19 MiB while it runs).
    pub fn hashing(&self) -> &Gate {
        &self.hashing
    }

    /// Counts a login attempt for `name` from `addr`, or refuses it (429)
    /// when that pair, that name or that address is at its limit.
    pub fn begin(&self, name: &str, addr: Option<IpAddr>) -> Result<Attempt, ApiError> {
        let now = Instant::now();
        let mut map = self.counters(now);
        let mut keys = vec![
            LimitKey::NameFrom(name.to_string(), addr),
            LimitKey::Name(name.to_string()),
        ];
        keys.extend(addr.map(LimitKey::Addr));
        let mut wait = None::<Duration>;
        for key in &keys {
            if let Some(times) = map.get_mut(key) {
                prune(times, now);
                let max = key.max();
                if times.len() >= max {
                    let oldest = times[times.len() - max];
                    let until = (oldest + LIMIT_WINDOW).saturating_duration_since(now);
                    wait = Some(wait.map_or(until, |w| w.max(until)));
                }
            }
        }
        if let Some(wait) = wait {
            let secs = wait.as_secs() + 1;
            return Err(ApiError::RateLimited {
                retry_after_secs: secs,
                message: format!(
                    "too many failed logins for this name from this address, or from this address; try again in {secs} seconds"
                ),
            });
        }
        for key in &keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
        Ok(Attempt { keys, at: now })
    }

    /// The counters, swept first when there are too many.
    fn counters(&self, now: Instant) -> MutexGuard<'_, HashMap<LimitKey, VecDeque<Instant>>> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_KEYS {
            map.retain(|_, times| {
                prune(times, now);
                !times.is_empty()
            });
        }
        map
    }

    /// Counts a registration from `addr`, or refuses it (429) when `max`
    /// registrations from there are already in the window. `max` 0 means no
    /// limit; an unknown address is not limited.
    pub fn register(&self, addr: Option<IpAddr>, max: usize) -> Result<(), ApiError> {
        let Some(addr) = addr.filter(|_| max > 0) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut map = self.counters(now);
        let times = map.entry(LimitKey::Register(addr)).or_default();
        prune(times, now);
        if times.len() >= max {
            let oldest = times[times.len() - max];
            let secs = (oldest + LIMIT_WINDOW)
                .saturating_duration_since(now)
                .as_secs()
                + 1;
            return Err(ApiError::RateLimited {
                retry_after_secs: secs,
                message: format!(
                    "too many registrations from this address (at most {max} a minute); try again in {secs} seconds"
                ),
            });
        }
        times.push_back(now);
        Ok(())
    }

    /// Takes back an attempt whose password was never checked (the index
    /// was too busy to check it).
    pub fn not_tried(&self, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in &attempt.keys {
            uncount(&mut map, key, attempt.at);
        }
    }

    /// A successful login: forgets the failures of this name from this
    /// address, and takes this attempt back from the other counts.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in &attempt.keys {
            if matches!(key, LimitKey::NameFrom(..)) {
                map.remove(key);
            } else {
                uncount(&mut map, key, attempt.at);
            }
        }
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

fn uncount(map: &mut HashMap<LimitKey, VecDeque<Instant>>, key: &LimitKey, at: Instant) {
    if let Some(times) = map.get_mut(key) {
        if let Some(i) = times.iter().rposition(|t| *t == at) {
            times.remove(i);
        }
        if times.is_empty() {
            map.remove(key);
        }
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
    fn limiter_counts_attempts_per_name_and_address() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        // Attempts count before they are checked: five in flight at once fill the limit.
        let attempts: Vec<Attempt> = (0..MAX_FAILURES_PER_NAME_FROM_ADDR)
            .map(|_| l.begin("bob", Some(ip)).unwrap())
            .collect();
        assert!(matches!(
            l.begin("bob", Some(ip)),
            Err(ApiError::RateLimited { .. })
        ));
        drop(attempts);
        // The guesser's address is locked out; bob at another address and
        // other names at this one are not.
        let real = l.begin("bob", Some(other)).unwrap();
        l.succeeded(real);
        assert!(l.begin("carol", Some(ip)).is_ok());
        // An attempt never checked is taken back.
        let busy = l.begin("dave", Some(other)).unwrap();
        l.not_tried(busy);
        assert!(!l
            .failures
            .lock()
            .unwrap()
            .contains_key(&LimitKey::NameFrom("dave".into(), Some(other))));
    }

    #[test]
    fn many_addresses_together_lock_a_name_at_a_higher_limit() {
        let l = LoginLimiter::default();
        for i in 0..MAX_FAILURES_PER_NAME {
            let ip = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1]);
            let _ = l.begin("bob", Some(ip)).unwrap();
        }
        let fresh: IpAddr = "192.168.7.7".parse().unwrap();
        assert!(matches!(
            l.begin("bob", Some(fresh)),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(l.begin("carol", Some(fresh)).is_ok());
    }

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("secret").unwrap();
        assert!(verify_password("secret", Some(&h)));
        assert!(!verify_password("wrong", Some(&h)));
        assert!(!verify_password("secret", None));
    }
}
