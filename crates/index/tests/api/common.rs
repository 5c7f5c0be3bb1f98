//! Shared helpers: a real index on 127.0.0.1:0 over a real SQLite file in a
//! temporary folder (or, in the api_postgres tests, a fresh database on a
//! real PostgreSQL server), a real HTTP client, and ed25519 peer keys.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use libp2p_identity::Keypair;
use peershare_index::{start, IndexConfig, RunningIndex};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

/// The password every helper-made user has.
pub const PASSWORD: &str = "correct horse";

/// One index under test.
pub struct Index {
    pub running: Option<RunningIndex>,
    pub _dir: tempfile::TempDir,
    pub config: IndexConfig,
    pub http: reqwest::Client,
    pub base: String,
}

/// Settings for a test index.
pub fn config(dir: PathBuf) -> IndexConfig {
    let mut c = IndexConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.heartbeat = Duration::from_secs(1);
    c.admins = vec!["root".to_string()];
    // Tests register many users from 127.0.0.1; the limit has its own test.
    c.registrations_per_minute = 0;
    c
}

impl Index {
    /// Starts an index with the default test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts an index after `tweak` changed its settings.
    pub async fn start_with(tweak: impl FnOnce(&mut IndexConfig)) -> Self {
        Self::start_with_client(tweak, http_client()).await
    }

