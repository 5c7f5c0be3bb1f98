//! The people this peer knows: contacts, blocked names, the peers pinned to
//! each name on first contact, and the newest checked key card of each peer;
//! plus the [`Roster`], the in-memory answer to "is this peer blocked / a
//! contact?" that the upload gate asks without touching the disk.
//!
//! A name is a user name or a peer id written out. This module stores and
//! answers; deciding whether a changed set of peers may be written to is the
//! messenger's job.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use libp2p::PeerId;
use sqlx::{Row, SqlitePool};

use super::keys::{verify_card, VerifiedCard};
use crate::views::{ContactView, PinnedPeer};
use crate::{now_ms, NodeError};

/// Which peers are blocked and which belong to contacts, for decisions that cannot wait on the disk.
#[derive(Clone, Default)]
pub struct Roster {
    inner: Arc<RwLock<RosterSets>>,
}

#[derive(Default)]
struct RosterSets {
    blocked: HashSet<PeerId>,
    contacts: HashSet<PeerId>,
}

impl Roster {
    /// Whether `peer` is pinned to a blocked name (or blocked by its id).
    pub fn is_blocked(&self, peer: &PeerId) -> bool {
        self.inner
            .read()
            .expect("roster lock")
            .blocked
            .contains(peer)
    }

    /// Whether `peer` is pinned to a contact (or is a contact by its id).
    pub fn is_contact(&self, peer: &PeerId) -> bool {
        self.inner
            .read()
            .expect("roster lock")
            .contacts
            .contains(peer)
    }

    fn replace(&self, sets: RosterSets) {
        *self.inner.write().expect("roster lock") = sets;
    }
}

/// The contacts tables.
#[derive(Clone)]
pub struct Contacts {
    pool: SqlitePool,
    roster: Roster,
}

impl Contacts {
    /// Opens the tables in `pool` and loads the roster.
    pub async fn load(pool: SqlitePool, roster: Roster) -> Result<Self, NodeError> {
        let contacts = Self { pool, roster };
        contacts.refresh_roster().await?;
        Ok(contacts)
    }

