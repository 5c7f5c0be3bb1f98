//! This peer's membership in an index: the login session (kept in the data
//! folder, so commands after `login` need no password), the join signed
//! with the peer's key, heartbeats, and publishing the difference whenever
//! the shared files change (finished downloads as "download", so the index
//! shows this peer as a source).
//!
//! One task runs the membership as a loop of states: logged out, joining,
//! joined, unreachable (retrying with a growing pause, then joining again
//! with the whole list, so a restarted index is rejoined without anyone
//! doing anything). It never blocks the rest of the daemon: while the index
//! is away, browsing and downloading from known peers go on, and
//! [`IndexLink::status`] says why the index cannot be used. While logged in,
//! the peer also announces the user's name in the DHT, so it can still be
//! browsed by name when the index is down.

pub mod client;
pub mod names;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use peershare_core::words::user_key;
use peershare_core::FileId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::events::EventBus;
use crate::index_link::client::{
    IndexClient, IndexClientError, IndexedFile, JoinRequest, PublishReason, Session,
};
use crate::lifetime::Lifetime;
use crate::net::host::Host;
use crate::private_file::write_private;
use crate::share::{ShareOrigin, SharedFile, SharedFiles};
use crate::views::EventKind;
pub use crate::views::{IndexStatus, LinkState};
use crate::{now_ms, NodeError};

/// The session file's name inside the data folder.
pub const SESSION_FILE: &str = "index-session.json";
/// Files per join or publish request, well under the index's body limit.
const PUBLISH_CHUNK: usize = 2000;
/// Longest file name an index lists; longer ones are shared with peers but not listed.
const MAX_INDEXED_NAME_BYTES: usize = 1024;
/// Most addresses the index takes from one peer.
const MAX_ADDRS: usize = 32;
/// How long the addresses must hold still before the index is told of a change.
const ADDRESS_SETTLE: Duration = Duration::from_secs(2);
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How long a stopping daemon waits for its leave to reach the index.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a login waits for the join it starts, so a search right after it finds this peer's files.
const JOIN_WAIT: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct StoredSession {
    url: String,
    #[serde(flatten)]
    session: Session,
}

/// The handle to the membership; clones share it.
#[derive(Clone)]
pub struct IndexLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: IndexClient,
    session_path: PathBuf,
    session: watch::Sender<Option<Session>>,
    status: watch::Sender<IndexStatus>,
    keypair: Keypair,
    message_key: Option<String>,
    host: Host,
    shares: SharedFiles,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    accounts: tokio::sync::Mutex<()>,
    names: names::PeerNames,
    bus: EventBus,
}

/// Who this peer is to the index: the key that signs its joins and the
/// messaging key card (base64) it hands out for people to seal letters to.
pub struct LinkIdentity {
    /// The peer's identity key.
    pub keypair: Keypair,
    /// The signed messaging key card, base64.
    pub message_key: Option<String>,
}

/// How a stretch of membership ended.
enum Ended {
    Stopped,
    SessionChanged,
    /// The peer's addresses changed (a relay slot taken or lost): the index must hear them.
    AddressesChanged,
    WentOffline,
    Failed(IndexClientError),
}

impl IndexLink {
    /// Starts the membership task for `client`, with the session saved in `data_dir` if any.
    pub fn start(
        client: IndexClient,
        data_dir: &Path,
        identity: LinkIdentity,
        host: Host,
        shares: SharedFiles,
        lifetime: &Lifetime,
        bus: &EventBus,
    ) -> Self {
        let session_path = data_dir.join(SESSION_FILE);
        let session = load_session(&session_path, &client.url());
        let status = IndexStatus {
            url: client.url(),
            user: session.as_ref().map(|s| s.name.clone()),
            state: LinkState::LoggedOut,
            message: String::new(),
            published_files: 0,
            heartbeat_secs: None,
            last_contact_ms: None,
        };
        let inner = Arc::new(Inner {
            client,
            session_path,
            session: watch::Sender::new(session),
            status: watch::Sender::new(status),
            keypair: identity.keypair,
            message_key: identity.message_key,
            host,
            shares,
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
            accounts: tokio::sync::Mutex::new(()),
            names: names::PeerNames::default(),
            bus: bus.clone(),
        });
        let task = tokio::spawn(inner.clone().run());
        *inner.task.lock().expect("task lock") = Some(task);
        lifetime.spawn(announce_user(inner.host.clone(), inner.session.subscribe()));
        Self { inner }
    }

