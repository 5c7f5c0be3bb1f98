//! The index's durable state: users, sessions, join challenges, peers (with
//! their messaging key cards), their files, the mailboxes of sealed letters
//! and the audit log, in SQLite (the default: a WAL file in the data folder,
//! schema from `migrations/`) or PostgreSQL (`IndexConfig::database`, schema
//! from `migrations_postgres/`), both through sqlx. The schema is created
//! and brought up to date by [`Store::open`] / [`Store::open_postgres`].
//!
//! Each method's SQL is written once, with `$1, $2…` placeholders that both
//! engines read, and compiled for both through `with_db!`; the few
//! differences (row locks) are spelled out where they are. Search reads the
//! in-memory catalogue, filled from [`Store::online_peers`] and
//! [`Store::peer_files`], so no search SQL is here.
//!
//! Every write returns only after its transaction committed, so an
//! acknowledged request survives a crash; a write that is audited commits
//! its audit record in the same transaction. On SQLite every write goes
//! through one writer connection, with `synchronous=NORMAL` and WAL: every
//! committed transaction survives the process dying (kill -9 included: the
//! WAL is in the OS's hands); only a power loss or OS crash can drop the
//! last transactions before a checkpoint. Reads use a separate pool. On
//! PostgreSQL one pool serves both, and several index processes may write
//! the same database at once: the checks a write makes before changing
//! anything (peer ownership, mailbox limits) lock the rows they depend on
//! (`SELECT … FOR UPDATE`) or are folded into the statement that writes, so
//! they hold as they do under SQLite's single writer; each such place says
//! why.
//!
//! This module never checks permissions or validates input: callers pass it
//! values that are already checked. It stores letters' envelopes as the
//! bytes it is given and never looks inside; mailbox limits are counted in
//! the transaction that stores the letters, so concurrent sends cannot pass
//! them together.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqlitePool};

use crate::config::{describe_postgres, StoreLocation};
use crate::error::{IndexError, MailRefusal, PeerRefusal};

/// The engine search's SQL is written for (search runs on SQLite only).
pub type Db = Sqlite;

/// Connections a PostgreSQL store keeps for writes, besides one per reader.
const PG_WRITERS: u32 = 4;
/// The advisory lock (a transaction's, on PostgreSQL) that lets one index
/// process at a time bring the admin bindings up to date.
const SYNC_ADMINS_LOCK: i64 = 0x7065_6572_7368_0001;

/// Rows per multi-row INSERT; keeps bound parameters far below SQLite's limit.
const INSERT_CHUNK: usize = 400;
/// Page cache of the writer connection (negative: KiB), which updates the indexes.
const WRITE_CACHE_KIB: &str = "-65536";
/// Page cache of each read connection (negative: KiB); the OS caches the rest.
const READ_CACHE_KIB: &str = "-16384";

/// Whether `text` holds a NUL character. PostgreSQL's text cannot hold one
/// (it refuses such a parameter), and nothing the store keeps has one: a
/// lookup by such text finds nothing, on both engines, without asking.
fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// Audit text as stored: each NUL (which PostgreSQL's text cannot hold; a
/// rejected request may carry one) becomes U+2400 SYMBOL FOR NULL, on both
/// engines, so the record reads the same everywhere.
fn audit_text(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| t.replace('\0', "\u{2400}"))
}

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Open handles to the index database.
#[derive(Clone, Debug)]
pub struct Store {
    pools: Pools,
}

/// The pools of one engine.
#[derive(Clone, Debug)]
enum Pools {
    /// One writer connection and a pool of read-only ones.
    Sqlite { write: SqlitePool, read: SqlitePool },
    /// One pool for reads and writes.
    Postgres(PgPool),
}

/// The engine a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Runs `$body` against whichever engine `$store` has, with `$db` naming the
/// engine's type (for `QueryBuilder::<$db>`), `$write` and `$read` its pools
/// (the same pool on PostgreSQL) and `$lock` the suffix that locks the rows
/// a `SELECT` reads until the transaction ends (`" FOR UPDATE"` on
/// PostgreSQL; empty on SQLite, whose single writer already excludes every
/// other write). The body is compiled once per engine.
macro_rules! with_db {
    ($store:expr, |$db:ident, $write:ident, $read:ident, $lock:ident| $body:expr) => {
        match &$store.pools {
            #[allow(unused_variables)]
            Pools::Sqlite {
                write: $write,
                read: $read,
            } => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                #[allow(unused_variables)]
                let $lock: &str = "";
                $body
            }
            #[allow(unused_variables)]
            Pools::Postgres(pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                #[allow(unused_variables)]
                let ($write, $read) = (pool, pool);
                #[allow(unused_variables)]
                let $lock: &str = " FOR UPDATE";
                $body
            }
        }
    };
}

/// [`Store::heartbeats`] on PostgreSQL: one UPDATE over arrays of the
/// beats, since a statement per beat is a round trip each (a batch of 64
/// took longer than the commit it shared).
async fn heartbeats_in_one_statement(
    pool: &PgPool,
    beats: &[(i64, &str)],
    now: i64,
) -> Result<Vec<bool>, sqlx::Error> {
    // PostgreSQL text cannot hold NUL: such an id is no peer's. In peer id
    // order, the order other writes lock peers in, so that two batches
    // (of two index processes) do not wait on each other in a cycle.
    let mut valid: Vec<(i64, &str)> = beats.iter().copied().filter(|(_, p)| !has_nul(p)).collect();
    valid.sort_unstable_by(|a, b| a.1.cmp(b.1));
    let (users, peers): (Vec<i64>, Vec<&str>) = valid.into_iter().unzip();
    let updated: HashSet<(i64, String)> = sqlx::query(
        "UPDATE peers SET last_seen = $1 \
         FROM unnest($2::int8[], $3::text[]) AS beat(user_id, peer_id) \
         WHERE peers.peer_id = beat.peer_id AND peers.user_id = beat.user_id \
         AND peers.left_at IS NULL \
         RETURNING peers.user_id, peers.peer_id",
    )
    .bind(now)
    .bind(&users)
    .bind(&peers)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    Ok(beats
        .iter()
        .map(|&(user, peer)| updated.contains(&(user, peer.to_string())))
        .collect())
}

