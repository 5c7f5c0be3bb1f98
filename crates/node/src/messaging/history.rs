//! The messages of every chat (sent and received) and the outbox of sealed
//! copies waiting for delivery, in `peer.db`.
//!
//! A received letter is stored once per sending peer and letter id, so a
//! copy arriving twice (directly and from a mailbox, or retried) is noticed
//! and not shown twice. Outgoing states only move forward (sending → stored
//! → delivered → read). This module stores rows; it never seals or sends.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::views::{ChatView, MessageState, MessageView};
use crate::NodeError;

/// The tables.
#[derive(Clone)]
pub struct History {
    pool: SqlitePool,
}

/// A message about to be stored.
pub struct NewMessage<'a> {
    /// The chat it belongs to.
    pub chat: &'a str,
    /// Its letter id (hex).
    pub letter_id: &'a str,
    /// Incoming: the sending peer.
    pub peer_id: Option<&'a str>,
    /// Incoming: the name the sender claims.
    pub from_user: Option<&'a str>,
    /// Incoming: whether the sender's name is vouched for.
    pub verified: bool,
    /// The text.
    pub text: &'a str,
    /// When it was written.
    pub sent_at: i64,
    /// The sender's running number in the chat.
    pub seq: u64,
    /// When carriers may drop it.
    pub expires_at: i64,
    /// Its first state.
    pub state: MessageState,
    /// A flag for the person (a changed key).
    pub note: Option<String>,
}

/// A sealed copy in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The letter it carries.
    pub letter_id: String,
    /// The recipient peer.
    pub to_peer: String,
    /// The envelope's bytes.
    pub envelope: Vec<u8>,
    /// When it stops being worth delivering.
    pub expires_at: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Already left in the index's mailbox.
    pub mailed: bool,
}

const COLUMNS: &str = "letter_id, chat, outgoing, peer_id, from_user, verified, text, sent_at, \
                       stored_at, state, note";

fn message(row: &SqliteRow) -> MessageView {
    let peer: String = row.get(3);
    MessageView {
        id: row.get(0),
        chat: row.get(1),
        outgoing: row.get::<i64, _>(2) != 0,
        peer_id: (!peer.is_empty()).then_some(peer),
        from_user: row.get(4),
        verified: row.get::<i64, _>(5) != 0,
        text: row.get(6),
        sent_at: row.get(7),
        stored_at: row.get(8),
        state: MessageState::parse(row.get::<&str, _>(9)).unwrap_or(MessageState::Failed),
        note: row.get(10),
    }
}

