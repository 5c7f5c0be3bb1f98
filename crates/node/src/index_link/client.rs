//! The index's REST API as seen from a peer: one typed call per endpoint
//! (accounts, join/heartbeat/leave, publish/unpublish, search, users,
//! audit), over HTTP or HTTPS with rustls.
//!
//! This module only speaks HTTP; it keeps no session and decides nothing
//! (the [`crate::index_link`] does). It never imports the index crate: the
//! JSON shapes here are the published API (docs/openapi.json), so the node
//! talks to an index like any third-party client would.

use std::path::Path;
use std::time::Duration;

use peershare_core::FileId;
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::views::{Hit, Holder, Origin};
use crate::NodeError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from an index; a bigger one is refused, not buffered.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why a call to the index failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexClientError {
    /// The index could not be reached (down, wrong address, TLS failure, timeout).
    #[error("the index at {url} is unreachable ({reason}); the daemon keeps retrying and serving known peers")]
    Unreachable {
        /// The index's base URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The index answered with an error.
    #[error("the index refused: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The index's error code.
        code: String,
        /// The index's message, meant for people.
        message: String,
    },
    /// The index answered something that is not the documented API.
    #[error("the index at {url} sent an answer this peer does not understand ({reason}); is it a peershare index?")]
    BadAnswer {
        /// The index's base URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl IndexClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A login session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// The user it belongs to.
    pub name: String,
}

/// The challenge a joining peer signs.
#[derive(Debug, Clone, Deserialize)]
pub struct Challenge {
    /// The exact bytes to sign.
    pub message: String,
}

/// One file as the index lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexedFile {
    /// The name peers see.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The BLAKE3 id, hex.
    pub id: FileId,
}

/// Why files are published.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PublishReason {
    /// Found in a shared folder.
    Share,
    /// Downloaded by this peer.
    Download,
}

/// A join: the peer, where to reach it, the proof and its files.
#[derive(Debug, Clone, Serialize)]
pub struct JoinRequest {
    /// The peer id.
    pub peer_id: String,
    /// Listen addresses (multiaddrs without `/p2p`).
    pub addrs: Vec<String>,
    /// The protobuf-encoded public key, hex.
    pub public_key: String,
    /// The signature over the challenge's message, hex.
    pub signature: String,
    /// The files shared (the first part of a long list).
    pub files: Vec<IndexedFile>,
    /// The peer's messaging key card, base64 (see docs/PROTOCOL.md §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_key: Option<String>,
}

/// The index's answer to a join.
#[derive(Debug, Clone, Deserialize)]
pub struct Joined {
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// Seconds without a heartbeat before the peer counts as offline.
    pub peer_timeout_secs: u64,
    /// Online peers to join the DHT through (full addresses).
    #[serde(default)]
    pub bootstrap: Vec<String>,
}

/// A user's peers as the index lists them for messages.
#[derive(Debug, Clone, Deserialize)]
pub struct UserPeers {
    /// Whether any of them is online.
    pub online: bool,
    /// The latest time one was seen (ms since the Unix epoch).
    #[serde(default)]
    pub last_seen: Option<i64>,
    /// Every peer the user joined.
    pub peers: Vec<UserPeer>,
}

/// One of a user's peers.
#[derive(Debug, Clone, Deserialize)]
pub struct UserPeer {
    /// Its peer id.
    pub peer_id: String,
    /// Whether it is online.
    pub online: bool,
    /// Its messaging key card (base64), as the peer gave it.
    #[serde(default)]
    pub message_key: Option<String>,
}

/// A sealed letter for one recipient peer.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingLetter {
    /// The recipient peer.
    pub to_peer: String,
    /// The envelope, standard base64.
    pub envelope: String,
}

/// What the index stored.
#[derive(Debug, Clone, Deserialize)]
pub struct MailSent {
    /// The letters' ids in the mailbox.
    pub stored: Vec<i64>,
}

/// A letter waiting in this peer's mailbox.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredLetter {
    /// Its id in the mailbox.
    pub id: i64,
    /// The sending user, as the index knows them.
    pub from_user: String,
    /// The envelope, standard base64.
    pub envelope: String,
}

