//! The peers known at the last run, kept in `peer.db` and used as extra
//! bootstrap peers at the next start, so a peer that comes back finds the
//! DHT again even when the peers it was first told about are gone (a
//! recipient collecting its letters, a downloader resuming).
//!
//! It keeps the most recently seen peers with addresses, a bounded number,
//! saved every few minutes and at shutdown; it never trusts them for more
//! than a first dial.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use sqlx::Row;

use crate::net::host::Host;
use crate::store::Store;
use crate::{now_ms, NodeError};

/// Peers remembered at most.
const MAX_REMEMBERED: usize = 64;
/// Addresses remembered per peer at most.
const ADDRS_PER_PEER: usize = 4;
/// How often the remembered peers are saved.
const SAVE_EVERY: Duration = Duration::from_secs(120);

/// Dials the peers remembered from the last run and enters the DHT through them.
pub async fn rejoin(host: &Host, store: &Store) -> Result<usize, NodeError> {
    let rows = sqlx::query("SELECT peer_id, addrs FROM remembered_peers")
        .fetch_all(store.pool())
        .await?;
    let mut full = Vec::new();
    for row in &rows {
        let Ok(peer) = row.get::<&str, _>(0).parse::<PeerId>() else {
            continue;
        };
        let addrs: Vec<String> = serde_json::from_str(row.get(1)).unwrap_or_default();
        full.extend(
            addrs
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .map(|a| a.with(Protocol::P2p(peer))),
        );
    }
    if !full.is_empty() {
        host.add_dht_peers(full).await?;
    }
    Ok(rows.len())
}

/// Saves the most recently seen peers (replacing what was saved).
pub async fn save(host: &Host, store: &Store) -> Result<(), NodeError> {
    let me = host.peer_id().to_string();
    let peers: Vec<_> = host
        .book()
        .list()
        .into_iter()
        .filter(|p| p.peer_id != me && !p.addrs.is_empty())
        .take(MAX_REMEMBERED)
        .collect();
    if peers.is_empty() {
        return Ok(());
    }
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM remembered_peers")
        .execute(&mut *tx)
        .await?;
    for p in &peers {
        let addrs: Vec<&String> = p.addrs.iter().take(ADDRS_PER_PEER).collect();
        sqlx::query("INSERT INTO remembered_peers (peer_id, addrs, last_seen) VALUES (?, ?, ?)")
            .bind(&p.peer_id)
            .bind(serde_json::to_string(&addrs).unwrap_or_default())
            .bind(p.last_seen_ms.max(now_ms() - 1))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Saves the known peers every few minutes until the daemon stops.
pub async fn keep_saving(host: Host, store: Store) {
    loop {
        tokio::time::sleep(SAVE_EVERY).await;
        if let Err(e) = save(&host, &store).await {
            tracing::warn!("cannot remember the known peers: {e}");
        }
    }
}