/// A notification for the other index processes on the same PostgreSQL
/// database (see [`crate::cluster`]), sent with the write that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The channel they listen on.
    pub channel: &'static str,
    /// What changed, as [`crate::cluster`] words it.
    pub payload: String,
}

/// What [`Store::create_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewUser {
    /// Created with this id.
    Created(i64),
    /// The name, or one that looks the same, is taken.
    Taken,
    /// The name is a configured admin name still bound to a deleted account.
    Reserved,
}

/// A registered user, as the auth layer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Unique name.
    pub name: String,
}

/// One shared file as stored: a name a peer gives to some bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRow {
    /// BLAKE3 id, 64 lowercase hex digits.
    pub file_id: String,
    /// The name the peer shares it under.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Lowercase extension without the dot, or empty.
    pub ext: String,
}

/// A peer with its state, as listed by the users endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRow {
    /// libp2p peer id.
    pub peer_id: String,
    /// Addresses, a JSON array of multiaddr strings.
    pub addrs_json: String,
    /// Last heartbeat or join, in ms.
    pub last_seen: i64,
    /// When it left, if it did.
    pub left_at: Option<i64>,
}

impl PeerRow {
    /// True when the peer has not left and was seen at or after `cutoff`.
    pub fn online(&self, cutoff: i64) -> bool {
        self.left_at.is_none() && self.last_seen >= cutoff
    }
}

/// One row of a user's shared files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFileRow {
    /// The file.
    pub file: FileRow,
    /// The peer sharing it.
    pub peer: PeerRow,
}

/// What a join stores about the peer itself (values already checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoiningPeer<'a> {
    /// libp2p peer id.
    pub peer_id: &'a str,
    /// Addresses, a JSON array of multiaddr strings.
    pub addrs_json: &'a str,
    /// Its signed messaging key card (base64 text), or `None` to clear it.
    pub message_key: Option<&'a str>,
}

/// A peer of a user with its messaging key card, as `GET /users/{name}/peers` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPeerRow {
    /// The peer.
    pub peer: PeerRow,
    /// Its signed messaging key card (base64 text), if its last join sent one.
    pub message_key: Option<String>,
}

/// A letter to store: a sealed envelope for one recipient peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLetter {
    /// The recipient peer id (canonical form).
    pub to_peer: String,
    /// The sealed envelope, as sent.
    pub envelope: Vec<u8>,
}

/// A letter waiting in a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LetterRow {
    /// Sequence number; only grows.
    pub id: i64,
    /// The name of the user who sent it.
    pub from_user: String,
    /// The sealed envelope, as sent.
    pub envelope: Vec<u8>,
    /// When it was stored, in ms.
    pub stored_at: i64,
    /// When it is deleted unread, in ms.
    pub expires_at: i64,
}

/// How many unexpired letters may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailLimits {
    /// For one recipient peer.
    pub per_recipient: u32,
    /// From one user for one recipient peer.
    pub per_sender: u32,
}

/// Aggregate figures about the online peers, for the public status page
/// (counted by the search catalogue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnlineCounts {
    /// Users with at least one online peer.
    pub users: i64,
    /// Online peers.
    pub peers: i64,
    /// Distinct file ids shared by online peers.
    pub files: i64,
    /// File entries (peer, file id, name) of online peers.
    pub listings: i64,
}

/// One audit record to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditRow {
    /// Database id (ignored on insert).
    pub id: i64,
    /// When, in ms.
    pub at: i64,
    /// The acting user's name, if known.
    pub user_name: Option<String>,
    /// The peer concerned, if any.
    pub peer_id: Option<String>,
    /// What was attempted, e.g. `login`.
    pub action: String,
    /// How it ended, e.g. `ok`, `denied`, `invalid`.
    pub outcome: String,
    /// Extra facts: a query, a file id, a count.
    pub detail: Option<String>,
    /// The client's address.
    pub client: Option<String>,
}

/// Checks, inside the transaction `$tx`, that `$peer_id` is a joined peer of
/// `$user_id` (or one that left, with `$allow_left`); evaluates to
/// `Result<(), PeerRefusal>`. With `$lock` `" FOR UPDATE"` (PostgreSQL) the
/// peer's row stays locked until the transaction ends: a peer's owner never
/// changes (see [`Store::join_peer`]), and whether it left cannot change
/// under the write that follows, since joins and leaves of the peer wait for
/// the lock.
macro_rules! check_peer {
    ($tx:ident, $user_id:expr, $peer_id:expr, $allow_left:expr, $lock:expr) => {{
        if has_nul($peer_id) {
            return Ok(Err(PeerRefusal::Unknown));
        }
        let sql = format!(
            "SELECT user_id, left_at FROM peers WHERE peer_id = $1{}",
            $lock
        );
        let row = sqlx::query(&sql)
            .bind($peer_id)
            .fetch_optional(&mut *$tx)
            .await?;
        match row {
            None => Err(PeerRefusal::Unknown),
            Some(r) if r.get::<i64, _>(0) != $user_id => Err(PeerRefusal::NotYours),
            Some(r) if !$allow_left && r.get::<Option<i64>, _>(1).is_some() => {
                Err(PeerRefusal::Left)
            }
            Some(_) => Ok(()),
        }
    }};
}

/// A (user name, peer) from a row of `u.name, p.peer_id, p.addrs,
/// p.last_seen, p.left_at`.
macro_rules! user_and_peer {
    ($r:expr) => {{
        let r = $r;
        let peer = PeerRow {
            peer_id: r.get(1),
            addrs_json: r.get(2),
            last_seen: r.get(3),
            left_at: r.get(4),
        };
        (r.get::<String, _>(0), peer)
    }};
}

/// Appends `$audit` to the write's transaction `$tx` and commits both
/// together (`?` on failure).
macro_rules! commit_audited {
    ($db:ident, $tx:ident, $audit:expr) => {{
        insert_audit_rows!($db, $tx, std::slice::from_ref($audit));
        $tx.commit().await?;
    }};
}