    /// Rebuilds the roster from the tables (after any change to contacts or pins).
    async fn refresh_roster(&self) -> Result<(), NodeError> {
        let rows = sqlx::query(
            "SELECT c.name, c.contact, c.blocked, p.peer_id FROM contacts c \
             LEFT JOIN pinned_peers p ON p.name = c.name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sets = RosterSets::default();
        for row in rows {
            let name: String = row.get(0);
            let contact: i64 = row.get(1);
            let blocked: i64 = row.get(2);
            let pinned: Option<String> = row.get(3);
            let peers = [Some(name), pinned]
                .into_iter()
                .flatten()
                .filter_map(|p| p.parse::<PeerId>().ok());
            for peer in peers {
                if blocked != 0 {
                    sets.blocked.insert(peer);
                } else if contact != 0 {
                    sets.contacts.insert(peer);
                }
            }
        }
        self.roster.replace(sets);
        Ok(())
    }

    /// Adds `name` as a contact (unblocking it).
    pub async fn add(&self, name: &str) -> Result<(), NodeError> {
        self.set(name, Some(true), Some(false)).await
    }

    /// Removes `name` from the contacts; its pins stay, so a later change of keys is still noticed.
    pub async fn remove(&self, name: &str) -> Result<bool, NodeError> {
        let done = sqlx::query("UPDATE contacts SET contact = 0 WHERE name = ? AND contact = 1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        self.refresh_roster().await?;
        Ok(done > 0)
    }

    /// Blocks or unblocks `name`.
    pub async fn block(&self, name: &str, blocked: bool) -> Result<(), NodeError> {
        self.set(name, None, Some(blocked)).await
    }

    async fn set(
        &self,
        name: &str,
        contact: Option<bool>,
        blocked: Option<bool>,
    ) -> Result<(), NodeError> {
        sqlx::query(
            "INSERT INTO contacts (name, contact, blocked, added_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET contact = COALESCE(?5, contact), \
             blocked = COALESCE(?6, blocked)",
        )
        .bind(name)
        .bind(contact.unwrap_or(false) as i64)
        .bind(blocked.unwrap_or(false) as i64)
        .bind(now_ms())
        .bind(contact.map(i64::from))
        .bind(blocked.map(i64::from))
        .execute(&self.pool)
        .await?;
        self.refresh_roster().await
    }

    /// Every contact or blocked name with its pinned peers.
    pub async fn list(&self) -> Result<Vec<ContactView>, NodeError> {
        let rows = sqlx::query(
            "SELECT name, contact, blocked FROM contacts WHERE contact = 1 OR blocked = 1 \
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.get(0);
            let peers = self.pins(&name).await?;
            out.push(ContactView {
                contact: row.get::<i64, _>(1) != 0,
                blocked: row.get::<i64, _>(2) != 0,
                peers,
                name,
                online: None,
                last_seen: None,
                presence_from: "unknown".into(),
            });
        }
        Ok(out)
    }

    /// The peers pinned to `name`.
    pub async fn pins(&self, name: &str) -> Result<Vec<PinnedPeer>, NodeError> {
        let rows = sqlx::query(
            "SELECT peer_id, pinned_at FROM pinned_peers WHERE name = ? ORDER BY pinned_at",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PinnedPeer {
                peer_id: r.get(0),
                pinned_at: r.get(1),
            })
            .collect())
    }

    /// Pins `peers` to `name` (adding to what is pinned).
    pub async fn pin(&self, name: &str, peers: &[PeerId]) -> Result<(), NodeError> {
        for peer in peers {
            sqlx::query(
                "INSERT OR IGNORE INTO pinned_peers (name, peer_id, pinned_at) VALUES (?, ?, ?)",
            )
            .bind(name)
            .bind(peer.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        }
        self.refresh_roster().await
    }

    /// Pins exactly `peers` to `name` (the person trusted a change of keys).
    pub async fn replace_pins(&self, name: &str, peers: &[PeerId]) -> Result<(), NodeError> {
        sqlx::query("DELETE FROM pinned_peers WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.pin(name, peers).await
    }

    /// The names `peer` is pinned to, user names before peer ids.
    pub async fn names_of(&self, peer: &PeerId) -> Result<Vec<String>, NodeError> {
        let rows =
            sqlx::query("SELECT name FROM pinned_peers WHERE peer_id = ? ORDER BY pinned_at")
                .bind(peer.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut names: Vec<String> = rows.into_iter().map(|r| r.get(0)).collect();
        names.sort_by_key(|n| n.parse::<PeerId>().is_ok());
        Ok(names)
    }

    /// Keeps `card` as `peer`'s newest known card (an older one never replaces a newer).
    pub async fn remember_card(&self, card: &VerifiedCard, bytes: &[u8]) -> Result<(), NodeError> {
        sqlx::query(
            "INSERT INTO key_cards (peer_id, card, created_ms, seen_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (peer_id) DO UPDATE SET card = ?2, created_ms = ?3, seen_at = ?4 \
             WHERE ?3 >= key_cards.created_ms",
        )
        .bind(card.peer.to_string())
        .bind(bytes)
        .bind(card.created_ms as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest known card of `peer`, checked again.
    pub async fn card(&self, peer: &PeerId) -> Result<Option<VerifiedCard>, NodeError> {
        let row = sqlx::query("SELECT card FROM key_cards WHERE peer_id = ?")
            .bind(peer.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| verify_card(&r.get::<Vec<u8>, _>(0), Some(peer)).ok()))
    }
}

/// Pinned peers by name, for comparing a fresh resolution with what was pinned.
pub fn pinned_set(pins: &[PinnedPeer]) -> BTreeMap<String, i64> {
    pins.iter()
        .map(|p| (p.peer_id.clone(), p.pinned_at))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    async fn contacts() -> (tempfile::TempDir, Contacts, Roster) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("peer.db"))
            .await
            .unwrap();
        let roster = Roster::default();
        let contacts = Contacts::load(store.pool().clone(), roster.clone())
            .await
            .unwrap();
        (dir, contacts, roster)
    }

    #[tokio::test]
    async fn blocking_a_name_blocks_its_pinned_peers() {
        let (_dir, contacts, roster) = contacts().await;
        let bob = Keypair::generate_ed25519().public().to_peer_id();
        contacts.pin("bob", &[bob]).await.unwrap();
        contacts.add("bob").await.unwrap();
        assert!(roster.is_contact(&bob) && !roster.is_blocked(&bob));
        contacts.block("bob", true).await.unwrap();
        assert!(roster.is_blocked(&bob) && !roster.is_contact(&bob));
        let list = contacts.list().await.unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].blocked && list[0].contact);
        assert_eq!(list[0].peers[0].peer_id, bob.to_string());
        contacts.block("bob", false).await.unwrap();
        assert!(roster.is_contact(&bob));
    }

    #[tokio::test]
    async fn a_peer_id_can_be_blocked_by_itself() {
        let (_dir, contacts, roster) = contacts().await;
        let eve = Keypair::generate_ed25519().public().to_peer_id();
        contacts.block(&eve.to_string(), true).await.unwrap();
        assert!(roster.is_blocked(&eve));
        assert!(!contacts.list().await.unwrap()[0].contact);
    }
}
