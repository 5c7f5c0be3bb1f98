//! Letters this peer keeps for others (as one of the DHT nodes closest to
//! an absent recipient): stored sealed, bounded per recipient, per sender
//! and in total, dropped when they expire or when their recipient signs
//! that they arrived (and then never taken again).
//!
//! The keeper checks the sender's signature before it stores anything and
//! never opens a letter: it cannot. This module stores rows; the network
//! side (who to hand letters to) is in [`super::dht_mail`].

use libp2p::PeerId;
use peershare_core::wire::message::{Envelope, LETTER_ID_LEN};
use sqlx::{Row, SqlitePool};

use crate::{now_ms, NodeError};

/// Letters kept for one recipient at most.
pub const PER_RECIPIENT: i64 = 256;
/// Letters kept from one sender at most (for all recipients).
pub const PER_SENDER: i64 = 256;
/// Letters kept in all at most.
pub const TOTAL_LETTERS: i64 = 4096;
/// Bytes of letters kept in all at most.
pub const TOTAL_BYTES: i64 = 64 << 20;
/// The longest a letter may ask to be kept.
pub const MAX_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// What happened to a letter offered for keeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Stored now.
    New,
    /// Stored before, or already signed for by its recipient.
    Known,
    /// Refused, and why.
    Refused(String),
}

/// The kept letters.
#[derive(Clone)]
pub struct Keeper {
    pool: SqlitePool,
}

impl Keeper {
    /// The tables in `pool`.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Keeps `envelope` (whose signature by `from` was checked) for `to`, within the bounds.
    pub async fn keep(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
        from: &PeerId,
        to: &PeerId,
    ) -> Result<Kept, NodeError> {
        let now = now_ms();
        let expires_at = envelope.expires_ms as i64;
        if expires_at <= now {
            return Ok(Kept::Refused("the letter has expired".into()));
        }
        if expires_at > now + MAX_KEEP_MS {
            return Ok(Kept::Refused(
                "a letter is kept for at most 30 days; send a shorter expiry".into(),
            ));
        }
        let (to, from, id) = (to.to_string(), from.to_string(), hex::encode(envelope.id));
        let mut tx = self.pool.begin().await?;
        let delivered =
            sqlx::query("SELECT 1 FROM delivered_letters WHERE to_peer = ? AND letter_id = ?")
                .bind(&to)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
        if delivered.is_some() {
            return Ok(Kept::Known);
        }
        let counts = sqlx::query(
            "SELECT SUM(to_peer = ?1), SUM(from_peer = ?2), COUNT(*), COALESCE(SUM(size), 0), \
             SUM(to_peer = ?1 AND from_peer = ?2 AND letter_id = ?3) FROM kept_letters",
        )
        .bind(&to)
        .bind(&from)
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let count = |i: usize| counts.get::<Option<i64>, _>(i).unwrap_or(0);
        if count(4) > 0 {
            return Ok(Kept::Known);
        }
        let refusal = if count(0) >= PER_RECIPIENT {
            Some("this peer keeps no more letters for that recipient")
        } else if count(1) >= PER_SENDER {
            Some("this peer keeps no more letters from you")
        } else if count(2) >= TOTAL_LETTERS || count(3) + bytes.len() as i64 > TOTAL_BYTES {
            Some("this peer keeps no more letters")
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return Ok(Kept::Refused(refusal.into()));
        }
        sqlx::query(
            "INSERT INTO kept_letters (to_peer, from_peer, letter_id, envelope, size, expires_at, \
             kept_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&to)
        .bind(&from)
        .bind(&id)
        .bind(bytes)
        .bind(bytes.len() as i64)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Kept::New)
    }

