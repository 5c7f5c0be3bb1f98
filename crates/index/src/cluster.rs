//! Several index processes on one PostgreSQL database keep their online
//! catalogues in step. Each write that changes what search finds (a join,
//! publish, unpublish, leave, a deleted account) carries a notice of what
//! changed, sent on one notification channel in the write's own
//! transaction (so it is heard exactly when the write commits); a
//! timed-out peer coming back is announced on its own. On a notice, every
//! other process reloads that peer (or drops that user's peers) from the
//! database. When the listening connection is lost, every online peer is reloaded once it is back, so a
//! missed notification costs at most that. Peers whose heartbeats reach
//! another process are not timed out here: the timeout check asks the
//! database for their last heartbeat first ([`refresh_stale`]).
//!
//! A notification carries only a peer id, a file id or a user name to look
//! up; what is applied always comes from the database. On SQLite (one
//! process) announcing does nothing and nothing listens.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::search::{self, catalogue::Catalogue};
use crate::state::AppState;
use crate::store::{now_ms, Notice, Store};

/// The notification channel the index processes share.
pub const CHANNEL: &str = "peershare_catalogue";
/// Pause before listening again after the connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// What changed, as announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// The peer joined, published, left or came back: reload it.
    Peer(&'a str),
    /// The peer no longer lists this file id.
    Unpublished(&'a str, &'a str),
    /// The user's account is gone, with its peers.
    UserGone(&'a str),
}

/// This process's voice on the channel.
#[derive(Clone, Debug)]
pub struct Cluster {
    store: Store,
    origin: String,
}

impl Cluster {
    /// Announces through `store`, signed with a random process tag so a
    /// process skips its own notifications.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            origin: hex::encode(rand::random::<[u8; 8]>()),
        }
    }

    /// The notice of `change`, for a write to carry: the other processes
    /// hear of it when, and only when, that write commits.
    pub fn notice(&self, change: Change<'_>) -> Notice {
        let payload = match change {
            Change::Peer(peer) => format!("{} peer {peer}", self.origin),
            Change::Unpublished(peer, file) => format!("{} unpublished {peer} {file}", self.origin),
            Change::UserGone(user) => format!("{} user {user}", self.origin),
        };
        Notice {
            channel: CHANNEL,
            payload,
        }
    }

    /// Tells the other processes of a change made without a write of its
    /// own (a timed-out peer back in search); failures are logged: the
    /// others catch up at their next reload of that peer.
    pub async fn announce(&self, change: Change<'_>) {
        let notice = self.notice(change);
        if let Err(e) = self.store.notify(notice.channel, &notice.payload).await {
            tracing::warn!("cannot tell the other index processes about a change: {e}");
        }
    }
}

/// Follows the other processes' announcements until `stop` (PostgreSQL
/// only; returns at once on SQLite).
pub async fn follow(state: AppState, mut stop: watch::Receiver<bool>) {
    let Some(pool) = state.store().postgres_pool().cloned() else {
        return;
    };
    let own = format!("{} ", state.cluster().origin);
    let mut first = true;
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            l = listening => l,
            _ = stop.wait_for(|s| *s) => return,
        };
        match &mut listener {
            Ok(listener) => {
                // Anything missed while not listening is in the database.
                if !first {
                    if let Err(e) = reload_all(&state).await {
                        tracing::warn!("cannot reload the online peers: {e}");
                    }
                }
                loop {
                    let next = tokio::select! {
                        n = listener.try_recv() => n,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    match next {
                        // Our own announcements are applied already.
                        Ok(Some(note)) if note.payload().starts_with(&own) => {}
                        Ok(Some(note)) => {
                            if let Err(e) = apply(&state, note.payload()).await {
                                tracing::warn!(
                                    "cannot apply a change from another index process: {e}"
                                );
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!("lost the notification channel: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot listen for the other index processes: {e}"),
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(RELISTEN_AFTER) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Applies one announcement of another process.
async fn apply(state: &AppState, payload: &str) -> Result<(), crate::error::ApiError> {
    let mut words = payload.split(' ').skip(1);
    match (words.next(), words.next(), words.next()) {
        (Some("peer"), Some(peer), None) => reload_peer(state, peer).await,
        (Some("unpublished"), Some(peer), Some(file)) => {
            state.catalogue().unpublish(peer, file);
            Ok(())
        }
        (Some("user"), Some(user), None) => {
            state.catalogue().remove_user(user);
            Ok(())
        }
        _ => {
            tracing::debug!("ignoring an unknown announcement: {payload:?}");
            Ok(())
        }
    }
}

/// Makes the catalogue's view of one peer what the database says.
pub async fn reload_peer(state: &AppState, peer_id: &str) -> Result<(), crate::error::ApiError> {
    let cutoff = state.online_cutoff(now_ms());
    match state.store().peer_with_user(peer_id).await? {
        Some((user, peer)) if peer.online(cutoff) => {
            let files = state.store().peer_files(peer_id).await?;
            let online = search::online_peer(&user, &peer);
            search::searchable(state.catalogue().join(online, &files)).await
        }
        _ => {
            state.catalogue().remove_peer(peer_id);
            Ok(())
        }
    }
}

/// Reloads every online peer and drops the ones no longer online.
async fn reload_all(state: &AppState) -> Result<(), crate::error::ApiError> {
    let cutoff = state.online_cutoff(now_ms());
    let online = state.store().online_peers(cutoff).await?;
    let keep: HashSet<&str> = online.iter().map(|(_, p)| p.peer_id.as_str()).collect();
    for peer_id in state.catalogue().peer_ids() {
        if !keep.contains(peer_id.as_str()) {
            state.catalogue().remove_peer(&peer_id);
        }
    }
    search::load_online(state.store(), state.catalogue(), cutoff).await?;
    Ok(())
}

/// Before the catalogue times out peers last seen before `cutoff`, takes
/// their last heartbeat from the database: it may have reached another
/// index process.
pub async fn refresh_stale(store: &Store, catalogue: &Catalogue, cutoff: i64) {
    let stale = catalogue.stale_peers(cutoff);
    if stale.is_empty() {
        return;
    }
    match store.last_seen_of(&stale).await {
        Ok(seen) => {
            for (peer_id, last_seen) in seen {
                catalogue.heartbeat(&peer_id, last_seen);
            }
        }
        Err(e) => tracing::warn!(
            "cannot read the last heartbeats of {} peers: {e}",
            stale.len()
        ),
    }
}
