//! Admission control: at most a few requests of one kind (searches; joins and
//! publishes, which carry whole file lists) run at once, a bounded number
//! wait for a slot, and any more are answered at once with 503 and
//! `Retry-After` instead of queueing for seconds.
//!
//! A slot is an extractor ([`SearchSlot`], [`ListSlot`]) listed before the
//! body, so a request waits or is turned away before its body is read. This
//! module never queues without bound and never lets a waiter wait longer
//! than its gate's limit.
//!
//! Searches also pass per-key gates first ([`KeyedGates`]: one per user, one
//! per client address), so one user's loop of searches queues behind
//! itself and holds at most a few places of the shared gate, instead of
//! filling it for everyone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// What a client is told to wait before retrying a turned-away request, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Where a server keeps its gates.
pub trait Admission {
    /// Admission of searches.
    fn search_gate(&self) -> &Gate;
    /// Searches of one user, before [`Admission::search_gate`].
    fn search_user_gates(&self) -> &KeyedGates;
    /// Searches from one client address, before [`Admission::search_gate`].
    fn search_address_gates(&self) -> &KeyedGates;
    /// Admission of joins and publishes.
    fn list_gate(&self) -> &Gate;
}

/// A bounded number of slots and a bounded queue in front of them.
#[derive(Debug)]
pub struct Gate {
    what: &'static str,
    slots: Arc<Semaphore>,
    /// Requests running or waiting. Counted from entry until the request
    /// is done, not until its slot is handed over: a waiter that was just
    /// handed a slot but not yet woken still holds its place, so the line
    /// never looks longer than it is.
    places: Arc<AtomicUsize>,
    max_places: usize,
    max_wait: Duration,
}

/// One place in a [`Gate`], given back when dropped.
#[derive(Debug)]
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slot of a [`Gate`], held while the request runs.
#[derive(Debug)]
pub struct GatePermit {
    // The place goes first, so a request arriving as this one ends finds
    // room in line and then the slot.
    _place: Place,
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    /// A gate for `what` (named in the 503 message) with `slots` running at
    /// once, `max_waiting` waiting, each for at most `max_wait`.
    pub fn new(what: &'static str, slots: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            what,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            places: Arc::default(),
            max_places: slots.max(1).saturating_add(max_waiting),
            max_wait,
        }
    }

    /// A slot, after waiting in line if the line is short; 503 otherwise.
    pub async fn enter(&self) -> Result<GatePermit, ApiError> {
        let taken = self.places.fetch_add(1, Ordering::AcqRel);
        let place = Place(self.places.clone());
        if taken >= self.max_places {
            return Err(self.busy());
        }
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await
                {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(self.busy()),
                }
            }
        };
        Ok(GatePermit {
            _place: place,
            _permit: permit,
        })
    }

    fn busy(&self) -> ApiError {
        ApiError::Busy {
            retry_after_secs: RETRY_AFTER_SECS,
            message: format!(
                "the index is busy with other {}; retry in {RETRY_AFTER_SECS} second(s)",
                self.what
            ),
        }
    }
}

/// Keys (users, client addresses) with a search running or waiting, at
/// most, per [`KeyedGates`]; past that, searches of new keys are answered 503.
pub const MAX_KEYS: usize = 4096;

/// One small [`Gate`] per key (a user, a client address), created on first
/// use and dropped once nothing runs or waits under it, so the map holds at
/// most the keys busy right now (and never more than [`MAX_KEYS`]).
#[derive(Debug)]
pub struct KeyedGates {
    what: &'static str,
    per_key: usize,
    max_waiting: usize,
    max_wait: Duration,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

/// A place under one key's gate; dropping it frees the place and, when it
/// was the last one, the key's entry.
pub struct KeyPermit {
    // Dropped first: the place is freed before the entry is looked at.
    _permit: GatePermit,
    _held: Held,
}

/// Keeps a key's gate in the map while it lives.
struct Held {
    key: String,
    gate: Arc<Gate>,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        // Clones are only made under this lock: the map's and ours are the last.
        if Arc::strong_count(&self.gate) == 2 {
            gates.remove(&self.key);
        }
    }
}