/// [`commit_audited`], and on PostgreSQL the notice `$notice` for the other
/// index processes in the same transaction: PostgreSQL sends it when, and
/// only when, the write commits (a process killed between its commit and a
/// separate notification would leave the others behind until their next
/// reload).
macro_rules! commit_announced {
    ($store:expr, $db:ident, $tx:ident, $audit:expr, $notice:expr) => {{
        if $store.engine() == Engine::Postgres {
            let notice: &Notice = $notice;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(notice.channel)
                .bind(notice.payload.as_str())
                .execute(&mut *$tx)
                .await?;
        }
        commit_audited!($db, $tx, $audit);
    }};
}

/// Inserts audit records inside the transaction `$tx`, in batches.
macro_rules! insert_audit_rows {
    ($db:ident, $tx:ident, $rows:expr) => {{
        for chunk in $rows.chunks(INSERT_CHUNK / 2) {
            let mut q = QueryBuilder::<$db>::new(
                "INSERT INTO audit (at, user_name, peer_id, action, outcome, detail, client) ",
            );
            q.push_values(chunk, |mut b, row: &AuditRow| {
                b.push_bind(row.at)
                    .push_bind(audit_text(&row.user_name))
                    .push_bind(audit_text(&row.peer_id))
                    .push_bind(row.action.replace('\0', "\u{2400}"))
                    .push_bind(row.outcome.replace('\0', "\u{2400}"))
                    .push_bind(audit_text(&row.detail))
                    .push_bind(audit_text(&row.client));
            });
            q.build().execute(&mut *$tx).await?;
        }
    }};
}

/// Writes a peer's file rows inside a transaction, each engine its fastest
/// way; a row already there (same peer, file id and name) gets the new size
/// and extension.
trait FileRows {
    /// Inserts `files` of `peer_id`.
    async fn insert_files(&mut self, peer_id: &str, files: &[FileRow]) -> Result<(), sqlx::Error>;
}

impl FileRows for sqlx::SqliteConnection {
    async fn insert_files(&mut self, peer_id: &str, files: &[FileRow]) -> Result<(), sqlx::Error> {
        for chunk in files.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO files (peer_id, file_id, name, size, ext) ",
            );
            q.push_values(chunk, |mut b, f: &FileRow| {
                b.push_bind(peer_id)
                    .push_bind(&f.file_id)
                    .push_bind(&f.name)
                    .push_bind(f.size)
                    .push_bind(&f.ext);
            });
            q.push(FILE_ROW_CONFLICT);
            q.build().execute(&mut *self).await?;
        }
        Ok(())
    }
}