    /// The client, for searches and listings.
    pub fn client(&self) -> &IndexClient {
        &self.inner.client
    }

    /// Where the membership stands.
    pub fn status(&self) -> IndexStatus {
        self.inner.status()
    }

    /// Changes of where the membership stands.
    pub fn watch_status(&self) -> watch::Receiver<IndexStatus> {
        self.inner.status.subscribe()
    }

    /// The session's token, or an error telling the person to log in.
    pub fn token(&self) -> Result<String, NodeError> {
        self.inner
            .session
            .borrow()
            .as_ref()
            .map(|s| s.token.clone())
            .ok_or_else(|| {
                NodeError::NotLoggedIn(format!(
                    "log in to the index at {} first: `peershare login NAME` (or `peershare register NAME`)",
                    self.inner.client.url()
                ))
            })
    }

    /// The user name the index gives `peer_id`, when logged in and it knows one.
    pub async fn user_of(&self, peer_id: &str) -> Option<String> {
        let token = self.token().ok()?;
        self.inner
            .names
            .user_of(&self.inner.client, &token, peer_id)
            .await
    }

    /// Creates an account and logs in with it.
    pub async fn register(&self, name: &str, password: &str) -> Result<Session, NodeError> {
        self.inner.client.register(name, password).await?;
        self.login(name, password).await
    }

    /// Logs in; the daemon keeps the session and joins with it (leaving under an earlier one).
    pub async fn login(&self, name: &str, password: &str) -> Result<Session, NodeError> {
        let _one_at_a_time = self.inner.accounts.lock().await;
        let session = self.inner.client.login(name, password).await?;
        if let Some(old) = self.current_session() {
            self.inner.end_session(&old).await;
        }
        let stored = StoredSession {
            url: self.inner.client.url(),
            session: session.clone(),
        };
        let json = serde_json::to_vec(&stored).map_err(|e| NodeError::Store(e.to_string()))?;
        write_private(&self.inner.session_path, &json)?;
        self.inner.session.send_replace(Some(session.clone()));
        self.wait_for_join(&session.name).await;
        Ok(session)
    }

    /// Waits (at most [`JOIN_WAIT`]) until the membership of `user` has
    /// settled (joined, or why not), so whoever logged in can search at once.
    async fn wait_for_join(&self, user: &str) {
        let mut status = self.inner.status.subscribe();
        let settled = |s: &IndexStatus| {
            s.user.as_deref() == Some(user)
                && !matches!(s.state, LinkState::Joining | LinkState::LoggedOut)
        };
        let _ = tokio::time::timeout(JOIN_WAIT, status.wait_for(settled)).await;
    }

    /// Leaves the index and revokes the session.
    pub async fn logout(&self) -> Result<(), NodeError> {
        let _one_at_a_time = self.inner.accounts.lock().await;
        let session = self.current_session().ok_or_else(|| {
            NodeError::NotLoggedIn("not logged in to the index; nothing to log out of".into())
        })?;
        self.inner.forget_session();
        self.inner.end_session(&session).await;
        Ok(())
    }

    /// Deletes the account (with its peers and files) and forgets the session.
    pub async fn unregister(&self) -> Result<(), NodeError> {
        let _one_at_a_time = self.inner.accounts.lock().await;
        let token = self.token()?;
        self.inner.client.unregister(&token).await?;
        self.inner.forget_session();
        Ok(())
    }

    /// Leaves the index and ends the task; call before the process exits.
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let task = self.inner.task.lock().expect("task lock").take();
        if let Some(mut task) = task {
            if tokio::time::timeout(LEAVE_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                // The index did not answer the leave in time: it times this peer out instead.
                task.abort();
            }
        }
    }

    fn current_session(&self) -> Option<Session> {
        self.inner.session.borrow().clone()
    }
}