/// Search parameters, as the index takes them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text to look for.
    pub q: String,
    /// `words` (the default), `substring`, `exact`, or `id` (the text is a file id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Only names with this extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    /// Smallest size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Largest size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Results to skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// Results per page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// What an index search found: hits whose holders carry their user names.
#[derive(Debug, Clone, Default)]
pub struct IndexResults {
    /// Files on this page, one per id.
    pub hits: Vec<Hit>,
    /// Files the index counts for the query, all pages.
    pub total: u64,
}

/// A page of results as the index sends it (see the index's OpenAPI document).
#[derive(Deserialize)]
struct ResultsPage {
    results: Vec<ListedFile>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct ListedFile {
    id: FileId,
    names: Vec<String>,
    size: u64,
    sources: Vec<ListedHolder>,
    /// Absent from indexes older than the sources cap.
    #[serde(default)]
    sources_total: usize,
}

#[derive(Deserialize)]
struct ListedHolder {
    user: String,
    peer_id: String,
    addrs: Vec<String>,
}

impl From<ResultsPage> for IndexResults {
    fn from(page: ResultsPage) -> Self {
        let total = page.total.unwrap_or(page.results.len() as u64);
        let hits = page.results.into_iter().map(ListedFile::into_hit).collect();
        Self { hits, total }
    }
}

impl ListedFile {
    fn into_hit(self) -> Hit {
        let sources_total = self.sources_total.max(self.sources.len());
        let sources = self
            .sources
            .into_iter()
            .map(|listed| Holder {
                user: Some(listed.user),
                ..Holder::found(listed.peer_id, &listed.addrs, Origin::Index)
            })
            .collect();
        Hit {
            id: self.id,
            names: self.names,
            size: self.size,
            sources,
            sources_total,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// A client of one index.
#[derive(Clone)]
pub struct IndexClient {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl IndexClient {
    /// A client of the index at `url` (http:// or https://), trusting `extra_ca` besides the system roots.
    pub fn new(url: &str, extra_ca: Option<&Path>) -> Result<Self, NodeError> {
        let base = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                NodeError::BadRequest(format!(
                    "{url:?} is not an index URL; use http://HOST:1099 or https://HOST:1099"
                ))
            })?;
        // reqwest's rustls has no provider of its own here: use the one the node already links.
        crate::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("peershare/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(|e| NodeError::io(path, e))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                NodeError::BadRequest(format!(
                    "{} is not a PEM certificate ({e}); give the index's certificate or its CA",
                    path.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| NodeError::BadRequest(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self { http, base })
    }

    /// The index's base URL.
    pub fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    fn request(&self, method: Method, path: &[&str], token: Option<&str>) -> RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["api", "v1"]).extend(path);
        }
        let request = self.http.request(method, url);
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, IndexClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| IndexClientError::Unreachable {
                url: self.url(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = self.read_capped(response).await.unwrap_or_default();
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => IndexClientError::Refused {
                status: status.as_u16(),
                code: e.error,
                message: e.message,
            },
            Err(_) if status.is_server_error() => IndexClientError::Unreachable {
                url: self.url(),
                reason: format!("HTTP {status}"),
            },
            Err(_) => IndexClientError::BadAnswer {
                url: self.url(),
                reason: format!("HTTP {status} without an error body"),
            },
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, IndexClientError> {
        let response = self.send(request).await?;
        let body = self.read_capped(response).await?;
        serde_json::from_slice(&body).map_err(|e| IndexClientError::BadAnswer {
            url: self.url(),
            reason: e.to_string(),
        })
    }

    /// Reads a body of at most [`MAX_RESPONSE_BYTES`], chunk by chunk.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, IndexClientError> {
        let too_large = || IndexClientError::BadAnswer {
            url: self.url(),
            reason: format!("an answer larger than {MAX_RESPONSE_BYTES} bytes"),
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| IndexClientError::Unreachable {
                    url: self.url(),
                    reason: error_chain(&e),
                })?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// Creates an account.
    pub async fn register(&self, name: &str, password: &str) -> Result<(), IndexClientError> {
        let body = serde_json::json!({ "name": name, "password": password });
        self.send(self.request(Method::POST, &["users"], None).json(&body))
            .await
            .map(drop)
    }

    /// Logs in: a new session.
    pub async fn login(&self, name: &str, password: &str) -> Result<Session, IndexClientError> {
        let body = serde_json::json!({ "name": name, "password": password });
        self.call(self.request(Method::POST, &["sessions"], None).json(&body))
            .await
    }

    /// Revokes the session's token.
    pub async fn logout(&self, token: &str) -> Result<(), IndexClientError> {
        self.send(self.request(Method::DELETE, &["sessions", "current"], Some(token)))
            .await
            .map(drop)
    }

    /// Deletes the account with its peers and files.
    pub async fn unregister(&self, token: &str) -> Result<(), IndexClientError> {
        self.send(self.request(Method::DELETE, &["users", "me"], Some(token)))
            .await
            .map(drop)
    }

    /// Asks for a join challenge for `peer_id`.
    pub async fn challenge(
        &self,
        token: &str,
        peer_id: &str,
    ) -> Result<Challenge, IndexClientError> {
        let body = serde_json::json!({ "peer_id": peer_id });
        self.call(
            self.request(Method::POST, &["peers", "challenge"], Some(token))
                .json(&body),
        )
        .await
    }

    /// Joins with a signed challenge and a file list.
    pub async fn join(&self, token: &str, join: &JoinRequest) -> Result<Joined, IndexClientError> {
        self.call(
            self.request(Method::POST, &["peers"], Some(token))
                .json(join),
        )
        .await
    }

    /// Tells the index the peer is still online.
    pub async fn heartbeat(&self, token: &str, peer_id: &str) -> Result<(), IndexClientError> {
        self.send(self.request(Method::POST, &["peers", peer_id, "heartbeat"], Some(token)))
            .await
            .map(drop)
    }

    /// Leaves at once.
    pub async fn leave(&self, token: &str, peer_id: &str) -> Result<(), IndexClientError> {
        self.send(self.request(Method::DELETE, &["peers", peer_id], Some(token)))
            .await
            .map(drop)
    }

    /// Adds files to the peer's list.
    pub async fn publish(
        &self,
        token: &str,
        peer_id: &str,
        files: &[IndexedFile],
        reason: PublishReason,
    ) -> Result<(), IndexClientError> {
        let body = serde_json::json!({ "files": files, "reason": reason });
        self.send(
            self.request(Method::POST, &["peers", peer_id, "files"], Some(token))
                .json(&body),
        )
        .await
        .map(drop)
    }

    /// Removes a file (every name of it) from the peer's list; a file not listed is not an error.
    pub async fn unpublish(
        &self,
        token: &str,
        peer_id: &str,
        file: &FileId,
    ) -> Result<(), IndexClientError> {
        let id = file.to_hex();
        match self
            .send(self.request(
                Method::DELETE,
                &["peers", peer_id, "files", &id],
                Some(token),
            ))
            .await
        {
            Err(IndexClientError::Refused { status: 404, .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Searches the online peers' files.
    pub async fn search(
        &self,
        token: &str,
        params: &SearchParams,
    ) -> Result<IndexResults, IndexClientError> {
        let page: ResultsPage = self
            .call(
                self.request(Method::GET, &["search"], Some(token))
                    .query(params),
            )
            .await?;
        Ok(page.into())
    }

    /// Users (online ones, or all).
    pub async fn users(&self, token: &str, all: bool) -> Result<Value, IndexClientError> {
        let mut request = self.request(Method::GET, &["users"], Some(token));
        if all {
            request = request.query(&[("all", "true")]);
        }
        self.call(request).await
    }

    /// The user owning `peer_id`, if it ever joined this index.
    pub async fn peer_owner(
        &self,
        token: &str,
        peer_id: &str,
    ) -> Result<Option<String>, IndexClientError> {
        #[derive(Deserialize)]
        struct Owner {
            user: String,
        }
        let request = self.request(Method::GET, &["peers", peer_id], Some(token));
        match self.call::<Owner>(request).await {
            Ok(owner) => Ok(Some(owner.user)),
            // An index older than this endpoint answers 404 too.
            Err(IndexClientError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One user's shared files.
    pub async fn user_files(
        &self,
        token: &str,
        name: &str,
        query: &[(String, String)],
    ) -> Result<Value, IndexClientError> {
        self.call(
            self.request(Method::GET, &["users", name, "files"], Some(token))
                .query(query),
        )
        .await
    }

    /// Every peer a user ever joined, with presence and messaging key cards.
    pub async fn user_peers(&self, token: &str, name: &str) -> Result<UserPeers, IndexClientError> {
        self.call(self.request(Method::GET, &["users", name, "peers"], Some(token)))
            .await
    }

    /// Leaves sealed letters in the recipients' mailboxes.
    pub async fn send_mail(
        &self,
        token: &str,
        letters: &[OutgoingLetter],
    ) -> Result<MailSent, IndexClientError> {
        let body = serde_json::json!({ "letters": letters });
        self.call(
            self.request(Method::POST, &["mail"], Some(token))
                .json(&body),
        )
        .await
    }

    /// Letters waiting for `peer_id` (this user's peer), after letter `after`.
    pub async fn fetch_mail(
        &self,
        token: &str,
        peer_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredLetter>, IndexClientError> {
        #[derive(Deserialize)]
        struct Mailbox {
            letters: Vec<StoredLetter>,
        }
        let mailbox: Mailbox = self
            .call(self.request(Method::GET, &["mail"], Some(token)).query(&[
                ("peer_id", peer_id.to_string()),
                ("after", after.to_string()),
                ("limit", limit.to_string()),
            ]))
            .await?;
        Ok(mailbox.letters)
    }

    /// Deletes collected letters from `peer_id`'s mailbox.
    pub async fn ack_mail(
        &self,
        token: &str,
        peer_id: &str,
        ids: &[i64],
    ) -> Result<(), IndexClientError> {
        let body = serde_json::json!({ "peer_id": peer_id, "ids": ids });
        self.send(
            self.request(Method::POST, &["mail", "ack"], Some(token))
                .json(&body),
        )
        .await
        .map(drop)
    }

    /// A page of the audit log (admins only).
    pub async fn audit(
        &self,
        token: &str,
        query: &[(String, String)],
    ) -> Result<Value, IndexClientError> {
        self.call(
            self.request(Method::GET, &["audit"], Some(token))
                .query(query),
        )
        .await
    }
}

/// An error with its causes, which reqwest keeps apart ("connection refused" is a cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_paths_escaped() {
        assert!(IndexClient::new("ftp://x", None).is_err());
        assert!(IndexClient::new("not a url", None).is_err());
        let client = IndexClient::new("http://127.0.0.1:1099/", None).unwrap();
        assert_eq!(client.url(), "http://127.0.0.1:1099");
        let request = client
            .request(Method::GET, &["users", "a/../b c", "files"], None)
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:1099/api/v1/users/a%2F..%2Fb%20c/files"
        );
    }

    /// A fake index that answers every request with `head` and then `body_len` bytes of JSON-ish junk.
    async fn fake_index(head: String, body_len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let head = head.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket.write_all(head.as_bytes()).await;
                    let chunk = vec![b' '; 64 * 1024];
                    let mut left = body_len;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        if socket.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn huge_or_junk_answers_are_refused_without_buffering_them() {
        let huge = 1 << 30;
        let announced = fake_index(
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {huge}\r\n\r\n"),
            huge,
        )
        .await;
        let client = IndexClient::new(&announced, None).unwrap();
        let err = client
            .search("t", &SearchParams::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");

        let streamed = fake_index(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".into(),
            MAX_RESPONSE_BYTES + 1,
        )
        .await;
        let client = IndexClient::new(&streamed, None).unwrap();
        let err = client.users("t", false).await.unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");

        let junk = fake_index("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".into(), 5).await;
        let client = IndexClient::new(&junk, None).unwrap();
        let err = client.login("a", "b").await.unwrap_err();
        assert!(matches!(err, IndexClientError::BadAnswer { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_not_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = IndexClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let err = client.login("a", "b").await.unwrap_err();
        assert!(
            matches!(err, IndexClientError::Unreachable { .. }),
            "got {err:?}"
        );
        assert!(err.to_string().contains("unreachable"));
    }
}