impl KeyedGates {
    /// Gates for `what` (named in the 503 message), `per_key` running at
    /// once per key and `max_waiting` waiting per key, each for at most `max_wait`.
    pub fn new(what: &'static str, per_key: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            what,
            per_key: per_key.max(1),
            max_waiting,
            max_wait,
            gates: Arc::default(),
        }
    }

    /// A place under `key`'s gate, after waiting behind the key's own
    /// requests if their line is short; 503 otherwise.
    pub async fn enter(&self, key: &str) -> Result<KeyPermit, ApiError> {
        let held = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            let gate = match gates.get(key) {
                Some(gate) => gate.clone(),
                None if gates.len() >= MAX_KEYS => {
                    return Err(Gate::new(self.what, 1, 0, self.max_wait).busy())
                }
                None => {
                    let gate = Arc::new(Gate::new(
                        self.what,
                        self.per_key,
                        self.max_waiting,
                        self.max_wait,
                    ));
                    gates.insert(key.to_string(), gate.clone());
                    gate
                }
            };
            Held {
                key: key.to_string(),
                gate,
                gates: self.gates.clone(),
            }
        };
        let permit = held.gate.enter().await?;
        Ok(KeyPermit {
            _permit: permit,
            _held: held,
        })
    }

    /// Keys with a request running or waiting.
    pub fn keys(&self) -> usize {
        self.gates.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The key of a client address: the address itself for IPv4, its /64
/// network for IPv6 (one host usually holds a whole /64).
pub fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6.to_canonical().to_string(),
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    }
}

/// A running search's places: under its user's gate, its address's gate
/// and the shared search gate, taken in that order (so a user's own loop
/// waits behind itself before it reaches the shared line).
pub struct SearchSlot {
    _shared: GatePermit,
    _address: KeyPermit,
    _user: KeyPermit,
}

impl SearchSlot {
    /// Waits for the places of a search by `user` from `client`, or answers 503.
    pub async fn enter<S: Admission>(
        state: &S,
        user: &str,
        client: Option<IpAddr>,
    ) -> Result<Self, ApiError> {
        let _user = state.search_user_gates().enter(user).await?;
        let _address = state
            .search_address_gates()
            .enter(&address_key(client))
            .await?;
        let _shared = state.search_gate().enter().await?;
        Ok(Self {
            _shared,
            _address,
            _user,
        })
    }
}

/// A running join's or publish's slot (they carry whole file lists);
/// extracting it waits for one or answers 503.
pub struct ListSlot {
    _permit: GatePermit,
}

impl<S: Admission + Send + Sync> FromRequestParts<S> for ListSlot {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let _permit = state.list_gate().enter().await?;
        Ok(Self { _permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_line_is_turned_away_and_slots_come_back() {
        let gate = Gate::new("tests", 1, 0, Duration::from_secs(60));
        let first = gate.enter().await.unwrap();
        assert!(matches!(gate.enter().await, Err(ApiError::Busy { .. })));
        drop(first);
        assert!(gate.enter().await.is_ok());
    }

    #[tokio::test]
    async fn keyed_gates_limit_each_key_and_forget_idle_keys() {
        let gates = KeyedGates::new("tests", 1, 0, Duration::from_secs(60));
        let a = gates.enter("a").await.unwrap();
        assert!(matches!(gates.enter("a").await, Err(ApiError::Busy { .. })));
        let b = gates.enter("b").await.unwrap();
        assert_eq!(gates.keys(), 2);
        drop(a);
        assert_eq!(gates.keys(), 1);
        let again = gates.enter("a").await.unwrap();
        drop((again, b));
        assert_eq!(gates.keys(), 0);
    }

    #[test]
    fn ipv6_addresses_are_keyed_by_their_64_bit_network() {
        let key = |s: &str| address_key(Some(s.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(key("10.0.0.1"), "10.0.0.1");
    }
}