    /// Starts an index after `tweak` changed its settings (it gets the
    /// temporary folder too), to be called with `http`.
    pub async fn start_with_client(
        tweak: impl FnOnce(&mut IndexConfig),
        http: reqwest::Client,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path().join("index"));
        if crate::POSTGRES {
            cfg.database = Some(crate::postgres::fresh_database().await);
        }
        tweak(&mut cfg);
        let running = start(cfg.clone()).await.unwrap();
        let base = format!("{}/api/v1", running.url());
        Self {
            running: Some(running),
            _dir: dir,
            config: cfg,
            http,
            base,
        }
    }

    /// Stops the index and starts a new one on the same data folder.
    pub async fn restart(&mut self) {
        self.running.take().unwrap().stop().await;
        let running = start(self.config.clone()).await.unwrap();
        self.base = format!("{}/api/v1", running.url());
        self.running = Some(running);
    }

    /// A connection to the index's database, next to the server.
    pub async fn db(&self) -> Db {
        match &self.config.database {
            Some(url) => Db::Postgres(PgConnection::connect(url).await.unwrap()),
            None => {
                let options = SqliteConnectOptions::new().filename(self.config.database_path());
                Db::Sqlite(SqliteConnection::connect_with(&options).await.unwrap())
            }
        }
    }

    /// Sends a request with an optional token and JSON body; returns status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("non-JSON body {text:?} ({status}): {e}"))
        };
        if !status.is_success() {
            assert_error_shape(&value);
        }
        (status, value)
    }

    /// Sends a raw body with a content type; returns status and JSON body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let value: Value = resp.json().await.expect("error bodies are JSON");
        if !status.is_success() {
            assert_error_shape(&value);
        }
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Registers a user; returns the status.
    pub async fn register(&self, name: &str, password: &str) -> StatusCode {
        self.call(
            Method::POST,
            "/users",
            None,
            Some(json!({"name": name, "password": password})),
        )
        .await
        .0
    }

    /// Logs in; returns status and body.
    pub async fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/sessions",
            None,
            Some(json!({"name": name, "password": password})),
        )
        .await
    }

    /// Registers and logs in; returns the token.
    pub async fn user(&self, name: &str) -> String {
        assert_eq!(self.register(name, PASSWORD).await, StatusCode::CREATED);
        let (status, body) = self.login(name, PASSWORD).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Gets a challenge and joins `key`'s peer with `files`, signing with `signer`.
    pub async fn join_signed(
        &self,
        token: &str,
        key: &Keypair,
        signer: &Keypair,
        files: Value,
    ) -> (StatusCode, Value) {
        self.join_with(token, key, signer, files, json!({})).await
    }

    /// Like [`Index::join_signed`], with the fields of `extra` (an object) added to the join.
    pub async fn join_with(
        &self,
        token: &str,
        key: &Keypair,
        signer: &Keypair,
        files: Value,
        extra: Value,
    ) -> (StatusCode, Value) {
        let peer_id = key.public().to_peer_id().to_string();
        let (status, ch) = self
            .call(
                Method::POST,
                "/peers/challenge",
                Some(token),
                Some(json!({"peer_id": peer_id})),
            )
            .await;
        if status != StatusCode::CREATED {
            return (status, ch);
        }
        let message = ch["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!("peershare-join:{}", ch["nonce"].as_str().unwrap())
        );
        let signature = signer.sign(message.as_bytes()).unwrap();
        let mut body = json!({
            "peer_id": peer_id,
            "addrs": ["/ip4/127.0.0.1/tcp/4100"],
            "public_key": hex(&key.public().encode_protobuf()),
            "signature": hex(&signature),
            "files": files,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.call(Method::POST, "/peers", Some(token), Some(body))
            .await
    }

    /// Joins a peer with its own key; panics unless it worked. Returns the peer id.
    pub async fn join(&self, token: &str, key: &Keypair, files: Value) -> String {
        let (status, body) = self.join_signed(token, key, key, files).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["peer_id"].as_str().unwrap().to_string()
    }

    /// Searches with a raw query string; panics unless 200.
    pub async fn search(&self, token: &str, query: &str) -> Value {
        let (status, body) = self.get(&format!("/search?{query}"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// A connection to an index's database, for SQL written with `$1, $2…`
/// placeholders (both engines read them) and integer arguments.
pub enum Db {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Binds `$args` to `$sql` and runs `$run` with the query `$q` on the
/// connection `$c`, whichever engine `$db` is.
macro_rules! bound {
    ($db:expr, $sql:expr, $args:expr, |$q:ident, $c:ident| $run:expr) => {
        match $db {
            Db::Sqlite($c) => {
                let mut $q = sqlx::query($sql);
                for a in $args {
                    $q = $q.bind(*a);
                }
                $run
            }
            Db::Postgres($c) => {
                let mut $q = sqlx::query($sql);
                for a in $args {
                    $q = $q.bind(*a);
                }
                $run
            }
        }
    };
}

impl Db {
    /// The first column of the first row of `sql`, an integer.
    pub async fn number(&mut self, sql: &str, args: &[i64]) -> i64 {
        bound!(self, sql, args, |q, c| q.fetch_one(c).await.unwrap().get(0))
    }

    /// Runs `sql`; returns the rows it changed.
    pub async fn execute(&mut self, sql: &str, args: &[i64]) -> u64 {
        bound!(self, sql, args, |q, c| q
            .execute(c)
            .await
            .unwrap()
            .rows_affected())
    }

    /// The first column of the first row of `sql`, bytes.
    pub async fn bytes(&mut self, sql: &str, args: &[i64]) -> Vec<u8> {
        bound!(self, sql, args, |q, c| q.fetch_one(c).await.unwrap().get(0))
    }

    /// The first column of the first row of `sql`, text.
    pub async fn text(&mut self, sql: &str, args: &[i64]) -> String {
        bound!(self, sql, args, |q, c| q.fetch_one(c).await.unwrap().get(0))
    }

    pub async fn close(self) {
        match self {
            Db::Sqlite(c) => c.close().await.unwrap(),
            Db::Postgres(c) => c.close().await.unwrap(),
        }
    }
}

/// Every error response is `{"error": code, "message": text}`.
pub fn assert_error_shape(v: &Value) {
    assert!(v["error"].is_string(), "error code missing in {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message missing in {v}"
    );
}

/// Hex text of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file entry whose id is derived from its name and size.
pub fn file(name: &str, size: u64) -> Value {
    json!({"name": name, "size": size, "id": id_of(name)})
}

/// A stable fake content id for a name.
pub fn id_of(name: &str) -> String {
    fake_hash(name.as_bytes())
}

/// 64 hex digits derived from `bytes` (a content id only has to look like one here).
fn fake_hash(bytes: &[u8]) -> String {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::with_capacity(64);
    for round in 0u64..4 {
        for b in bytes.iter().chain(round.to_le_bytes().iter()) {
            state ^= u64::from(*b);
            state = state.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{state:016x}"));
    }
    out
}

/// The search results' ids, in order.
/// The result ids, sorted (for checks that do not care about rank).
pub fn sorted_ids(results: &Value) -> Vec<String> {
    let mut ids = ids(results);
    ids.sort();
    ids
}

/// The sorted ids of these names.
pub fn sorted_ids_of(names: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = names.iter().map(|n| id_of(n)).collect();
    ids.sort();
    ids
}

/// The result ids in rank order.
pub fn ids(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` until it is true or `within` passes; returns whether it became true.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP client; the workspace builds reqwest's rustls without a provider of its own.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}
