//! The index's settings: where it listens (and with which TLS certificate),
//! where it keeps its data (a SQLite file, or a PostgreSQL database), how long peers and tokens stay valid, who may
//! read the audit log, how much load it takes before turning requests away,
//! and how long and how many sealed letters wait in mailboxes.
//!
//! This module only describes settings; it never reads files, the environment
//! or the command line (the binary does that and fills in [`IndexConfig`]).
//! The struct deserialises from any serde format (a TOML config file, say):
//! durations are whole seconds, missing keys keep their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The port an index listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 1099;

/// Everything an index needs to run. Mailboxes are bounded by `mail_ttl`
/// (letters not collected by then are deleted), `mailbox_per_recipient`
/// (letters waiting for one peer) and `mailbox_per_sender` (letters from one
/// user waiting for one peer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Address to listen on; port 0 picks a free port (see [`crate::RunningIndex::addr`]).
    pub listen: SocketAddr,
    /// Folder holding `index.db` (unless `database` is set) and the
    /// instance secret; created if missing.
    pub data_dir: PathBuf,
    /// A PostgreSQL database to keep the index's data in instead of
    /// `index.db`: a `postgres://` or `postgresql://` URL, e.g.
    /// `postgres://peershare:secret@db.example:5432/peershare` (any other
    /// text is refused at start). The index creates and migrates its schema
    /// there; several indexes may share one database. `None`: SQLite.
    pub database: Option<String>,
    /// How often peers are asked to send a heartbeat.
    #[serde(with = "seconds")]
    pub heartbeat: Duration,
    /// A peer whose last heartbeat is older than this counts as offline.
    #[serde(with = "seconds")]
    pub peer_timeout: Duration,
    /// How long a login token stays valid.
    #[serde(with = "seconds")]
    pub token_lifetime: Duration,
    /// User names allowed to read the audit log.
    pub admins: Vec<String>,
    /// PEM file with the TLS certificate chain; with `tls_key`, serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key; with `tls_cert`, serve HTTPS.
    pub tls_key: Option<PathBuf>,
    /// Accounts one client address may register per minute (0: no limit).
    pub registrations_per_minute: u32,
    /// Searches run at once.
    pub search_slots: u32,
    /// Searches waiting for a slot; past that, searches are answered 503.
    pub search_queue: u32,
    /// Searches of one user running or waiting for a slot at once (at least 1);
    /// more wait behind them, and past `search_queue` of those are answered 503.
    pub searches_per_user: u32,
    /// Searches from one client address (an IPv6 /64) running or waiting for
    /// a slot at once (at least 1), whichever users send them.
    pub searches_per_address: u32,
    /// Days audit records are kept; older ones are deleted at start and
    /// every hour (0: kept forever).
    pub audit_retention_days: u32,
    /// How long a letter waits in a mailbox before it is deleted unread.
    #[serde(with = "seconds")]
    pub mail_ttl: Duration,
    /// Letters waiting for one recipient peer, at most; past that, sends to it are answered 429.
    pub mailbox_per_recipient: u32,
    /// Letters from one user waiting for one recipient peer, at most.
    pub mailbox_per_sender: u32,
    /// Files (one per peer, id and name) the online catalogue may list at
    /// once; joins and publishes past it are answered 503.
    pub max_files: u64,
    /// Files one user may list at once across their peers (0: no limit);
    /// joins and publishes past it are answered 429 `listing_quota`.
    pub max_files_per_user: u64,
    /// Resident memory (MiB) past which joins and publishes are answered
    /// 503 (0: no limit); searches and everything else go on.
    pub memory_limit_mib: u64,
}

impl IndexConfig {
    /// The defaults (port 1099 on all interfaces, plain HTTP, 30 s heartbeats,
    /// 90 s timeout, 7-day tokens, no admins, 10 registrations per address a
    /// minute, 4 searches at once and 16 waiting (of those at most 2 of one
    /// user and 6 from one address), audit records kept 90 days, letters kept 14 days, at
    /// most 1000 waiting per recipient peer and 200 of those from one sender,
    /// 20 million files listed, a million of them by one user, no memory
    /// limit) with the given data folder.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            data_dir: data_dir.into(),
            database: None,
            heartbeat: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(90),
            token_lifetime: Duration::from_secs(7 * 24 * 3600),
            admins: Vec::new(),
            tls_cert: None,
            tls_key: None,
            registrations_per_minute: 10,
            search_slots: 4,
            search_queue: 16,
            searches_per_user: 2,
            searches_per_address: 6,
            audit_retention_days: 90,
            mail_ttl: Duration::from_secs(14 * 24 * 3600),
            mailbox_per_recipient: 1000,
            mailbox_per_sender: 200,
            max_files: 20_000_000,
            max_files_per_user: 1_000_000,
            memory_limit_mib: 0,
        }
    }

    /// The path of the SQLite database inside the data folder (used unless
    /// `database` is set).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("index.db")
    }

    /// Where the index keeps its data: the PostgreSQL database of
    /// `database`, else the SQLite file in the data folder. Errs (saying
    /// what is accepted) when `database` is not a PostgreSQL URL.
    pub fn store_location(&self) -> Result<StoreLocation, String> {
        match self.database.as_deref().map(str::trim) {
            None => Ok(StoreLocation::Sqlite(self.database_path())),
            Some(url)
                if ["postgres://", "postgresql://"].iter().any(|scheme| {
                    url.get(..scheme.len())
                        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
                }) =>
            {
                Ok(StoreLocation::Postgres(url.to_string()))
            }
            Some(_) => Err("the database setting is not a PostgreSQL URL: give \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgresql://…), or leave \
                 it out to keep the index in SQLite (index.db in the data folder)"
                .to_string()),
        }
    }
}

