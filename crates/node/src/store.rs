//! The peer's own database (SQLite in WAL mode, `peer.db` in the data
//! folder): the hash cache of shared files and the list of downloads.
//!
//! Every write returns only after SQLite committed it. This module knows
//! rows, not policy: deciding what to hash or download lives elsewhere.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use peershare_core::scan::ScannedFile;
use peershare_core::{FileId, Outboard, PieceLayout};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use crate::views::{DownloadOptions, DownloadRecord, DownloadState};
use crate::NodeError;

/// The peer database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A cached hash of a shared file.
pub struct CachedHash {
    /// Size when hashed.
    pub size: u64,
    /// Modification time when hashed.
    pub mtime_ns: i64,
    /// The piece tree (checked against its id when loaded).
    pub outboard: Outboard,
    /// The device and inode when hashed; `None` in rows older than that column.
    pub identity: Option<(u64, u64)>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs migrations.
    ///
    /// An existing database that is empty, not SQLite or damaged is refused
    /// with what to do, never replaced by an empty one.
    pub async fn open(path: &Path) -> Result<Self, NodeError> {
        const START_OVER: &str = "over with no downloads, shares or contacts";
        let refuse =
            |why: String| NodeError::Store(format!("{} cannot be used: {why}", path.display()));
        peershare_core::db_file::check(path, START_OVER).map_err(refuse)?;
        let damaged = |e: String| {
            if peershare_core::db_file::is_corruption(&e) {
                refuse(peershare_core::db_file::damaged(START_OVER, &e))
            } else {
                NodeError::Store(format!("{}: {e}", path.display()))
            }
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| damaged(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| damaged(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The cached hash for `path`, if one was stored and still checks out.
    pub async fn cached_hash(&self, path: &str) -> Result<Option<CachedHash>, NodeError> {
        let row = sqlx::query(
            "SELECT size, mtime_ns, piece_len, file_id, leaves, device, inode
             FROM hash_cache WHERE path = ?",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = row.get(0);
        let piece_len: i64 = row.get(2);
        let id: String = row.get(3);
        let leaves: Vec<u8> = row.get(4);
        let device: Option<i64> = row.get(5);
        let inode: Option<i64> = row.get(6);
        let outboard = FileId::from_str(&id).ok().and_then(|id| {
            let layout = PieceLayout::new(size as u64, piece_len as u64).ok()?;
            Outboard::from_leaf_bytes(layout, &leaves, &id).ok()
        });
        Ok(outboard.map(|outboard| CachedHash {
            size: size as u64,
            mtime_ns: row.get(1),
            outboard,
            identity: device.zip(inode).map(|(d, i)| (d as u64, i as u64)),
        }))
    }

    /// Stores the hash of the file at `path` as it was scanned.
    pub async fn put_hash(&self, file: &ScannedFile, outboard: &Outboard) -> Result<(), NodeError> {
        sqlx::query(
            "INSERT INTO hash_cache (path, size, mtime_ns, piece_len, file_id, leaves, device, inode)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
               piece_len = excluded.piece_len, file_id = excluded.file_id, leaves = excluded.leaves,
               device = excluded.device, inode = excluded.inode",
        )
        .bind(file.path.to_string_lossy())
        .bind(file.size as i64)
        .bind(file.mtime_ns)
        .bind(outboard.layout().piece_len() as i64)
        .bind(outboard.id().to_hex())
        .bind(outboard.leaf_bytes())
        .bind(file.identity.0 as i64)
        .bind(file.identity.1 as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the identity of a file whose cached hash predates identities.
    pub async fn note_hash_identity(&self, file: &ScannedFile) -> Result<(), NodeError> {
        sqlx::query("UPDATE hash_cache SET device = ?, inode = ? WHERE path = ?")
            .bind(file.identity.0 as i64)
            .bind(file.identity.1 as i64)
            .bind(file.path.to_string_lossy())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets cached hashes of paths not in `keep`.
    pub async fn prune_hashes(&self, keep: &[String]) -> Result<u64, NodeError> {
        let keep: std::collections::HashSet<&str> = keep.iter().map(String::as_str).collect();
        let paths: Vec<String> = sqlx::query_scalar("SELECT path FROM hash_cache")
            .fetch_all(&self.pool)
            .await?;
        let mut removed = 0;
        for path in paths.iter().filter(|p| !keep.contains(p.as_str())) {
            sqlx::query("DELETE FROM hash_cache WHERE path = ?")
                .bind(path)
                .execute(&self.pool)
                .await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Records a new active download, fetched as `options` say.
    pub async fn insert_download(
        &self,
        file_id: &FileId,
        name: &str,
        size: u64,
        source: &str,
        options: &DownloadOptions,
    ) -> Result<DownloadRecord, NodeError> {
        let id = sqlx::query(
            "INSERT INTO downloads (file_id, name, size, source, state, created_at, sequential, max_rate)
             VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
        )
        .bind(file_id.to_hex())
        .bind(name)
        .bind(size as i64)
        .bind(source)
        .bind(now_secs())
        .bind(options.sequential)
        .bind(options.max_rate.map(|r| r as i64))
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        self.download(id)
            .await?
            .ok_or_else(|| NodeError::Store("a download vanished after insert".into()))
    }

    /// Changes how a download is fetched (a `get` again with other options).
    pub async fn set_download_options(
        &self,
        id: i64,
        options: &DownloadOptions,
    ) -> Result<(), NodeError> {
        sqlx::query("UPDATE downloads SET sequential = ?, max_rate = ? WHERE id = ?")
            .bind(options.sequential)
            .bind(options.max_rate.map(|r| r as i64))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a download active again (a resume), with a possibly new source.
    pub async fn reactivate_download(&self, id: i64, source: &str) -> Result<(), NodeError> {
        sqlx::query(
            "UPDATE downloads SET state = 'active', error = NULL, next_try_ms = NULL, source = ?
             WHERE id = ?",
        )
        .bind(source)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a download ended.
    pub async fn finish_download(
        &self,
        id: i64,
        state: DownloadState,
        error: Option<&str>,
        path: Option<&str>,
    ) -> Result<(), NodeError> {
        sqlx::query(
            "UPDATE downloads SET state = ?, error = ?, path = ?, finished_at = ?, next_try_ms = NULL
             WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(path)
        .bind(now_secs())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a state a download waits in (queued until `next_try_ms`, paused, cancelled).
    pub async fn set_download_state(
        &self,
        id: i64,
        state: DownloadState,
        reason: Option<&str>,
        next_try_ms: Option<i64>,
    ) -> Result<(), NodeError> {
        sqlx::query("UPDATE downloads SET state = ?, error = ?, next_try_ms = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(reason)
            .bind(next_try_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets a download's entry; true if there was one.
    pub async fn remove_download(&self, id: i64) -> Result<bool, NodeError> {
        let done = sqlx::query("DELETE FROM downloads WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One download by number.
    pub async fn download(&self, id: i64) -> Result<Option<DownloadRecord>, NodeError> {
        let row = sqlx::query(&format!("{SELECT_DOWNLOAD} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(download_from_row))
    }

    /// The newest unfinished download of `file_id`, if any (to resume it).
    pub async fn unfinished_download(
        &self,
        file_id: &FileId,
    ) -> Result<Option<DownloadRecord>, NodeError> {
        let row = sqlx::query(&format!(
            "{SELECT_DOWNLOAD} WHERE file_id = ? AND state NOT IN ('done', 'cancelled')
         ORDER BY id DESC LIMIT 1"
        ))
        .bind(file_id.to_hex())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(download_from_row))
    }

    /// Where finished downloads were saved (they are shared from there).
    pub async fn finished_download_paths(&self) -> Result<Vec<PathBuf>, NodeError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT path FROM downloads WHERE state = 'done' AND path IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(p,)| PathBuf::from(p)).collect())
    }

    /// All downloads, newest first.
    pub async fn downloads(&self) -> Result<Vec<DownloadRecord>, NodeError> {
        let rows = sqlx::query(&format!("{SELECT_DOWNLOAD} ORDER BY id DESC"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(download_from_row).collect())
    }

    /// Records that `folder` was shared (`true`) or unshared at run time.
    pub async fn set_folder_shared(&self, folder: &Path, shared: bool) -> Result<(), NodeError> {
        sqlx::query(
            "INSERT INTO shared_folders (path, shared) VALUES (?, ?)
             ON CONFLICT (path) DO UPDATE SET shared = excluded.shared",
        )
        .bind(folder.to_string_lossy())
        .bind(shared)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The folders shared or unshared at run time.
    pub async fn recorded_folders(&self) -> Result<Vec<(PathBuf, bool)>, NodeError> {
        let rows: Vec<(String, bool)> = sqlx::query_as("SELECT path, shared FROM shared_folders")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(p, s)| (PathBuf::from(p), s))
            .collect())
    }

    /// A setting changed at run time, if it was.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, NodeError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records a setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), NodeError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The connection pool, for subsystems that keep tables of their own (messages).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const SELECT_DOWNLOAD: &str = "SELECT id, file_id, name, size, source, state, error, path, \
                               created_at, finished_at, next_try_ms, sequential, max_rate \
                               FROM downloads";

fn download_from_row(row: &sqlx::sqlite::SqliteRow) -> DownloadRecord {
    let file_id: String = row.get(1);
    let size: i64 = row.get(3);
    let state: String = row.get(5);
    DownloadRecord {
        id: row.get(0),
        file_id: file_id.parse().unwrap_or(FileId::from_bytes([0; 32])),
        name: row.get(2),
        size: size as u64,
        source: row.get(4),
        state: DownloadState::parse(&state),
        error: row.get(6),
        path: row.get(7),
        created_at: row.get(8),
        finished_at: row.get(9),
        next_try_ms: row.get(10),
        sequential: row.get(11),
        max_rate: row.get::<Option<i64>, _>(12).map(|r| r.max(0) as u64),
    }
}