impl FileRows for PgConnection {
    /// One statement over four arrays: a multi-row VALUES binds five
    /// parameters a row, each parsed and planned by PostgreSQL.
    async fn insert_files(&mut self, peer_id: &str, files: &[FileRow]) -> Result<(), sqlx::Error> {
        if files.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = files.iter().map(|f| f.file_id.as_str()).collect();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        let sizes: Vec<i64> = files.iter().map(|f| f.size).collect();
        let exts: Vec<&str> = files.iter().map(|f| f.ext.as_str()).collect();
        sqlx::query(&format!(
            "INSERT INTO files (peer_id, file_id, name, size, ext) \
             SELECT $1, f.file_id, f.name, f.size, f.ext \
             FROM unnest($2::text[], $3::text[], $4::int8[], $5::text[]) \
             AS f(file_id, name, size, ext){FILE_ROW_CONFLICT}"
        ))
        .bind(peer_id)
        .bind(&ids)
        .bind(&names)
        .bind(&sizes)
        .bind(&exts)
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

/// What inserting a file row that is already there does.
const FILE_ROW_CONFLICT: &str =
    " ON CONFLICT (peer_id, file_id, name) DO UPDATE SET size = excluded.size, ext = excluded.ext";

impl Store {
    /// Opens the database `location` names: [`Store::open`] for a SQLite file
    /// (`readers` read connections), [`Store::open_postgres`] for a
    /// PostgreSQL URL.
    pub async fn connect(location: &StoreLocation, readers: u32) -> Result<Self, IndexError> {
        match location {
            StoreLocation::Sqlite(path) => Self::open(path, readers).await,
            StoreLocation::Postgres(url) => Self::open_postgres(url, readers).await,
        }
    }

    /// Opens (creating if needed) the SQLite file `path` with `readers` read
    /// connections and brings its schema up to date.
    pub async fn open(path: &Path, readers: u32) -> Result<Self, IndexError> {
        const START_OVER: &str = "a new empty index (every account is lost)";
        let refuse = |why: String| IndexError::Database {
            path: path.to_path_buf(),
            source: sqlx::Error::InvalidArgument(why),
        };
        // A truncated or overwritten file is refused, never replaced by an
        // empty database.
        peershare_core::db_file::check(path, START_OVER).map_err(refuse)?;
        let db_err = |source: sqlx::Error| {
            let text = source.to_string();
            if peershare_core::db_file::is_corruption(&text) {
                refuse(peershare_core::db_file::damaged(START_OVER, &text))
            } else {
                IndexError::Database {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(db_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("temp_store", "memory")
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("cache_size", WRITE_CACHE_KIB))
            .await
            .map_err(db_err)?;
        if let Err(e) = sqlx::migrate!("./migrations").run(&write).await {
            let text = e.to_string();
            if peershare_core::db_file::is_corruption(&text) {
                write.close().await;
                return Err(refuse(peershare_core::db_file::damaged(START_OVER, &text)));
            }
            return Err(e.into());
        }
        // No ping before each use: a search would pay a round trip to the
        // connection's thread for nothing (a broken connection fails the query).
        let read = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .test_before_acquire(false)
            .connect_with(options.read_only(true).pragma("cache_size", READ_CACHE_KIB))
            .await
            .map_err(db_err)?;
        Ok(Self {
            pools: Pools::Sqlite { write, read },
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`) with
    /// `readers` connections for reads plus a few for writes, and brings its
    /// schema up to date. Several index processes may do this at once on one
    /// database: sqlx's migrator holds a PostgreSQL advisory lock (one per
    /// database) while it checks and applies migrations, so they take turns.
    pub async fn open_postgres(url: &str, readers: u32) -> Result<Self, IndexError> {
        let err = |source: sqlx::Error| IndexError::Postgres {
            database: describe_postgres(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(err)?;
        // One connection first: its error says what is wrong (no server,
        // a wrong password, no such database), where the pool would retry
        // until it timed out.
        let first = PgConnection::connect_with(&options).await.map_err(err)?;
        first.close().await.map_err(err)?;
        let pool = PgPoolOptions::new()
            .max_connections(readers.max(1) + PG_WRITERS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(err)?;
        if let Err(e) = sqlx::migrate!("./migrations_postgres").run(&pool).await {
            pool.close().await;
            return Err(e.into());
        }
        Ok(Self {
            pools: Pools::Postgres(pool),
        })
    }

    /// The engine this store runs on.
    pub fn engine(&self) -> Engine {
        match self.pools {
            Pools::Sqlite { .. } => Engine::Sqlite,
            Pools::Postgres(_) => Engine::Postgres,
        }
    }

    /// Closes every connection (checkpointing a SQLite WAL); later calls fail.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    // ----- users and sessions -------------------------------------------

    /// Creates a user with no look-alike key (filled in at the next start);
    /// `None` when the name is taken. Registration uses [`Store::create_account`].
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditRow,
    ) -> Result<Option<i64>, sqlx::Error> {
        let new = self
            .create_account(name, None, password_hash, now, false, audit)
            .await?;
        Ok(match new {
            NewUser::Created(id) => Some(id),
            NewUser::Taken | NewUser::Reserved => None,
        })
    }

    /// Creates a user whose (normalised) `name` has the confusable
    /// `skeleton`. When `admin` (the name is a configured admin name) the
    /// admin rights are bound to the new account in the same transaction,
    /// unless the name is still bound to an account that was deleted: then
    /// nothing is created ([`NewUser::Reserved`]).
    ///
    /// With several writers (PostgreSQL): a name or skeleton taken by a
    /// concurrent registration fails the INSERT on the unique index, which
    /// waits for the other transaction to end, so it is [`NewUser::Taken`]
    /// as under a single writer; the admin binding is inserted with `ON
    /// CONFLICT DO NOTHING`, so a binding another transaction committed
    /// after our check also ends in [`NewUser::Reserved`], never in two
    /// bindings.
    pub async fn create_account(
        &self,
        name: &str,
        skeleton: Option<&str>,
        password_hash: &str,
        now: i64,
        admin: bool,
        audit: &AuditRow,
    ) -> Result<NewUser, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            if admin {
                let bound = sqlx::query("SELECT 1 FROM admins WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if bound.is_some() {
                    let exists = sqlx::query("SELECT 1 FROM users WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if exists.is_none() {
                        return Ok(NewUser::Reserved);
                    }
                }
            }
            let result = sqlx::query(
                "INSERT INTO users (name, skeleton, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(skeleton)
            .bind(password_hash)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            let id: i64 = match result {
                Ok(r) => r.get(0),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Ok(NewUser::Taken)
                }
                Err(e) => return Err(e),
            };
            if admin {
                let bound = sqlx::query(
                    "INSERT INTO admins (name, user_id, bound_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if bound == 0 {
                    return Ok(NewUser::Reserved);
                }
            }
            commit_audited!(DB, tx, audit);
            Ok(NewUser::Created(id))
        })
    }

    /// The name of the user whose name has this confusable skeleton.
    pub async fn user_with_skeleton(&self, skeleton: &str) -> Result<Option<String>, sqlx::Error> {
        if has_nul(skeleton) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query("SELECT name FROM users WHERE skeleton = $1")
                .bind(skeleton)
                .fetch_optional(read)
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Brings the admin bindings in line with the configured admin names
    /// (already normalised): drops the bindings of names no longer
    /// configured (so dropping a name and adding it again hands it to its
    /// next holder), and binds each configured name that has an account but
    /// no binding yet to that account. Also fills in the skeletons of
    /// accounts made before skeletons were kept (a clash leaves it empty).
    ///
    /// On PostgreSQL several index processes may start at once: the
    /// transaction first takes an advisory lock, so they run this one at a
    /// time and each sees the bindings the one before committed.
    pub async fn sync_admins(
        &self,
        admins: &[String],
        now: i64,
        skeleton: impl Fn(&str) -> String,
    ) -> Result<(), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            if self.engine() == Engine::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SYNC_ADMINS_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let bound: Vec<String> = sqlx::query("SELECT name FROM admins")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            for name in bound.iter().filter(|n| !admins.contains(n)) {
                sqlx::query("DELETE FROM admins WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            for name in admins.iter().filter(|n| !bound.contains(n)) {
                sqlx::query(
                    "INSERT INTO admins (name, user_id, bound_at) \
                     SELECT name, id, $1 FROM users WHERE name = $2",
                )
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            let legacy: Vec<(i64, String)> =
                sqlx::query("SELECT id, name FROM users WHERE skeleton IS NULL")
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
            for (id, name) in legacy {
                // Left empty when another account has the skeleton already.
                sqlx::query(
                    "UPDATE users SET skeleton = $1 WHERE id = $2 \
                     AND NOT EXISTS (SELECT 1 FROM users WHERE skeleton = $1)",
                )
                .bind(skeleton(&name))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
    }

    /// The account the admin rights of `name` are bound to, if any (it may
    /// have been deleted since).
    pub async fn admin_account(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        if has_nul(name) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query("SELECT user_id FROM admins WHERE name = $1")
                .bind(name)
                .fetch_optional(read)
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// The id and password hash of the named user.
    pub async fn credentials(&self, name: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
        if has_nul(name) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query("SELECT id, password_hash FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(read)
                .await?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Whether a user of this name exists.
    pub async fn user_exists(&self, name: &str) -> Result<bool, sqlx::Error> {
        if has_nul(name) {
            return Ok(false);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query("SELECT 1 FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(read)
                .await?;
            Ok(row.is_some())
        })
    }

    /// Removes a user with all their sessions, challenges, peers, files and
    /// the letters they sent or were sent. (On PostgreSQL, rows another
    /// transaction adds for the user meanwhile go with it: every table that
    /// refers to a user or a peer does so with `ON DELETE CASCADE`.)
    pub async fn delete_user(
        &self,
        user_id: i64,
        audit: &AuditRow,
        notice: &Notice,
    ) -> Result<(), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            // The user's peers first, in peer id order, as sends lock them:
            // a send and an unregistration never wait on each other in a cycle.
            sqlx::query(&format!(
                "SELECT peer_id FROM peers WHERE user_id = $1 ORDER BY peer_id{lock}"
            ))
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM letters WHERE from_user_id = $1 OR to_user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM files WHERE peer_id IN (SELECT peer_id FROM peers WHERE user_id = $1)",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            for sql in [
                "DELETE FROM peers WHERE user_id = $1",
                "DELETE FROM join_challenges WHERE user_id = $1",
                "DELETE FROM sessions WHERE user_id = $1",
                "DELETE FROM users WHERE id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            commit_announced!(self, DB, tx, audit, notice);
            Ok(())
        })
    }

    /// Stores a session under the hash of its token.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now: i64,
        expires_at: i64,
        audit: &AuditRow,
    ) -> Result<(), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            commit_audited!(DB, tx, audit);
            Ok(())
        })
    }

    /// The user owning an unexpired session with this token hash, and when it expires.
    pub async fn session_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(User, i64)>, sqlx::Error> {
        if has_nul(token_hash) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query(
                "SELECT u.id, u.name, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(read)
            .await?;
            Ok(row.map(|r| {
                let user = User {
                    id: r.get(0),
                    name: r.get(1),
                };
                (user, r.get(2))
            }))
        })
    }

    /// Revokes one session.
    pub async fn delete_session(
        &self,
        token_hash: &str,
        audit: &AuditRow,
    ) -> Result<(), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
            commit_audited!(DB, tx, audit);
            Ok(())
        })
    }

