//! The web UI's password, required when the UI listens beyond loopback
//! (`up --ui-listen`): an argon2id hash in the data folder's `ui-password`,
//! set with `peershare ui --set-password`.
//!
//! Every attempt is counted before it is checked, and at most one hash is
//! computed at a time with a short queue, so a burst of guesses neither gets
//! more tries than the limit nor eats the machine's memory. Failures are
//! counted per client address: a guesser locks out only itself. The clear
//! password is never stored or logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::NodeError;

/// The password file's name inside the data folder.
pub const PASSWORD_FILE: &str = "ui-password";
/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// Failed attempts per client address within [`LOCKOUT`] before it must wait.
const MAX_FAILURES: u32 = 5;
/// How long failures are remembered.
const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Attempts waiting for the hasher at most; more are told to retry.
const MAX_WAITING: usize = 8;
/// Addresses whose failures are remembered at most.
const MAX_TRACKED: usize = 4096;

/// Stores `password`'s hash in `data_dir`, replacing any earlier one.
pub fn set_password(data_dir: &Path, password: &str) -> Result<(), NodeError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(NodeError::BadRequest(format!(
            "the UI password must have at least {MIN_LENGTH} characters"
        )));
    }
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| NodeError::BadRequest(format!("cannot hash the password: {e}")))?;
    crate::private_file::write_private(&data_dir.join(PASSWORD_FILE), hash.to_string().as_bytes())?;
    Ok(())
}

/// Removes the UI password.
pub fn clear_password(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(PASSWORD_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether a UI password is set in `data_dir`.
pub fn is_set(data_dir: &Path) -> bool {
    stored_hash(&data_dir.join(PASSWORD_FILE)).is_some()
}

fn stored_hash(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    PasswordHash::new(text).ok().map(|_| text.to_string())
}

/// Why a password was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No password is set, so password login is off.
    NotSet,
    /// The password is wrong.
    Wrong,
    /// Too many failures from this address; retry after the given time.
    LockedOut(Duration),
    /// Too many attempts are being checked right now.
    Busy,
}

/// Checks passwords against the stored hash, paced and counted per address.
#[derive(Clone)]
pub struct PasswordCheck {
    path: PathBuf,
    hashing: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    failures: Arc<Mutex<HashMap<IpAddr, Failures>>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

impl PasswordCheck {
    /// Checks against the password kept in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(PASSWORD_FILE),
            hashing: Arc::new(Semaphore::new(1)),
            queued: Arc::default(),
            failures: Arc::default(),
        }
    }

    /// Whether password login is possible.
    pub fn is_set(&self) -> bool {
        stored_hash(&self.path).is_some()
    }

    /// Verifies `password` from `client`.
    pub async fn verify(&self, client: IpAddr, password: &str) -> Result<(), Refusal> {
        let hash = stored_hash(&self.path).ok_or(Refusal::NotSet)?;
        // Counted before the check, so concurrent guesses cannot exceed the limit.
        self.count_attempt(client)?;
        if self.queued.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.uncount_attempt(client);
            return Err(Refusal::Busy);
        }
        let permit = self.hashing.acquire().await;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| Refusal::Busy)?;
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if matches {
            self.lock_failures().remove(&client);
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        // Each change is a single map operation, so a panicked holder leaves it consistent.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_attempt(&self, client: IpAddr) -> Result<(), Refusal> {
        let mut failures = self.lock_failures();
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| now.duration_since(f.first) < LOCKOUT);
        }
        if failures.len() >= MAX_TRACKED {
            return Err(Refusal::Busy);
        }
        let entry = failures.entry(client).or_insert(Failures {
            count: 0,
            first: now,
        });
        if now.duration_since(entry.first) >= LOCKOUT {
            *entry = Failures {
                count: 0,
                first: now,
            };
        }
        if entry.count >= MAX_FAILURES {
            return Err(Refusal::LockedOut(
                LOCKOUT - now.duration_since(entry.first),
            ));
        }
        entry.count += 1;
        Ok(())
    }

    fn uncount_attempt(&self, client: IpAddr) {
        if let Some(entry) = self.lock_failures().get_mut(&client) {
            entry.count = entry.count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_guesses_get_no_more_tries_than_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        assert!(set_password(dir.path(), "short").is_err());
        set_password(dir.path(), "correct horse battery").unwrap();
        let check = PasswordCheck::new(dir.path());
        let guesser: IpAddr = "10.0.0.9".parse().unwrap();
        let guesses = (0..32).map(|i| {
            let check = check.clone();
            tokio::spawn(async move { check.verify(guesser, &format!("guess {i}")).await })
        });
        let mut wrong = 0;
        for guess in guesses {
            match guess.await.unwrap() {
                Err(Refusal::Wrong) => wrong += 1,
                Err(Refusal::LockedOut(_) | Refusal::Busy) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(wrong <= MAX_FAILURES, "{wrong} guesses were checked");
        assert!(matches!(
            check.verify(guesser, "correct horse battery").await,
            Err(Refusal::LockedOut(_))
        ));
        let owner: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check.verify(owner, "correct horse battery").await, Ok(()));
        clear_password(dir.path()).unwrap();
        assert_eq!(
            check.verify(owner, "correct horse battery").await,
            Err(Refusal::NotSet)
        );
    }
}
