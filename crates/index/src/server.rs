//! Running the index: open the store, fill the search catalogue from it,
//! bind the socket, serve the router (over TLS when a certificate is
//! configured) beside its background tasks (the sweeper of expired tokens,
//! challenges and letters; the check that takes silent peers out of search;
//! the heartbeat writer; on PostgreSQL the follower of other index
//! processes; the catalogue's indexer thread), and stop cleanly (in-flight
//! requests finish, the tasks end on the stop signal, queued heartbeats and
//! the audit queue are written, the indexer commits, the database is
//! closed) when asked.
//!
//! This module owns the process-level lifecycle only; it never handles a
//! request itself.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::response::IntoResponse;
use axum::serve::{IncomingStream, Listener};
use peershare_core::conn_limit::{ConnLimits, Limited, Tcp};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::audit::Audit;
use crate::config::IndexConfig;
use crate::error::IndexError;
use crate::extract::RemoteAddr;
use crate::heartbeats::HeartbeatLine;
use crate::search::catalogue::Catalogue;
use crate::state::AppState;
use crate::store::{now_ms, Store};
use crate::tls::{self, TlsListener};

/// How often expired sessions, challenges, letters and login counters are swept, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Peers whose heartbeats stopped are looked for at most this often…
const TIMEOUT_CHECK_MIN: Duration = Duration::from_millis(100);
/// …and at least this often (a quarter of the peer timeout in between), so
/// a timed-out peer leaves search results well within one heartbeat.
const TIMEOUT_CHECK_MAX: Duration = Duration::from_secs(1);
/// The index may use a quarter of the process's file descriptors for
/// connections (it may share them with a daemon's listeners).
const FD_SHARE: u64 = 4;

/// The file in the index's data folder holding its instance secret (32
/// random bytes, hex). Only this machine's user can read it; a daemon that
/// finds the index port taken asks the index there to prove it knows the
/// secret ([`INSTANCE_PROOF_PATH`]) before sending it any password.
pub const INSTANCE_SECRET_FILE: &str = "instance-secret";
/// `GET INSTANCE_PROOF_PATH?nonce=TEXT` answers `{"proof": HEX}`, the
/// BLAKE3 keyed hash of the nonce under the instance secret.
pub const INSTANCE_PROOF_PATH: &str = "/api/v1/instance-proof";
/// The longest nonce answered.
const MAX_NONCE: usize = 128;

/// The proof an index with `secret` gives for `nonce`.
pub fn instance_proof(secret: &[u8; 32], nonce: &str) -> String {
    blake3::keyed_hash(secret, nonce.as_bytes())
        .to_hex()
        .to_string()
}

/// Reads the instance secret in `data_dir`, if there is a valid one.
pub fn read_instance_secret(data_dir: &Path) -> Option<[u8; 32]> {
    let text = std::fs::read_to_string(data_dir.join(INSTANCE_SECRET_FILE)).ok()?;
    blake3::Hash::from_hex(text.trim())
        .ok()
        .map(|h| *h.as_bytes())
}

/// The instance secret in `data_dir`, created (readable by this user only) when missing.
fn load_or_create_instance_secret(data_dir: &Path) -> Result<[u8; 32], IndexError> {
    if let Some(secret) = read_instance_secret(data_dir) {
        return Ok(secret);
    }
    let secret: [u8; 32] = rand::random();
    let path = data_dir.join(INSTANCE_SECRET_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&path).and_then(|mut f| {
        std::io::Write::write_all(&mut f, hex::encode(secret).as_bytes())?;
        f.sync_all()
    });
    written.map_err(|source| IndexError::DataDir { path, source })?;
    Ok(secret)
}

/// Adds the instance-proof endpoint to `app`.
fn with_instance_proof(app: axum::Router, secret: [u8; 32]) -> axum::Router {
    use axum::extract::Query;
    use std::collections::HashMap;
    app.route(
        INSTANCE_PROOF_PATH,
        axum::routing::get(move |Query(q): Query<HashMap<String, String>>| async move {
            match q
                .get("nonce")
                .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE)
            {
                Some(nonce) => axum::Json(serde_json::json!({
                    "proof": instance_proof(&secret, nonce)
                }))
                .into_response(),
                None => (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({
                        "error": "bad_request",
                        "message": format!("give a nonce of 1 to {MAX_NONCE} characters")
                    })),
                )
                    .into_response(),
            }
        }),
    )
}

/// A running index; stop it with [`RunningIndex::stop`].
#[derive(Debug)]
pub struct RunningIndex {
    addr: SocketAddr,
    scheme: &'static str,
    shutdown: ShutdownHandle,
    task: JoinHandle<()>,
}

/// Asks a running index to stop; cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Starts a graceful stop (returns at once).
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

impl RunningIndex {
    /// The address the index listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:1099` (`https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// A handle that stops the index from elsewhere (e.g. a Ctrl-C handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Stops the index and returns once everything is written and closed.
    pub async fn stop(self) {
        self.shutdown.shutdown();
        self.wait().await;
    }

    /// Returns once the index has stopped (after a [`ShutdownHandle::shutdown`]).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!("index task failed: {e}");
        }
    }
}