/// Announces the logged-in user's name in the DHT, and withdraws it on
/// logout, so people can still browse this peer by name while the index is down.
async fn announce_user(host: Host, mut sessions: watch::Receiver<Option<Session>>) {
    let mut announced: Option<String> = None;
    loop {
        let name = sessions
            .borrow_and_update()
            .as_ref()
            .map(|s| s.name.clone());
        if name != announced {
            if let Some(old) = &announced {
                if host.unprovide(user_key(old)).await.is_err() {
                    return;
                }
            }
            if let Some(new) = &name {
                if host.provide(user_key(new)).await.is_err() {
                    return;
                }
            }
            announced = name;
        }
        if sessions.changed().await.is_err() {
            return;
        }
    }
}

impl Inner {
    async fn run(self: Arc<Self>) {
        let mut session_rx = self.session.subscribe();
        let mut stop_rx = self.stop.subscribe();
        let mut online_rx = self.shares.subscribe_online();
        let mut retry = Backoff::new(MIN_RETRY, MAX_RETRY);
        loop {
            if *stop_rx.borrow() {
                return;
            }
            if !*online_rx.borrow_and_update() {
                let session = session_rx.borrow().clone();
                self.set_state(
                    LinkState::Offline,
                    session.as_ref(),
                    "offline: this peer is not listed (`peershare online` joins again)".into(),
                );
                tokio::select! {
                    _ = online_rx.changed() => {}
                    _ = stop_rx.changed() => {}
                }
                continue;
            }
            let Some(session) = session_rx.borrow_and_update().clone() else {
                self.set_state(
                    LinkState::LoggedOut,
                    None,
                    "not logged in: run `peershare login NAME` (or `peershare register NAME`) to join the index".into(),
                );
                tokio::select! {
                    _ = session_rx.changed() => {}
                    _ = stop_rx.changed() => {}
                }
                continue;
            };
            let error = match self
                .membership(&session, &mut session_rx, &mut stop_rx, &mut retry)
                .await
            {
                Ended::Stopped => {
                    self.leave_quietly(&session).await;
                    return;
                }
                Ended::SessionChanged | Ended::AddressesChanged => {
                    retry.reset();
                    continue;
                }
                Ended::WentOffline => {
                    self.leave_quietly(&session).await;
                    continue;
                }
                Ended::Failed(error) => error,
            };
            match error.status() {
                Some(401) => {
                    self.drop_expired(&session);
                    continue;
                }
                // The index forgot or dropped this peer: join again soon.
                Some(404 | 409) => retry.reset(),
                Some(status) if status != 429 && status < 500 => self.set_state(
                    LinkState::Refused,
                    Some(&session),
                    format!("{error}; retrying in {} s", retry.peek().as_secs()),
                ),
                _ => self.set_state(
                    LinkState::Unreachable,
                    Some(&session),
                    format!("{error}; next try in {} s", retry.peek().as_secs()),
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(retry.next_pause()) => {}
                _ = session_rx.changed() => retry.reset(),
                _ = stop_rx.changed() => {}
            }
        }
    }

    /// Joins, then heartbeats and publishes changes until something ends it.
    async fn membership(
        &self,
        session: &Session,
        session_rx: &mut watch::Receiver<Option<Session>>,
        stop_rx: &mut watch::Receiver<bool>,
        retry: &mut Backoff,
    ) -> Ended {
        if !self.status().state.eq(&LinkState::Unreachable) {
            self.set_state(
                LinkState::Joining,
                Some(session),
                "joining the index".into(),
            );
        }
        let mut shares_rx = self.shares.subscribe();
        shares_rx.borrow_and_update();
        let mut online_rx = self.shares.subscribe_online();
        online_rx.borrow_and_update();
        let mut addrs_rx = self.host.watch_listen_addrs();
        let mut published = HashMap::new();
        let joined_with = self.announced_addrs().await;
        let joined = match self
            .join(session, &mut published, joined_with.clone())
            .await
        {
            Ok(joined) => joined,
            Err(e) => return Ended::Failed(e),
        };
        retry.reset();
        // Index users form one DHT: enter it through peers the index names.
        let peers = joined
            .bootstrap
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let _ = self.host.add_dht_peers(peers).await;
        if let Err(e) = self.publish_changes(session, &mut published).await {
            return Ended::Failed(e);
        }
        let every = Duration::from_secs(joined.heartbeat_secs.max(1));
        self.set_joined(session, joined.heartbeat_secs, published.len());
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let peer_id = self.host.peer_id().to_string();
        loop {
            let step = tokio::select! {
                _ = addrs_rx.changed() => {
                    // Listeners come and go in bursts: one join per burst.
                    tokio::time::sleep(ADDRESS_SETTLE).await;
                    addrs_rx.borrow_and_update();
                    if self.current_addrs() != joined_with {
                        return Ended::AddressesChanged;
                    }
                    Ok(())
                }
                _ = beats.tick() => self.client.heartbeat(&session.token, &peer_id).await,
                _ = shares_rx.changed() => self.publish_changes(session, &mut published).await,
                _ = session_rx.changed() => return Ended::SessionChanged,
                _ = stop_rx.changed() => return Ended::Stopped,
                _ = online_rx.changed() => match *online_rx.borrow_and_update() {
                    true => Ok(()),
                    false => return Ended::WentOffline,
                },
            };
            match step {
                Ok(()) => self.set_joined(session, joined.heartbeat_secs, published.len()),
                Err(e) => return Ended::Failed(e),
            }
        }
    }

    /// Proves the peer key with a signed challenge and joins with the first files.
    async fn join(
        &self,
        session: &Session,
        published: &mut HashMap<FileId, String>,
        addrs: Vec<String>,
    ) -> Result<crate::index_link::client::Joined, IndexClientError> {
        let peer_id = self.host.peer_id().to_string();
        let challenge = self.client.challenge(&session.token, &peer_id).await?;
        let signature = self
            .keypair
            .sign(challenge.message.as_bytes())
            .map_err(|e| IndexClientError::BadAnswer {
                url: self.client.url(),
                reason: format!("cannot sign the challenge: {e}"),
            })?;
        let files: Vec<SharedFile> = self.shares.published();
        let first: Vec<&SharedFile> = files
            .iter()
            .filter(|f| listable(f))
            .take(PUBLISH_CHUNK)
            .collect();
        let request = JoinRequest {
            peer_id,
            addrs,
            public_key: hex::encode(self.keypair.public().encode_protobuf()),
            signature: hex::encode(signature),
            files: first.iter().map(|f| indexed(f)).collect(),
            message_key: self.message_key.clone(),
        };
        let joined = self.client.join(&session.token, &request).await?;
        published.extend(first.iter().map(|f| (f.id(), f.name.clone())));
        Ok(joined)
    }

    /// The listen addresses, waiting briefly for the host to report its first ones.
    async fn announced_addrs(&self) -> Vec<String> {
        for _ in 0..50 {
            let addrs = self.current_addrs();
            if !addrs.is_empty() {
                return addrs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Vec::new()
    }

    /// The addresses the index would be told now.
    fn current_addrs(&self) -> Vec<String> {
        self.host
            .listen_addrs()
            .iter()
            .take(MAX_ADDRS)
            .map(|a| a.to_string())
            .collect()
    }

    /// Sends the index the difference between what it lists and what is shared now.
    async fn publish_changes(
        &self,
        session: &Session,
        published: &mut HashMap<FileId, String>,
    ) -> Result<(), IndexClientError> {
        let peer_id = self.host.peer_id().to_string();
        let plan = SyncPlan::new(published, &self.shares.published());
        for id in &plan.unpublish {
            self.client.unpublish(&session.token, &peer_id, id).await?;
            published.remove(id);
        }
        for (reason, files) in [
            (PublishReason::Share, &plan.publish_shared),
            (PublishReason::Download, &plan.publish_downloaded),
        ] {
            for chunk in files.chunks(PUBLISH_CHUNK) {
                self.client
                    .publish(&session.token, &peer_id, chunk, reason)
                    .await?;
                published.extend(chunk.iter().map(|f| (f.id, f.name.clone())));
            }
        }
        if !plan.is_empty() {
            tracing::info!(
                added = plan.publish_shared.len() + plan.publish_downloaded.len(),
                removed = plan.unpublish.len(),
                "index updated"
            );
        }
        Ok(())
    }

    async fn leave_quietly(&self, session: &Session) {
        let peer_id = self.host.peer_id().to_string();
        match self.client.leave(&session.token, &peer_id).await {
            Ok(()) => tracing::info!("left the index"),
            Err(e) => tracing::debug!("leaving the index: {e}"),
        }
    }

    /// Leaves and revokes `session` on the index; failures only mean the index will time it out.
    async fn end_session(&self, session: &Session) {
        self.leave_quietly(session).await;
        if let Err(e) = self.client.logout(&session.token).await {
            tracing::debug!("revoking the old session: {e}");
        }
    }

    fn forget_session(&self) {
        let _ = std::fs::remove_file(&self.session_path);
        self.session.send_replace(None);
    }

    /// Forgets `session` after the index refused it, unless a newer login replaced it already.
    fn drop_expired(&self, session: &Session) {
        let replaced = self.session.send_if_modified(|current| {
            if current.as_ref() == Some(session) {
                *current = None;
                true
            } else {
                false
            }
        });
        if replaced {
            let _ = std::fs::remove_file(&self.session_path);
            tracing::warn!(user = %session.name, "the index no longer accepts this session");
            self.set_state(
                LinkState::LoggedOut,
                None,
                format!(
                    "the index no longer accepts the session of {} (expired or revoked): run `peershare login {}`",
                    session.name, session.name
                ),
            );
        }
    }

    fn status(&self) -> IndexStatus {
        self.status.borrow().clone()
    }

    fn set_state(&self, state: LinkState, session: Option<&Session>, message: String) {
        self.status
            .send_if_modified(|status| self.change_state(status, state, session, message));
    }

    fn change_state(
        &self,
        status: &mut IndexStatus,
        state: LinkState,
        session: Option<&Session>,
        message: String,
    ) -> bool {
        let changed =
            status.state != state || status.user.as_deref() != session.map(|s| s.name.as_str());
        if changed {
            match state {
                LinkState::Unreachable | LinkState::Refused => tracing::warn!("{message}"),
                _ => tracing::info!("{message}"),
            }
        }
        status.state = state;
        status.user = session.map(|s| s.name.clone());
        status.message = message;
        if state != LinkState::Joined {
            status.heartbeat_secs = None;
            status.published_files = 0;
        }
        self.announce(status, changed)
    }

    fn set_joined(&self, session: &Session, heartbeat_secs: u64, published_files: usize) {
        self.status.send_if_modified(|status| {
            self.change_to_joined(status, session, heartbeat_secs, published_files)
        });
    }

    fn change_to_joined(
        &self,
        status: &mut IndexStatus,
        session: &Session,
        heartbeat_secs: u64,
        published_files: usize,
    ) -> bool {
        let changed =
            status.state != LinkState::Joined || status.published_files != published_files;
        if status.state != LinkState::Joined {
            tracing::info!(user = %session.name, files = published_files, "joined the index at {}", status.url);
        }
        status.state = LinkState::Joined;
        status.user = Some(session.name.clone());
        status.message = format!("online as {}", session.name);
        status.heartbeat_secs = Some(heartbeat_secs);
        status.published_files = published_files;
        status.last_contact_ms = Some(now_ms());
        self.announce(status, changed)
    }

    /// Pushes the status when it changed (heartbeats alone are not news);
    /// returns whether it did, for the watchers of the status.
    fn announce(&self, status: &IndexStatus, changed: bool) -> bool {
        if changed {
            let status = status.clone();
            self.bus.publish(EventKind::IndexChanged { status });
        }
        changed
    }
}

/// What to send the index so that it lists exactly the shared files.
#[derive(Debug, Default, PartialEq)]
struct SyncPlan {
    unpublish: Vec<FileId>,
    publish_shared: Vec<IndexedFile>,
    publish_downloaded: Vec<IndexedFile>,
}

impl SyncPlan {
    /// Compares what the index lists (`published`: id → name) with `current`.
    fn new(published: &HashMap<FileId, String>, current: &[SharedFile]) -> Self {
        let now: HashMap<FileId, &SharedFile> = current.iter().map(|f| (f.id(), f)).collect();
        let mut plan = Self {
            unpublish: published
                .iter()
                .filter(|(id, name)| now.get(*id).is_none_or(|f| &f.name != *name))
                .map(|(id, _)| *id)
                .collect(),
            ..Self::default()
        };
        plan.unpublish.sort();
        for file in current.iter().filter(|f| listable(f)) {
            if published.get(&file.id()) == Some(&file.name) {
                continue;
            }
            match file.origin {
                ShareOrigin::Folder => plan.publish_shared.push(indexed(file)),
                ShareOrigin::Download => plan.publish_downloaded.push(indexed(file)),
            }
        }
        plan
    }

    fn is_empty(&self) -> bool {
        self.unpublish.is_empty()
            && self.publish_shared.is_empty()
            && self.publish_downloaded.is_empty()
    }
}

/// True if an index takes this file's name (1 to 1024 bytes, no control characters).
fn listable(file: &SharedFile) -> bool {
    !file.name.is_empty()
        && file.name.len() <= MAX_INDEXED_NAME_BYTES
        && !file.name.chars().any(char::is_control)
}

fn indexed(file: &SharedFile) -> IndexedFile {
    IndexedFile {
        name: file.name.clone(),
        size: file.size,
        id: file.id(),
    }
}

fn load_session(path: &Path, url: &str) -> Option<Session> {
    let bytes = std::fs::read(path).ok()?;
    let stored: StoredSession = serde_json::from_slice(&bytes)
        .map_err(|e| tracing::warn!("ignoring {}: {e}", path.display()))
        .ok()?;
    if stored.url != url {
        tracing::info!(
            "the saved session is for the index at {}, not {url}: log in again",
            stored.url
        );
        return None;
    }
    (stored.session.expires_at > now_ms()).then_some(stored.session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peershare_core::Outboard;

    fn file(name: &str, content: &[u8], origin: ShareOrigin) -> SharedFile {
        SharedFile {
            path: PathBuf::from(name),
            name: name.into(),
            size: content.len() as u64,
            mtime_ns: 0,
            identity: (0, 0),
            outboard: Arc::new(Outboard::hash_bytes(content, 1024).unwrap()),
            origin,
        }
    }

    #[test]
    fn the_plan_publishes_new_files_by_origin_and_unpublishes_gone_or_renamed_ones() {
        let a = file("a", b"aaa", ShareOrigin::Folder);
        let b = file("b", b"bbb", ShareOrigin::Folder);
        let c = file("c", b"ccc", ShareOrigin::Download);
        let renamed = file("b2", b"bbb", ShareOrigin::Folder);
        let unlistable = [
            file("line\nbreak", b"x", ShareOrigin::Folder),
            file(
                &"n".repeat(MAX_INDEXED_NAME_BYTES + 1),
                b"y",
                ShareOrigin::Folder,
            ),
        ];
        let published: HashMap<FileId, String> = [
            (a.id(), "a".to_string()),
            (b.id(), "b".to_string()),
            (FileId::from(blake3::hash(b"gone")), "gone".to_string()),
        ]
        .into();
        let mut current = vec![a.clone(), renamed.clone(), c.clone()];
        current.extend(unlistable);
        let plan = SyncPlan::new(&published, &current);
        let mut expected_gone = vec![b.id(), FileId::from(blake3::hash(b"gone"))];
        expected_gone.sort();
        assert_eq!(plan.unpublish, expected_gone);
        assert_eq!(plan.publish_shared, vec![indexed(&renamed)]);
        assert_eq!(plan.publish_downloaded, vec![indexed(&c)]);

        let in_step: HashMap<FileId, String> = [a.clone(), c.clone()]
            .iter()
            .map(|f| (f.id(), f.name.clone()))
            .collect();
        assert!(SyncPlan::new(&in_step, &[a, c]).is_empty());
    }

    #[test]
    fn a_saved_session_is_used_only_for_its_index_and_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SESSION_FILE);
        let save = |expires_at: i64| {
            let stored = StoredSession {
                url: "http://a:1099".into(),
                session: Session {
                    token: "t".into(),
                    expires_at,
                    name: "alice".into(),
                },
            };
            std::fs::write(&path, serde_json::to_vec(&stored).unwrap()).unwrap();
        };
        save(now_ms() + 60_000);
        assert_eq!(load_session(&path, "http://a:1099").unwrap().name, "alice");
        assert!(load_session(&path, "http://b:1099").is_none());
        save(now_ms() - 1);
        assert!(load_session(&path, "http://a:1099").is_none());
        std::fs::write(&path, b"{junk").unwrap();
        assert!(load_session(&path, "http://a:1099").is_none());
    }
}