    /// Letters kept for `to`, oldest first, at most `max_bytes` of them (at least one).
    pub async fn for_recipient(
        &self,
        to: &PeerId,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, NodeError> {
        let rows = sqlx::query(
            "SELECT envelope FROM kept_letters WHERE to_peer = ? AND expires_at > ? \
             ORDER BY kept_at LIMIT ?",
        )
        .bind(to.to_string())
        .bind(now_ms())
        .bind(PER_RECIPIENT)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        let mut total = 0;
        for row in rows {
            let envelope: Vec<u8> = row.get(0);
            if !out.is_empty() && total + envelope.len() > max_bytes {
                break;
            }
            total += envelope.len();
            out.push(envelope);
        }
        Ok(out)
    }

    /// Drops letters `to` signed for, and remembers them so they are not taken again.
    pub async fn delivered(
        &self,
        to: &PeerId,
        ids: &[[u8; LETTER_ID_LEN]],
    ) -> Result<u64, NodeError> {
        let to = to.to_string();
        let remember_until = now_ms() + MAX_KEEP_MS;
        let mut dropped = 0;
        let mut tx = self.pool.begin().await?;
        for id in ids {
            let id = hex::encode(id);
            dropped += sqlx::query("DELETE FROM kept_letters WHERE to_peer = ? AND letter_id = ?")
                .bind(&to)
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "INSERT OR IGNORE INTO delivered_letters (to_peer, letter_id, expires_at) \
                 VALUES (?, ?, ?)",
            )
            .bind(&to)
            .bind(&id)
            .bind(remember_until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dropped)
    }

    /// Recipients this peer keeps letters for.
    pub async fn recipients(&self) -> Result<Vec<PeerId>, NodeError> {
        let rows = sqlx::query("SELECT DISTINCT to_peer FROM kept_letters")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<&str, _>(0).parse().ok())
            .collect())
    }

    /// Letters kept in all.
    pub async fn count(&self) -> Result<u64, NodeError> {
        let row = sqlx::query("SELECT COUNT(*) FROM kept_letters")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Whether any letter waits for `to`.
    pub async fn holds_for(&self, to: &PeerId) -> Result<bool, NodeError> {
        let row = sqlx::query("SELECT 1 FROM kept_letters WHERE to_peer = ? LIMIT 1")
            .bind(to.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Forgets expired letters and receipts.
    pub async fn purge(&self) -> Result<(), NodeError> {
        let now = now_ms();
        for table in ["kept_letters", "delivered_letters"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= ?"))
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    fn envelope(id: u8, expires_ms: i64) -> Envelope {
        Envelope {
            to: vec![],
            from: vec![],
            id: [id; 16],
            expires_ms: expires_ms as u64,
            enc: [0; 32],
            ciphertext: vec![0; 300],
            signature: [0; 64],
        }
    }

    async fn keeper() -> (tempfile::TempDir, Keeper) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("peer.db"))
            .await
            .unwrap();
        (dir, Keeper::new(store.pool().clone()))
    }

    #[tokio::test]
    async fn kept_until_signed_for_and_never_again() {
        let (_dir, keeper) = keeper().await;
        let (alice, bob) = (peer(), peer());
        let later = now_ms() + 60_000;
        let e = envelope(1, later);
        assert_eq!(
            keeper.keep(&e, b"x", &alice, &bob).await.unwrap(),
            Kept::New
        );
        assert_eq!(
            keeper.keep(&e, b"x", &alice, &bob).await.unwrap(),
            Kept::Known
        );
        assert_eq!(keeper.for_recipient(&bob, 1 << 20).await.unwrap(), [b"x"]);
        assert_eq!(keeper.delivered(&bob, &[[1; 16]]).await.unwrap(), 1);
        assert!(keeper
            .for_recipient(&bob, 1 << 20)
            .await
            .unwrap()
            .is_empty());
        // A copy handed on again by another keeper is not taken back.
        assert_eq!(
            keeper.keep(&e, b"x", &alice, &bob).await.unwrap(),
            Kept::Known
        );
        assert!(!keeper.holds_for(&bob).await.unwrap());
    }

    #[tokio::test]
    async fn one_sender_cannot_fill_the_keeper() {
        let (_dir, keeper) = keeper().await;
        let flooder = peer();
        let later = now_ms() + 60_000;
        for i in 0..PER_SENDER {
            let to = peer();
            let e = envelope((i % 250) as u8, later);
            assert_eq!(
                keeper.keep(&e, b"x", &flooder, &to).await.unwrap(),
                Kept::New
            );
        }
        let refused = keeper
            .keep(&envelope(251, later), b"x", &flooder, &peer())
            .await
            .unwrap();
        assert!(matches!(refused, Kept::Refused(_)), "{refused:?}");
        let other = keeper
            .keep(&envelope(252, later), b"x", &peer(), &peer())
            .await
            .unwrap();
        assert_eq!(other, Kept::New, "others are still served");
    }

    #[tokio::test]
    async fn expired_or_far_future_letters_are_refused() {
        let (_dir, keeper) = keeper().await;
        let past = envelope(1, now_ms() - 1);
        let far = envelope(2, now_ms() + 2 * MAX_KEEP_MS);
        for e in [past, far] {
            let kept = keeper.keep(&e, b"x", &peer(), &peer()).await.unwrap();
            assert!(matches!(kept, Kept::Refused(_)));
        }
    }
}
