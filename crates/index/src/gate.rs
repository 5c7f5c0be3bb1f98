//! Admission control: at most a few requests of one kind (searches; joins and
//! publishes, which carry whole file lists) run at once, a bounded number
//! wait for a slot, and any more are answered at once with 503 and
//! `Retry-After` instead of queueing for seconds.
//!
//! A slot is an extractor ([`SearchSlot`], [`ListSlot`]) listed before the
//! body, so a request waits or is turned away before its body is read. This
//! module never queues without bound and never lets a waiter wait longer
//! than its gate's limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Admission of joins and publishes.
    fn list_gate(&self) -> &Gate;
}

/// A bounded number of slots and a bounded queue in front of them.
#[derive(Debug)]
pub struct Gate {
    what: &'static str,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// Counts one waiter for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate for `what` (named in the 503 message) with `slots` running at
    /// once, `max_waiting` waiting, each for at most `max_wait`.
    pub fn new(what: &'static str, slots: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            what,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// A slot, after waiting in line if the line is short; 503 otherwise.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if ahead >= self.max_waiting {
            return Err(self.busy());
        }
        match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(self.busy()),
        }
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

/// A running search's slot; extracting it waits for one or answers 503.
pub struct SearchSlot {
    _permit: OwnedSemaphorePermit,
}

impl<S: Admission + Send + Sync> FromRequestParts<S> for SearchSlot {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let _permit = state.search_gate().enter().await?;
        Ok(Self { _permit })
    }
}

/// A running join's or publish's slot (they carry whole file lists);
/// extracting it waits for one or answers 503.
pub struct ListSlot {
    _permit: OwnedSemaphorePermit,
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
}