    /// Deletes expired sessions, challenges and letters.
    pub async fn purge_expired(&self, now: i64) -> Result<(), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            for sql in [
                "DELETE FROM sessions WHERE expires_at <= $1",
                "DELETE FROM join_challenges WHERE expires_at <= $1",
                "DELETE FROM letters WHERE expires_at <= $1",
            ] {
                sqlx::query(sql).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await
        })
    }

    // ----- peers ----------------------------------------------------------

    /// The id of the user owning `peer_id`, if it ever joined.
    pub async fn peer_owner(&self, peer_id: &str) -> Result<Option<i64>, sqlx::Error> {
        if has_nul(peer_id) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query("SELECT user_id FROM peers WHERE peer_id = $1")
                .bind(peer_id)
                .fetch_optional(read)
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// A peer that ever joined, with the name of the user owning it.
    pub async fn peer_with_user(
        &self,
        peer_id: &str,
    ) -> Result<Option<(String, PeerRow)>, sqlx::Error> {
        if has_nul(peer_id) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query(
                "SELECT u.name, p.peer_id, p.addrs, p.last_seen, p.left_at \
                 FROM peers p JOIN users u ON u.id = p.user_id WHERE p.peer_id = $1",
            )
            .bind(peer_id)
            .fetch_optional(read)
            .await?;
            Ok(row.map(|r| user_and_peer!(r)))
        })
    }

    /// Every online peer (not left, seen at or after `cutoff`) with the
    /// name of its user, for rebuilding the search catalogue.
    pub async fn online_peers(&self, cutoff: i64) -> Result<Vec<(String, PeerRow)>, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let rows = sqlx::query(
                "SELECT u.name, p.peer_id, p.addrs, p.last_seen, p.left_at \
                 FROM peers p JOIN users u ON u.id = p.user_id \
                 WHERE p.left_at IS NULL AND p.last_seen >= $1 ORDER BY p.peer_id",
            )
            .bind(cutoff)
            .fetch_all(read)
            .await?;
            Ok(rows.iter().map(|r| user_and_peer!(r)).collect())
        })
    }

    /// The last heartbeat (ms) of each of these peers that has not left.
    pub async fn last_seen_of(
        &self,
        peer_ids: &[String],
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let mut seen = Vec::with_capacity(peer_ids.len());
        for chunk in peer_ids.chunks(INSERT_CHUNK) {
            let chunk: Vec<&str> = chunk
                .iter()
                .map(String::as_str)
                .filter(|p| !has_nul(p))
                .collect();
            if chunk.is_empty() {
                continue;
            }
            with_db!(self, |DB, write, read, lock| {
                let mut q = QueryBuilder::<DB>::new(
                    "SELECT peer_id, last_seen FROM peers WHERE left_at IS NULL AND peer_id IN (",
                );
                let mut list = q.separated(", ");
                for peer_id in &chunk {
                    list.push_bind(*peer_id);
                }
                q.push(")");
                let rows = q.build().fetch_all(read).await?;
                seen.extend(rows.into_iter().map(|r| (r.get(0), r.get(1))));
            });
        }
        Ok(seen)
    }

    /// Tells the other index processes on this PostgreSQL database (see
    /// [`crate::cluster`]); does nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        if let Pools::Postgres(pool) = &self.pools {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// The PostgreSQL pool, to listen for notifications; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pools {
            Pools::Postgres(pool) => Some(pool),
            Pools::Sqlite { .. } => None,
        }
    }

    /// Every file a peer lists.
    pub async fn peer_files(&self, peer_id: &str) -> Result<Vec<FileRow>, sqlx::Error> {
        if has_nul(peer_id) {
            return Ok(Vec::new());
        }
        with_db!(self, |DB, write, read, lock| {
            let rows = sqlx::query("SELECT file_id, name, size, ext FROM files WHERE peer_id = $1")
                .bind(peer_id)
                .fetch_all(read)
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| FileRow {
                    file_id: r.get(0),
                    name: r.get(1),
                    size: r.get(2),
                    ext: r.get(3),
                })
                .collect())
        })
    }

    /// Opens (or replaces) the join challenge of a user for a peer id.
    pub async fn put_challenge(
        &self,
        user_id: i64,
        peer_id: &str,
        nonce: &str,
        expires_at: i64,
        audit: &AuditRow,
    ) -> Result<(), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            sqlx::query(
                "INSERT INTO join_challenges (user_id, peer_id, nonce, expires_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, peer_id) DO UPDATE SET nonce = excluded.nonce, \
                 expires_at = excluded.expires_at",
            )
            .bind(user_id)
            .bind(peer_id)
            .bind(nonce)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            commit_audited!(DB, tx, audit);
            Ok(())
        })
    }

    /// Removes and returns the open, unexpired challenge nonce of a user for
    /// a peer id. One statement: of two concurrent takers (two processes on
    /// PostgreSQL included) only one gets the row.
    pub async fn take_challenge(
        &self,
        user_id: i64,
        peer_id: &str,
        now: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        if has_nul(peer_id) {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let row = sqlx::query(
                "DELETE FROM join_challenges WHERE user_id = $1 AND peer_id = $2 \
                 RETURNING nonce, expires_at",
            )
            .bind(user_id)
            .bind(peer_id)
            .fetch_optional(write)
            .await?;
            Ok(row.and_then(|r| {
                let expires: i64 = r.get(1);
                (expires > now).then(|| r.get(0))
            }))
        })
    }

    /// Joins a peer for `user_id`: stores its addresses and messaging key card
    /// (`None` clears it), marks it seen now and replaces its file list.
    /// Refused if another user owns the peer id.
    ///
    /// The ownership check is part of the upsert (it updates only a row of
    /// the same user): on PostgreSQL, of two users joining the same new peer
    /// id at once, the second waits on the first's row and then updates
    /// nothing, so it is refused as it would be after the first committed.
    /// The upsert keeps the peer's row locked until commit, so joins and
    /// writes of one peer ([`Store::publish`] and others lock it too) take
    /// turns.
    pub async fn join_peer(
        &self,
        user_id: i64,
        peer: &JoiningPeer<'_>,
        files: &[FileRow],
        now: i64,
        audit: &AuditRow,
        notice: &Notice,
    ) -> Result<Result<(), PeerRefusal>, sqlx::Error> {
        let JoiningPeer {
            peer_id,
            addrs_json,
            message_key,
        } = *peer;
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            let stored = sqlx::query(
                "INSERT INTO peers \
                 (peer_id, user_id, addrs, message_key, joined_at, last_seen, left_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, NULL) \
                 ON CONFLICT (peer_id) DO UPDATE SET addrs = excluded.addrs, \
                 message_key = excluded.message_key, joined_at = excluded.joined_at, \
                 last_seen = excluded.last_seen, left_at = NULL \
                 WHERE peers.user_id = excluded.user_id",
            )
            .bind(peer_id)
            .bind(user_id)
            .bind(addrs_json)
            .bind(message_key)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if stored == 0 {
                return Ok(Err(PeerRefusal::NotYours));
            }
            sqlx::query("DELETE FROM files WHERE peer_id = $1")
                .bind(peer_id)
                .execute(&mut *tx)
                .await?;
            tx.insert_files(peer_id, files).await?;
            commit_announced!(self, DB, tx, audit, notice);
            Ok(Ok(()))
        })
    }

    /// Records many heartbeats in one transaction, one commit for all:
    /// for each (user id, peer id), whether it was that user's peer online
    /// (not left); the reason for a miss is looked up by
    /// [`Store::heartbeat_refusal`].
    pub async fn heartbeats(
        &self,
        beats: &[(i64, &str)],
        now: i64,
    ) -> Result<Vec<bool>, sqlx::Error> {
        if let Pools::Postgres(pool) = &self.pools {
            return heartbeats_in_one_statement(pool, beats, now).await;
        }
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            let mut hits = Vec::with_capacity(beats.len());
            for (user_id, peer_id) in beats {
                if has_nul(peer_id) {
                    hits.push(false);
                    continue;
                }
                let updated = sqlx::query(
                    "UPDATE peers SET last_seen = $1 \
                     WHERE peer_id = $2 AND user_id = $3 AND left_at IS NULL",
                )
                .bind(now)
                .bind(*peer_id)
                .bind(*user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                hits.push(updated == 1);
            }
            tx.commit().await?;
            Ok(hits)
        })
    }

    /// Why a heartbeat of `peer_id` by `user_id` changed nothing, if it
    /// should not have been accepted.
    pub async fn heartbeat_refusal(
        &self,
        user_id: i64,
        peer_id: &str,
    ) -> Result<Option<PeerRefusal>, sqlx::Error> {
        Ok(self.peer_check(user_id, peer_id).await?.err())
    }

    /// Whether `peer_id` is an online (not left) peer of `user_id`.
    async fn peer_check(
        &self,
        user_id: i64,
        peer_id: &str,
    ) -> Result<Result<(), PeerRefusal>, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            Ok(check_peer!(tx, user_id, peer_id, false, ""))
        })
    }

    /// Marks one of the user's peers as gone now (its files stay, offline).
    pub async fn leave(
        &self,
        user_id: i64,
        peer_id: &str,
        now: i64,
        audit: &AuditRow,
        notice: &Notice,
    ) -> Result<Result<(), PeerRefusal>, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            if let Err(refusal) = check_peer!(tx, user_id, peer_id, true, lock) {
                return Ok(Err(refusal));
            }
            sqlx::query("UPDATE peers SET left_at = $1 WHERE peer_id = $2 AND left_at IS NULL")
                .bind(now)
                .bind(peer_id)
                .execute(&mut *tx)
                .await?;
            commit_announced!(self, DB, tx, audit, notice);
            Ok(Ok(()))
        })
    }

    // ----- files ----------------------------------------------------------

    /// Adds or updates files of one of the user's joined peers.
    pub async fn publish(
        &self,
        user_id: i64,
        peer_id: &str,
        files: &[FileRow],
        audit: &AuditRow,
        notice: &Notice,
    ) -> Result<Result<(), PeerRefusal>, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            if let Err(refusal) = check_peer!(tx, user_id, peer_id, false, lock) {
                return Ok(Err(refusal));
            }
            tx.insert_files(peer_id, files).await?;
            commit_announced!(self, DB, tx, audit, notice);
            Ok(Ok(()))
        })
    }

    /// Removes a file id (under every name) from one of the user's peers;
    /// returns how many entries went (with none, nothing is committed, the
    /// audit record neither).
    pub async fn unpublish(
        &self,
        user_id: i64,
        peer_id: &str,
        file_id: &str,
        audit: &AuditRow,
        notice: &Notice,
    ) -> Result<Result<u64, PeerRefusal>, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            if let Err(refusal) = check_peer!(tx, user_id, peer_id, true, lock) {
                return Ok(Err(refusal));
            }
            let removed = sqlx::query("DELETE FROM files WHERE peer_id = $1 AND file_id = $2")
                .bind(peer_id)
                .bind(file_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed > 0 {
                commit_announced!(self, DB, tx, audit, notice);
            }
            Ok(Ok(removed))
        })
    }

    // ----- users and browse -----------------------------------------------

    /// Users with their peers, ordered by name; with `all` false only users
    /// with an online peer, and only those peers.
    pub async fn users_with_peers(
        &self,
        cutoff: i64,
        all: bool,
    ) -> Result<Vec<(String, Option<PeerRow>)>, sqlx::Error> {
        let sql = if all {
            "SELECT u.name, p.peer_id, p.addrs, p.last_seen, p.left_at \
             FROM users u LEFT JOIN peers p ON p.user_id = u.id ORDER BY u.name, p.peer_id"
        } else {
            "SELECT u.name, p.peer_id, p.addrs, p.last_seen, p.left_at \
             FROM users u JOIN peers p ON p.user_id = u.id \
             WHERE p.left_at IS NULL AND p.last_seen >= $1 ORDER BY u.name, p.peer_id"
        };
        with_db!(self, |DB, write, read, lock| {
            let mut query = sqlx::query(sql);
            if !all {
                query = query.bind(cutoff);
            }
            let rows = query.fetch_all(read).await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let peer = r.get::<Option<String>, _>(1).map(|peer_id| PeerRow {
                        peer_id,
                        addrs_json: r.get(2),
                        last_seen: r.get(3),
                        left_at: r.get(4),
                    });
                    (r.get(0), peer)
                })
                .collect())
        })
    }

    /// One page of a user's shared files (online peers only unless `all`),
    /// ordered by name; `None` if the user does not exist.
    pub async fn user_files(
        &self,
        name: &str,
        cutoff: i64,
        all: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Option<Vec<SharedFileRow>>, sqlx::Error> {
        if !self.user_exists(name).await? {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT f.file_id, f.name, f.size, f.ext, p.peer_id, p.addrs, p.last_seen, \
                 p.left_at \
                 FROM files f JOIN peers p ON p.peer_id = f.peer_id \
                 JOIN users u ON u.id = p.user_id WHERE u.name = ",
            );
            q.push_bind(name);
            if !all {
                q.push(" AND p.left_at IS NULL AND p.last_seen >= ")
                    .push_bind(cutoff);
            }
            q.push(" ORDER BY f.name, f.file_id, p.peer_id LIMIT ")
                .push_bind(limit)
                .push(" OFFSET ")
                .push_bind(offset);
            let rows = q.build().fetch_all(read).await?;
            Ok(Some(
                rows.into_iter()
                    .map(|r| SharedFileRow {
                        file: FileRow {
                            file_id: r.get(0),
                            name: r.get(1),
                            size: r.get(2),
                            ext: r.get(3),
                        },
                        peer: PeerRow {
                            peer_id: r.get(4),
                            addrs_json: r.get(5),
                            last_seen: r.get(6),
                            left_at: r.get(7),
                        },
                    })
                    .collect(),
            ))
        })
    }

    /// Every peer a user ever joined with its key card, online ones (seen at
    /// or after `cutoff`, not left) first, then most recently seen first;
    /// `None` if the user does not exist.
    pub async fn user_peers(
        &self,
        name: &str,
        cutoff: i64,
    ) -> Result<Option<Vec<UserPeerRow>>, sqlx::Error> {
        if !self.user_exists(name).await? {
            return Ok(None);
        }
        with_db!(self, |DB, write, read, lock| {
            let rows = sqlx::query(
                "SELECT p.peer_id, p.addrs, p.last_seen, p.left_at, p.message_key \
                 FROM peers p JOIN users u ON u.id = p.user_id WHERE u.name = $1 \
                 ORDER BY CASE WHEN p.left_at IS NULL AND p.last_seen >= $2 THEN 0 ELSE 1 END, \
                 p.last_seen DESC, p.peer_id",
            )
            .bind(name)
            .bind(cutoff)
            .fetch_all(read)
            .await?;
            Ok(Some(
                rows.into_iter()
                    .map(|r| UserPeerRow {
                        peer: PeerRow {
                            peer_id: r.get(0),
                            addrs_json: r.get(1),
                            last_seen: r.get(2),
                            left_at: r.get(3),
                        },
                        message_key: r.get(4),
                    })
                    .collect(),
            ))
        })
    }

    // ----- mail -----------------------------------------------------------

    /// Stores `letters` from `sender`, in order, all or none: refused if a
    /// recipient never joined or a mailbox limit would be passed (counting
    /// only unexpired letters). Returns the new ids in order.
    ///
    /// On PostgreSQL several transactions (of several index processes) may
    /// send to one peer at once. Each first locks the recipients' `peers`
    /// rows (`FOR UPDATE`, in peer id order so two batches never wait on
    /// each other in a cycle) and only then counts the letters waiting: a
    /// second sender to the same peer waits for the first to commit, and
    /// its count (a new snapshot per statement under READ COMMITTED) sees
    /// the first one's letters. So the limits hold as under SQLite's single
    /// writer, and a mailbox's ids are handed out in commit order.
    pub async fn send_letters(
        &self,
        sender: &User,
        letters: &[NewLetter],
        limits: MailLimits,
        now: i64,
        expires_at: i64,
        audit: &AuditRow,
    ) -> Result<Result<Vec<i64>, MailRefusal>, sqlx::Error> {
        let (from_user_id, from_user) = (sender.id, sender.name.as_str());
        let mut recipients: Vec<(&str, usize)> = Vec::new();
        for letter in letters {
            match recipients.iter_mut().find(|(p, _)| *p == letter.to_peer) {
                Some((_, n)) => *n += 1,
                None => recipients.push((&letter.to_peer, 1)),
            }
        }
        let mut in_lock_order: Vec<&str> = recipients.iter().map(|&(p, _)| p).collect();
        in_lock_order.sort_unstable();
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            let owner_sql = format!("SELECT user_id FROM peers WHERE peer_id = $1{lock}");
            let mut known: Vec<(&str, i64)> = Vec::with_capacity(recipients.len());
            for peer_id in in_lock_order {
                let owner: Option<i64> = sqlx::query(&owner_sql)
                    .bind(peer_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.get(0));
                if let Some(owner) = owner {
                    known.push((peer_id, owner));
                }
            }
            let mut owners = Vec::with_capacity(recipients.len());
            for &(peer_id, adding) in &recipients {
                let Some(&(_, owner)) = known.iter().find(|(p, _)| *p == peer_id) else {
                    return Ok(Err(MailRefusal::UnknownRecipient(peer_id.to_string())));
                };
                owners.push((peer_id, owner));
                let row = sqlx::query(
                    "SELECT COUNT(*), \
                     COALESCE(SUM(CASE WHEN from_user_id = $1 THEN 1 ELSE 0 END), 0) \
                     FROM letters WHERE to_peer = $2 AND expires_at > $3",
                )
                .bind(from_user_id)
                .bind(peer_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let (waiting, from_sender): (i64, i64) = (row.get(0), row.get(1));
                let more = adding as i64;
                if waiting + more > i64::from(limits.per_recipient) {
                    return Ok(Err(MailRefusal::RecipientFull {
                        peer_id: peer_id.to_string(),
                        waiting,
                        adding,
                        limit: limits.per_recipient,
                    }));
                }
                if from_sender + more > i64::from(limits.per_sender) {
                    return Ok(Err(MailRefusal::SenderFull {
                        peer_id: peer_id.to_string(),
                        waiting: from_sender,
                        adding,
                        limit: limits.per_sender,
                    }));
                }
            }
            let mut ids = Vec::with_capacity(letters.len());
            for letter in letters {
                let to_user_id = owners
                    .iter()
                    .find(|(p, _)| *p == letter.to_peer)
                    .map(|&(_, owner)| owner)
                    .expect("every recipient was looked up above");
                let id: i64 = sqlx::query(
                    "INSERT INTO letters \
                     (to_peer, to_user_id, from_user_id, from_user, envelope, stored_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&letter.to_peer)
                .bind(to_user_id)
                .bind(from_user_id)
                .bind(from_user)
                .bind(letter.envelope.as_slice())
                .bind(now)
                .bind(expires_at)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                ids.push(id);
            }
            commit_audited!(DB, tx, audit);
            Ok(Ok(ids))
        })
    }

    /// Up to `limit` unexpired letters for one of the user's peers (joined
    /// now or before) with ids above `after`, by id.
    pub async fn letters(
        &self,
        user_id: i64,
        peer_id: &str,
        after: i64,
        now: i64,
        limit: i64,
    ) -> Result<Result<Vec<LetterRow>, PeerRefusal>, sqlx::Error> {
        match self.peer_owner(peer_id).await? {
            None => return Ok(Err(PeerRefusal::Unknown)),
            Some(owner) if owner != user_id => return Ok(Err(PeerRefusal::NotYours)),
            Some(_) => {}
        }
        with_db!(self, |DB, write, read, lock| {
            let rows = sqlx::query(
                "SELECT id, from_user, envelope, stored_at, expires_at FROM letters \
                 WHERE to_peer = $1 AND to_user_id = $2 AND id > $3 AND expires_at > $4 \
                 ORDER BY id LIMIT $5",
            )
            .bind(peer_id)
            .bind(user_id)
            .bind(after)
            .bind(now)
            .bind(limit)
            .fetch_all(read)
            .await?;
            Ok(Ok(rows
                .into_iter()
                .map(|r| LetterRow {
                    id: r.get(0),
                    from_user: r.get(1),
                    envelope: r.get(2),
                    stored_at: r.get(3),
                    expires_at: r.get(4),
                })
                .collect()))
        })
    }

    /// Deletes the letters with these ids waiting for one of the user's
    /// peers (ids of other mailboxes are left alone); returns how many went.
    pub async fn ack_letters(
        &self,
        user_id: i64,
        peer_id: &str,
        ids: &[i64],
        audit: &AuditRow,
    ) -> Result<Result<u64, PeerRefusal>, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            if let Err(refusal) = check_peer!(tx, user_id, peer_id, true, lock) {
                return Ok(Err(refusal));
            }
            let mut deleted = 0;
            for chunk in ids.chunks(INSERT_CHUNK) {
                let mut q = QueryBuilder::<DB>::new("DELETE FROM letters WHERE to_peer = ");
                q.push_bind(peer_id)
                    .push(" AND to_user_id = ")
                    .push_bind(user_id)
                    .push(" AND id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                deleted += q.build().execute(&mut *tx).await?.rows_affected();
            }
            commit_audited!(DB, tx, audit);
            Ok(Ok(deleted))
        })
    }

    // ----- audit ----------------------------------------------------------

    /// Appends audit records in one transaction.
    pub async fn insert_audit(&self, rows: &[AuditRow]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        with_db!(self, |DB, write, read, lock| {
            let mut tx = write.begin().await?;
            insert_audit_rows!(DB, tx, rows);
            tx.commit().await
        })
    }

    /// Deletes audit records older than `before` (ms), a few thousand per
    /// transaction so writers are never held up long; returns how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let mut deleted = 0;
            loop {
                let n = sqlx::query(
                    "DELETE FROM audit WHERE id IN \
                     (SELECT id FROM audit WHERE at < $1 ORDER BY at LIMIT 5000)",
                )
                .bind(before)
                .execute(write)
                .await?
                .rows_affected();
                deleted += n;
                if n < 5000 {
                    return Ok(deleted);
                }
            }
        })
    }

    /// One page of the audit log, newest first, and the total number of records.
    pub async fn audit_page(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
        with_db!(self, |DB, write, read, lock| {
            let total: i64 = sqlx::query("SELECT COUNT(*) FROM audit")
                .fetch_one(read)
                .await?
                .get(0);
            let rows = sqlx::query(
                "SELECT id, at, user_name, peer_id, action, outcome, detail, client FROM audit \
                 ORDER BY id DESC LIMIT $1 OFFSET $2",
            )
            .bind(limit)
            .bind(offset)
            .fetch_all(read)
            .await?;
            let rows = rows
                .into_iter()
                .map(|r| AuditRow {
                    id: r.get(0),
                    at: r.get(1),
                    user_name: r.get(2),
                    peer_id: r.get(3),
                    action: r.get(4),
                    outcome: r.get(5),
                    detail: r.get(6),
                    client: r.get(7),
                })
                .collect();
            Ok((rows, total))
        })
    }
}
