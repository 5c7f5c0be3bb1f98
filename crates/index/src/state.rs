//! What every handler can reach: the store, the online catalogue, the
//! heartbeat line, the settings, the login
//! limiter and token cache, the audit log writer, the admission gates and
//! the status board, bundled once per server.
//!
//! It holds no handler and no route; the modules it bundles never import
//! it (they name what they need through small traits it implements).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use crate::admin::AdminNames;
use crate::audit::Audit;
use crate::auth::{LoginLimiter, Sessions, TokenCache};
use crate::cluster::Cluster;
use crate::config::IndexConfig;
use crate::gate::{Admission, Gate, KeyedGates};
use crate::heartbeats::HeartbeatLine;
use crate::search::catalogue::Catalogue;
use crate::status_page::StatusBoard;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Store,
    config: IndexConfig,
    limiter: LoginLimiter,
    admins: AdminNames,
    tokens: TokenCache,
    audit: Audit,
    search_gate: Gate,
    search_user_gates: KeyedGates,
    search_address_gates: KeyedGates,
    list_gate: Gate,
    status: StatusBoard,
    catalogue: Arc<Catalogue>,
    heartbeats: HeartbeatLine,
    cluster: Cluster,
}

/// Joins and publishes (whole file lists) handled at once.
const LIST_SLOTS: usize = 8;
/// Joins and publishes waiting for a slot before more are answered 503.
const LIST_QUEUE: usize = 32;
/// Longest wait for a join or publish slot.
const LIST_MAX_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for a search slot.
const SEARCH_MAX_WAIT: Duration = Duration::from_secs(2);

impl AppState {
    /// Bundles the parts handlers need.
    pub fn new(
        store: Store,
        config: IndexConfig,
        audit: Audit,
        catalogue: Arc<Catalogue>,
        heartbeats: HeartbeatLine,
    ) -> Self {
        let search_gate = Gate::new(
            "searches",
            config.search_slots as usize,
            config.search_queue as usize,
            SEARCH_MAX_WAIT,
        );
        // A user's or an address's own searches beyond its share wait in its own line.
        let search_user_gates = KeyedGates::new(
            "searches from your account",
            config.searches_per_user as usize,
            config.search_queue as usize,
            SEARCH_MAX_WAIT,
        );
        let search_address_gates = KeyedGates::new(
            "searches from your address",
            config.searches_per_address as usize,
            config.search_queue as usize,
            SEARCH_MAX_WAIT,
        );
        let status = StatusBoard::new(catalogue.clone());
        let admins = AdminNames::start(&config.admins, &store);
        let cluster = Cluster::new(store.clone());
        Self {
            inner: Arc::new(StateInner {
                store,
                config,
                limiter: LoginLimiter::default(),
                admins,
                tokens: TokenCache::default(),
                audit,
                search_gate,
                search_user_gates,
                search_address_gates,
                list_gate: Gate::new("joins and publishes", LIST_SLOTS, LIST_QUEUE, LIST_MAX_WAIT),
                status,
                catalogue,
                heartbeats,
                cluster,
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings the index runs with.
    pub fn config(&self) -> &IndexConfig {
        &self.inner.config
    }

    /// The failed-login counters.
    pub fn limiter(&self) -> &LoginLimiter {
        &self.inner.limiter
    }

    /// The configured admin names and the accounts they are bound to.
    pub fn admins(&self) -> &AdminNames {
        &self.inner.admins
    }

    /// Recently validated login tokens.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// Admission of searches.
    pub fn search_gate(&self) -> &Gate {
        &self.inner.search_gate
    }

    /// Admission of joins and publishes.
    pub fn list_gate(&self) -> &Gate {
        &self.inner.list_gate
    }

    /// The audit log writer.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// The public figures (users and peers online, files listed, uptime).
    pub fn status(&self) -> &StatusBoard {
        &self.inner.status
    }

    /// The online peers and their files, as search sees them.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.inner.catalogue
    }

    /// The line heartbeats are group-committed through.
    pub fn heartbeats(&self) -> &HeartbeatLine {
        &self.inner.heartbeats
    }

    /// How this process tells the others on one PostgreSQL database.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The oldest `last_seen` (ms) that still counts as online at `now`.
    pub fn online_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(crate::store::ms(self.inner.config.peer_timeout))
    }
}

impl Sessions for AppState {
    fn store(&self) -> &Store {
        AppState::store(self)
    }

    fn tokens(&self) -> &TokenCache {
        AppState::tokens(self)
    }
}

impl FromRef<AppState> for StatusBoard {
    fn from_ref(state: &AppState) -> Self {
        state.status().clone()
    }
}

impl Admission for AppState {
    fn search_gate(&self) -> &Gate {
        AppState::search_gate(self)
    }

    fn search_user_gates(&self) -> &KeyedGates {
        &self.inner.search_user_gates
    }

    fn search_address_gates(&self) -> &KeyedGates {
        &self.inner.search_address_gates
    }

    fn list_gate(&self) -> &Gate {
        AppState::list_gate(self)
    }
}