/// Where an index keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl std::fmt::Display for StoreLocation {
    /// The engine and where, never a password: `SQLite /path/index.db` or
    /// `PostgreSQL postgres://user@host:port/database`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Self::Postgres(url) => write!(f, "PostgreSQL {}", describe_postgres(url)),
        }
    }
}

/// A PostgreSQL URL as it may be shown: user, host, port and database, no
/// password nor other parameters.
pub fn describe_postgres(url: &str) -> String {
    match sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(o.get_username())
        ),
        Err(_) => "(a PostgreSQL URL that cannot be read)".to_string(),
    }
}

impl Default for IndexConfig {
    /// The defaults with the data folder `peershare-index` in the working directory.
    fn default() -> Self {
        Self::new("peershare-index")
    }
}

/// Durations as whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = u64::deserialize(d)?;
        if secs == 0 {
            return Err(serde::de::Error::custom(
                "a duration must be at least 1 second",
            ));
        }
        Ok(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialises_with_defaults_and_seconds() {
        let c: IndexConfig = serde_json::from_str(
            r#"{"listen": "127.0.0.1:2000", "peer_timeout": 5, "admins": ["root"]}"#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2000);
        assert_eq!(c.peer_timeout, Duration::from_secs(5));
        assert_eq!(c.heartbeat, Duration::from_secs(30));
        assert_eq!(c.admins, vec!["root".to_string()]);
        assert_eq!(c.mail_ttl, Duration::from_secs(14 * 24 * 3600));
        assert_eq!((c.mailbox_per_recipient, c.mailbox_per_sender), (1000, 200));
        assert_eq!((c.searches_per_user, c.searches_per_address), (2, 6));
        assert_eq!(c.audit_retention_days, 90);
        let kept: IndexConfig =
            serde_json::from_str(r#"{"audit_retention_days": 0, "searches_per_user": 1}"#).unwrap();
        assert_eq!((kept.audit_retention_days, kept.searches_per_user), (0, 1));
        let mail: IndexConfig =
            serde_json::from_str(r#"{"mail_ttl": 60, "mailbox_per_sender": 5}"#).unwrap();
        assert_eq!(mail.mail_ttl, Duration::from_secs(60));
        assert_eq!(mail.mailbox_per_sender, 5);
        assert!(serde_json::from_str::<IndexConfig>(r#"{"mail_ttl": 0}"#).is_err());
        assert!(serde_json::from_str::<IndexConfig>(r#"{"heartbeat": 0}"#).is_err());
        assert!(serde_json::from_str::<IndexConfig>(r#"{"colour": "red"}"#).is_err());
        assert_eq!(c.tls_cert, None);
        let tls: IndexConfig =
            serde_json::from_str(r#"{"tls_cert": "c.pem", "tls_key": "k.pem"}"#).unwrap();
        assert_eq!(tls.tls_key, Some(PathBuf::from("k.pem")));
        let round: IndexConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn the_database_setting_takes_postgresql_urls_only() {
        let mut c = IndexConfig::new("/d");
        assert_eq!(
            c.store_location(),
            Ok(StoreLocation::Sqlite(PathBuf::from("/d/index.db")))
        );
        for url in ["postgres://u:pw@h:5433/db", "PostgreSQL://u@h/db"] {
            c.database = Some(url.to_string());
            assert_eq!(c.store_location(), Ok(StoreLocation::Postgres(url.into())));
        }
        for other in [
            "mysql://u@h/db",
            "index.db",
            "sqlite://x.db",
            "",
            "postgres:/x",
        ] {
            c.database = Some(other.to_string());
            let e = c.store_location().unwrap_err();
            assert!(e.contains("postgres://") && e.contains("SQLite"), "{e}");
        }
        let parsed: IndexConfig =
            serde_json::from_str(r#"{"database": "postgres://u@h/db"}"#).unwrap();
        assert_eq!(parsed.database.as_deref(), Some("postgres://u@h/db"));
        assert_eq!(IndexConfig::default().database, None);
    }

    #[test]
    fn postgresql_urls_are_shown_without_their_password() {
        let shown =
            StoreLocation::Postgres("postgres://ix:hunter2@db:5433/peers?sslmode=require".into())
                .to_string();
        assert_eq!(shown, "PostgreSQL postgres://ix@db:5433/peers");
        let shown = describe_postgres("postgresql://ix@db/peers?password=hunter2");
        assert_eq!(shown, "postgres://ix@db:5432/peers");
        assert_eq!(
            StoreLocation::Sqlite(PathBuf::from("/d/index.db")).to_string(),
            "SQLite /d/index.db"
        );
    }
}