/// Opens the database (the SQLite file in `config.data_dir`, or the
/// PostgreSQL database of `config.database`), binds `config.listen` and serves
/// the API in a background task (HTTPS when `tls_cert` and `tls_key` are set).
pub async fn start(config: IndexConfig) -> Result<RunningIndex, IndexError> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        (None, None) => None,
        _ => return Err(IndexError::TlsHalfConfigured),
    };
    let location = config
        .store_location()
        .map_err(IndexError::DatabaseSetting)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| IndexError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let secret = load_or_create_instance_secret(&config.data_dir)?;
    let store = Store::connect(&location, config.search_slots.max(1)).await?;
    let catalogue = match load_catalogue(&store, &config).await {
        Ok(catalogue) => catalogue,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(source) => {
            store.close().await;
            return Err(IndexError::Bind {
                addr: config.listen,
                source,
            });
        }
    };
    let addr = listener.local_addr().map_err(|source| IndexError::Bind {
        addr: config.listen,
        source,
    })?;
    let (audit, audit_task) = Audit::spawn(
        store.clone(),
        crate::audit::retention_days(config.audit_retention_days),
    );
    let sweep_every = config
        .peer_timeout
        .clamp(Duration::from_secs(1), SWEEP_EVERY);
    let timeout_every = (config.peer_timeout / 4).clamp(TIMEOUT_CHECK_MIN, TIMEOUT_CHECK_MAX);
    let (heartbeats, heartbeat_task) = HeartbeatLine::start(store.clone());
    let state = AppState::new(store.clone(), config, audit, catalogue.clone(), heartbeats);
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = with_instance_proof(api::router(state.clone()), secret);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("index listening on {scheme}://{addr}, data in {location}");

    // Caps on connections (in total and per address) and idle timeouts, so
    // idle sockets or a slowloris cannot use up the descriptors.
    let limits = ConnLimits::budgeted(FD_SHARE);
    let task = tokio::spawn(async move {
        let sweeper = tokio::spawn(sweep(state.clone(), sweep_every, stop_rx.clone()));
        let follower = tokio::spawn(crate::cluster::follow(state.clone(), stop_rx.clone()));
        let timeouts = tokio::spawn(time_out_peers(state, timeout_every, stop_rx.clone()));
        let served = match tls {
            Some(tls) => match TlsListener::with_limits(listener, tls, limits) {
                Ok(listener) => serve(listener, app, stop_rx).await,
                Err(e) => Err(e),
            },
            None => serve(Limited::new(Tcp::new(listener), limits), app, stop_rx).await,
        };
        if let Err(e) = served {
            tracing::error!("index server stopped: {e}");
        }
        let _ = sweeper.await;
        let _ = timeouts.await;
        let _ = follower.await;
        // Every sender is gone with the router and the tasks above.
        let _ = heartbeat_task.await;
        tokio::task::spawn_blocking(move || catalogue.close())
            .await
            .ok();
        let _ = audit_task.await;
        store.close().await;
        tracing::info!("index on {addr} stopped");
    });
    Ok(RunningIndex {
        addr,
        scheme,
        shutdown: ShutdownHandle(stop_tx),
        task,
    })
}

/// Serves `app` on `listener` until `stop` turns true, then lets requests finish.
async fn serve<L>(
    listener: L,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    for<'a> RemoteAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<RemoteAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|stop| *stop).await;
    })
    .await
}

impl Connected<IncomingStream<'_, Limited<Tcp>>> for RemoteAddr {
    fn connect_info(stream: IncomingStream<'_, Limited<Tcp>>) -> Self {
        Self(*stream.remote_addr())
    }
}

async fn sweep(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = ticker.tick() => false,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => true,
        };
        if stopped {
            break;
        }
        if let Err(e) = state.store().purge_expired(now_ms()).await {
            tracing::warn!("cannot purge expired sessions, challenges and letters: {e}");
        }
        state.limiter().sweep();
        state.tokens().sweep();
    }
}

/// Opens the online catalogue in `<data_dir>/search` and fills it from the
/// store's online peers.
async fn load_catalogue(store: &Store, config: &IndexConfig) -> Result<Arc<Catalogue>, IndexError> {
    let folder = config.data_dir.join("search");
    let catalogue = tokio::task::spawn_blocking({
        let budget = config.max_files;
        move || Catalogue::open(&folder, budget)
    })
    .await
    .map_err(|e| IndexError::Search(e.to_string()))?
    .map_err(|e| IndexError::Search(e.to_string()))?;
    let catalogue = Arc::new(catalogue);
    let began = std::time::Instant::now();
    let cutoff = now_ms().saturating_sub(crate::store::ms(config.peer_timeout));
    let loaded = crate::search::load_online(store, &catalogue, cutoff)
        .await
        .map_err(|e| IndexError::Search(e.to_string()))?;
    if loaded > 0 {
        tracing::info!(
            "search catalogue rebuilt: {loaded} online peers in {:.1} s",
            began.elapsed().as_secs_f64()
        );
    }
    Ok(catalogue)
}

/// Takes peers whose heartbeats stopped out of search, every `every`.
async fn time_out_peers(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let cutoff = state.online_cutoff(now_ms());
        crate::cluster::refresh_stale(state.store(), state.catalogue(), cutoff).await;
        let (gone, _) = state.catalogue().sweep(cutoff);
        if !gone.is_empty() {
            tracing::debug!("{} peers timed out", gone.len());
        }
    }
}