impl History {
    /// The tables in `pool`.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The next running number for this person's letters in `chat`.
    pub async fn next_seq(&self, chat: &str) -> Result<u64, NodeError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE chat = ? AND outgoing = 1",
        )
        .bind(chat)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Stores a message; `None` when this letter from this peer was stored before.
    pub async fn insert(&self, m: NewMessage<'_>) -> Result<Option<MessageView>, NodeError> {
        let outgoing = m.peer_id.is_none();
        let done = sqlx::query(
            "INSERT OR IGNORE INTO messages (chat, letter_id, outgoing, peer_id, from_user, \
             verified, text, sent_at, seq, stored_at, expires_at, state, note) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(m.chat)
        .bind(m.letter_id)
        .bind(outgoing as i64)
        .bind(m.peer_id.unwrap_or(""))
        .bind(m.from_user)
        .bind(m.verified as i64)
        .bind(m.text)
        .bind(m.sent_at)
        .bind(m.seq as i64)
        .bind(crate::now_ms())
        .bind(m.expires_at)
        .bind(m.state.as_str())
        .bind(&m.note)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.one(done.last_insert_rowid()).await
    }

    async fn one(&self, row_id: i64) -> Result<Option<MessageView>, NodeError> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE row_id = ?");
        let row = sqlx::query(&sql)
            .bind(row_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(message))
    }

    /// Moves an outgoing message forward to `state` (never back); the message when it moved.
    pub async fn advance(
        &self,
        letter_id: &str,
        state: MessageState,
        note: Option<&str>,
    ) -> Result<Option<MessageView>, NodeError> {
        let from: &[&str] = match state {
            MessageState::Sending => &["held"],
            MessageState::Stored => &["sending"],
            MessageState::Delivered => &["sending", "stored"],
            MessageState::Read => &["sending", "stored", "delivered"],
            MessageState::Expired | MessageState::Failed => &["sending", "stored", "held"],
            MessageState::Held | MessageState::Unread => &[],
        };
        if from.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; from.len()].join(", ");
        let sql = format!(
            "UPDATE messages SET state = ?, note = COALESCE(?, note) \
             WHERE letter_id = ? AND outgoing = 1 AND state IN ({placeholders}) RETURNING row_id"
        );
        let mut query = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(note)
            .bind(letter_id);
        for s in from {
            query = query.bind(*s);
        }
        let Some(row) = query.fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        self.one(row.get(0)).await
    }

    /// The outgoing message with this letter id, if this person sent it to `chat`.
    pub async fn outgoing(
        &self,
        chat: &str,
        letter_id: &str,
    ) -> Result<Option<MessageView>, NodeError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE chat = ? AND letter_id = ? AND outgoing = 1"
        );
        let row = sqlx::query(&sql)
            .bind(chat)
            .bind(letter_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(message))
    }

    /// The latest `limit` messages of `chat`, oldest first, in the order they were written.
    pub async fn chat(&self, chat: &str, limit: u32) -> Result<Vec<MessageView>, NodeError> {
        let sql = format!(
            "SELECT * FROM (SELECT {COLUMNS}, seq, row_id FROM messages WHERE chat = ? \
             ORDER BY sent_at DESC, seq DESC, row_id DESC LIMIT ?) \
             ORDER BY sent_at, seq, row_id"
        );
        let rows = sqlx::query(&sql)
            .bind(chat)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(message).collect())
    }

    /// Marks `chat`'s unread messages read: their (sending peer, letter id) pairs, for read receipts.
    pub async fn mark_read(&self, chat: &str) -> Result<Vec<(String, String)>, NodeError> {
        let rows = sqlx::query(
            "UPDATE messages SET state = 'read' WHERE chat = ? AND outgoing = 0 \
             AND state = 'unread' RETURNING peer_id, letter_id",
        )
        .bind(chat)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Outgoing messages of `chat` held for a changed key.
    pub async fn held(&self, chat: &str) -> Result<Vec<(MessageView, u64, i64)>, NodeError> {
        let sql = format!(
            "SELECT {COLUMNS}, seq, expires_at FROM messages WHERE chat = ? AND outgoing = 1 \
             AND state = 'held' ORDER BY sent_at, seq"
        );
        let rows = sqlx::query(&sql).bind(chat).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| (message(r), r.get::<i64, _>(11) as u64, r.get(12)))
            .collect())
    }

    /// Every chat with its counts and latest message, the most recent first.
    pub async fn chats(&self) -> Result<Vec<ChatView>, NodeError> {
        let rows = sqlx::query(
            "SELECT chat, SUM(outgoing = 0 AND state = 'unread'), COUNT(*), \
             SUM(outgoing = 1 AND state = 'held'), MAX(row_id) FROM messages \
             GROUP BY chat ORDER BY MAX(stored_at) DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut chats = Vec::with_capacity(rows.len());
        for row in rows {
            chats.push(ChatView {
                chat: row.get(0),
                unread: row.get::<i64, _>(1) as u64,
                messages: row.get::<i64, _>(2) as u64,
                held: row.get::<i64, _>(3) as u64,
                last: self.one(row.get(4)).await?,
            });
        }
        Ok(chats)
    }

    /// Puts a sealed copy in the outbox, due now.
    pub async fn queue(
        &self,
        letter_id: &str,
        to_peer: &str,
        envelope: &[u8],
        expires_at: i64,
    ) -> Result<(), NodeError> {
        sqlx::query(
            "INSERT OR REPLACE INTO outbox (letter_id, to_peer, envelope, expires_at, attempts, \
             next_try, mailed) VALUES (?, ?, ?, ?, 0, 0, 0)",
        )
        .bind(letter_id)
        .bind(to_peer)
        .bind(envelope)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Copies due for an attempt at `now` (at most `limit`), and when the next one falls due.
    pub async fn due(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<(Vec<OutboxEntry>, Option<i64>), NodeError> {
        let rows = sqlx::query(
            "SELECT letter_id, to_peer, envelope, expires_at, attempts, mailed FROM outbox \
             WHERE next_try <= ? ORDER BY next_try LIMIT ?",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let entries = rows
            .iter()
            .map(|r| OutboxEntry {
                letter_id: r.get(0),
                to_peer: r.get(1),
                envelope: r.get(2),
                expires_at: r.get(3),
                attempts: r.get::<i64, _>(4) as u32,
                mailed: r.get::<i64, _>(5) != 0,
            })
            .collect();
        let next = sqlx::query("SELECT MIN(next_try) FROM outbox WHERE next_try > ?")
            .bind(now)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok((entries, next))
    }

    /// Copies waiting for `to_peer`.
    pub async fn waiting_for(&self, to_peer: &str) -> Result<u64, NodeError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE to_peer = ?")
            .bind(to_peer)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Makes every copy for `to_peer` due now (it came online).
    pub async fn retry_now(&self, to_peer: &str) -> Result<(), NodeError> {
        sqlx::query("UPDATE outbox SET next_try = 0 WHERE to_peer = ?")
            .bind(to_peer)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt: try again at `next_try`.
    pub async fn retry_later(
        &self,
        entry: &OutboxEntry,
        next_try: i64,
        mailed: bool,
    ) -> Result<(), NodeError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_try = ?, mailed = ? \
             WHERE letter_id = ? AND to_peer = ?",
        )
        .bind(next_try)
        .bind(mailed as i64)
        .bind(&entry.letter_id)
        .bind(&entry.to_peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a copy out of the outbox (delivered, refused for good, or expired).
    pub async fn done(&self, letter_id: &str, to_peer: &str) -> Result<(), NodeError> {
        sqlx::query("DELETE FROM outbox WHERE letter_id = ? AND to_peer = ?")
            .bind(letter_id)
            .bind(to_peer)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Copies of `letter_id` still in the outbox.
    pub async fn copies_left(&self, letter_id: &str) -> Result<u64, NodeError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE letter_id = ?")
            .bind(letter_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }
}
