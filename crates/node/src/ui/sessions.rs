//! Who is logged in to the web UI: one-time login codes (printed by `up`,
//! minted for `peershare ui`) that become browser sessions, each with its
//! own CSRF token.
//!
//! Held in memory only, bounded in number: a daemon restart logs every
//! browser out, and `peershare ui` gives a fresh link. Codes and session ids
//! are kept only as their BLAKE3 hashes, so neither a memory dump nor the
//! timing of a lookup gives one away. This module never writes a secret to
//! disk or to the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a login code may wait to be used.
pub const CODE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a session lasts without being used.
pub const SESSION_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Login codes waiting at most; minting more forgets the oldest.
const MAX_CODES: usize = 16;
/// Sessions at most; opening more ends the least recently used.
const MAX_SESSIONS: usize = 64;

type Digest = [u8; 32];

/// The web UI's login codes and sessions, shared by every listener.
#[derive(Clone, Default)]
pub struct UiSessions {
    inner: Arc<Mutex<Sessions>>,
}

#[derive(Default)]
struct Sessions {
    codes: HashMap<Digest, Instant>,
    open: HashMap<Digest, Session>,
}

struct Session {
    csrf: String,
    last_used: Instant,
}

/// A session just opened: the cookie's value and the page's CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session cookie's value.
    pub id: String,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
}

impl UiSessions {
    /// Makes a one-time login code, valid for [`CODE_LIFETIME`].
    pub fn mint_code(&self) -> String {
        let code = random_secret();
        let mut s = self.lock();
        let now = Instant::now();
        s.codes
            .retain(|_, made| now.duration_since(*made) < CODE_LIFETIME);
        if s.codes.len() >= MAX_CODES {
            if let Some(oldest) = s
                .codes
                .iter()
                .min_by_key(|(_, made)| **made)
                .map(|(k, _)| *k)
            {
                s.codes.remove(&oldest);
            }
        }
        s.codes.insert(digest(&code), now);
        code
    }

    /// Uses up `code` and opens a session, or `None` when the code is unknown, used or expired.
    pub fn redeem(&self, code: &str) -> Option<NewSession> {
        let made = self.lock().codes.remove(&digest(code))?;
        (made.elapsed() < CODE_LIFETIME).then(|| self.open())
    }

    /// Opens a session (after a password was checked).
    pub fn open(&self) -> NewSession {
        let session = NewSession {
            id: random_secret(),
            csrf: random_secret(),
        };
        let mut s = self.lock();
        s.open
            .retain(|_, old| old.last_used.elapsed() < SESSION_IDLE);
        if s.open.len() >= MAX_SESSIONS {
            if let Some(stalest) = s
                .open
                .iter()
                .min_by_key(|(_, old)| old.last_used)
                .map(|(k, _)| *k)
            {
                s.open.remove(&stalest);
            }
        }
        s.open.insert(
            digest(&session.id),
            Session {
                csrf: session.csrf.clone(),
                last_used: Instant::now(),
            },
        );
        session
    }

    /// The CSRF token of the live session `id`, marking it used; `None` when there is none.
    pub fn touch(&self, id: &str) -> Option<String> {
        let mut s = self.lock();
        let key = digest(id);
        let session = s.open.get_mut(&key)?;
        if session.last_used.elapsed() >= SESSION_IDLE {
            s.open.remove(&key);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.csrf.clone())
    }

    /// Ends the session `id` (log out).
    pub fn end(&self, id: &str) {
        self.lock().open.remove(&digest(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // The maps stay consistent even if a holder panicked: every change is one insert or remove.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

fn digest(secret: &str) -> Digest {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_opens_one_session_once() {
        let sessions = UiSessions::default();
        let code = sessions.mint_code();
        let session = sessions.redeem(&code).expect("fresh code");
        assert!(sessions.redeem(&code).is_none(), "a code works once");
        assert_eq!(sessions.touch(&session.id), Some(session.csrf.clone()));
        sessions.end(&session.id);
        assert_eq!(sessions.touch(&session.id), None);
        assert!(sessions.redeem("not-a-code").is_none());
    }

    #[test]
    fn codes_and_sessions_are_bounded() {
        let sessions = UiSessions::default();
        let first = sessions.mint_code();
        for _ in 0..MAX_CODES {
            sessions.mint_code();
        }
        assert!(
            sessions.redeem(&first).is_none(),
            "the oldest code was forgotten"
        );
        let oldest = sessions.open();
        for _ in 0..MAX_SESSIONS {
            sessions.open();
        }
        assert_eq!(sessions.touch(&oldest.id), None);
        assert!(sessions.lock().open.len() <= MAX_SESSIONS);
    }
}
