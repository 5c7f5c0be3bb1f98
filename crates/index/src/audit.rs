//! The audit log: every operation (who, which peer, what, when, how it
//! ended) is recorded; `GET /audit` lets admins read it.
//!
//! A write that succeeds commits its record in its own transaction
//! ([`audited_write`] hands the record to the store), so the write and its
//! record become durable together, in one commit, before the answer. Failed
//! operations and reads that wait ([`audited`]) go through [`Audit`], which
//! batches concurrent records into one transaction and answers once it
//! committed; searches are queued without waiting ([`Audit::record_later`]).
//!
//! Rejections (records whose outcome is not `ok`) are aggregated so a flood
//! of them cannot grow the log without bound: the first of each (action,
//! outcome, client address, user name) in a [`REJECTION_WINDOW`] is written
//! as usual, the rest of that window are only counted, and one more record
//! with the count (detail `repeated N more times within 60 s…`) is written
//! once the window ends (or the server stops). Records older than the
//! retention (`audit_retention_days`) are deleted when the writer starts and
//! every [`PRUNE_EVERY`]. This module never changes a record, deletes only
//! expired ones, and never records passwords or tokens.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::store::{now_ms, AuditRow, Store};

/// Records waiting to be written, at most.
const QUEUE: usize = 4096;
/// Records written in one transaction, at most.
const BATCH: usize = 512;
/// Longest a record nobody waits for (a search's) waits for others to be
/// written with.
const LINGER: Duration = Duration::from_millis(100);
/// Rejections of one kind from one address for one name within this long
/// after the first are counted into one record instead of written one by one.
pub const REJECTION_WINDOW: Duration = Duration::from_secs(60);
/// Kinds of rejection counted at once, at most; past that, every count is
/// written out and counting starts afresh.
const MAX_COUNTED: usize = 10_000;
/// How often ended rejection windows are written out.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How often records past the retention are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The prefix of the detail of a record counting repeated rejections.
pub const REPEATED_PREFIX: &str = "repeated ";

/// What was attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new account.
    Register,
    /// A login attempt.
    Login,
    /// A logout.
    Logout,
    /// An account removed.
    Unregister,
    /// A join challenge requested.
    Challenge,
    /// A peer joined.
    Join,
    /// A peer left.
    Leave,
    /// Files published.
    Publish,
    /// A finished download announced (a publish with reason "download").
    DownloadAnnounced,
    /// A file unpublished.
    Unpublish,
    /// A search.
    Search,
    /// The audit log read.
    ReadAudit,
    /// Letters left in mailboxes (never their content).
    MailSend,
    /// A mailbox read.
    MailFetch,
    /// Letters acknowledged (deleted) by their recipient.
    MailAck,
}

impl Action {
    /// The name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Unregister => "unregister",
            Self::Challenge => "challenge",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Publish => "publish",
            Self::DownloadAnnounced => "download_announced",
            Self::Unpublish => "unpublish",
            Self::Search => "search",
            Self::ReadAudit => "read_audit",
            Self::MailSend => "mail_send",
            Self::MailFetch => "mail_fetch",
            Self::MailAck => "mail_ack",
        }
    }
}

/// One operation to record.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    row: AuditRow,
}

impl AuditEvent {
    /// An event for `action` by the client at `client`, outcome `ok` until set.
    pub fn new(action: Action, client: ClientAddr) -> Self {
        Self {
            row: AuditRow {
                action: action.as_str().to_string(),
                outcome: "ok".to_string(),
                client: client.text(),
                ..AuditRow::default()
            },
        }
    }

    /// Sets the acting user.
    pub fn user(mut self, name: &str) -> Self {
        self.row.user_name = Some(name.to_string());
        self
    }

    /// Sets the peer concerned.
    pub fn peer(mut self, peer_id: &str) -> Self {
        self.row.peer_id = Some(peer_id.to_string());
        self
    }

    /// Adds a detail (truncated to 200 characters).
    pub fn detail(mut self, detail: impl AsRef<str>) -> Self {
        self.row.detail = Some(detail.as_ref().chars().take(200).collect());
        self
    }

    /// The record of a successful operation as of now, for the store to
    /// commit with the operation.
    pub fn ok_row(&self) -> AuditRow {
        AuditRow {
            at: now_ms(),
            outcome: "ok".to_string(),
            ..self.row.clone()
        }
    }

    /// Sets the outcome from a result: `ok`, or the error's code.
    pub fn outcome<T>(mut self, result: &Result<T, ApiError>) -> Self {
        if let Err(e) = result {
            self.row.outcome = e.code().to_string();
        }
        self
    }
}

struct Pending {
    row: AuditRow,
    ack: Option<oneshot::Sender<bool>>,
}

/// What identifies a kind of rejection: action, outcome, client, user name.
type RejectionKey = (String, String, Option<String>, Option<String>);

/// Rejections seen since the first of their kind in the current window.
struct Window {
    started: i64,
    repeated: u64,
    last: AuditRow,
}

/// Counts repeated rejections between writes.
#[derive(Default)]
struct Rejections {
    windows: HashMap<RejectionKey, Window>,
}

impl Rejections {
    /// Whether `row` should be written now; if not, it was counted.
    /// Records counting windows that ended go to `out`.
    fn admit(&mut self, row: &AuditRow, out: &mut Vec<AuditRow>) -> bool {
        if row.outcome == "ok" {
            return true;
        }
        let key = (
            row.action.clone(),
            row.outcome.clone(),
            row.client.clone(),
            row.user_name.clone(),
        );
        let window_ms = crate::store::ms(REJECTION_WINDOW);
        if let Some(w) = self.windows.get_mut(&key) {
            if row.at < w.started.saturating_add(window_ms) {
                w.repeated += 1;
                w.last = row.clone();
                return false;
            }
            let ended = self.windows.remove(&key);
            out.extend(ended.and_then(Window::summary));
        }
        if self.windows.len() >= MAX_COUNTED {
            self.flush(i64::MAX, out);
        }
        self.windows.insert(
            key,
            Window {
                started: row.at,
                repeated: 0,
                last: row.clone(),
            },
        );
        true
    }

    /// Moves the counts of windows ended by `now` (all with `i64::MAX`) to `out`.
    fn flush(&mut self, now: i64, out: &mut Vec<AuditRow>) {
        let window_ms = crate::store::ms(REJECTION_WINDOW);
        let mut ended = Vec::new();
        self.windows.retain(|_, w| {
            let open = now < w.started.saturating_add(window_ms);
            if !open {
                ended.push(std::mem::replace(
                    w,
                    Window {
                        started: 0,
                        repeated: 0,
                        last: AuditRow::default(),
                    },
                ));
            }
            open
        });
        ended.sort_by_key(|w| w.last.at);
        out.extend(ended.into_iter().filter_map(Window::summary));
    }
}

impl Window {
    /// The record counting this window's repeats, if there were any.
    fn summary(self) -> Option<AuditRow> {
        (self.repeated > 0).then(|| {
            let last = self.last.detail.as_deref().unwrap_or("");
            let detail = format!(
                "{REPEATED_PREFIX}{} more times within {} s of the first (last detail: {last})",
                self.repeated,
                REJECTION_WINDOW.as_secs()
            );
            AuditRow {
                detail: Some(detail.chars().take(200).collect()),
                ..self.last
            }
        })
    }
}

/// Adds to a `batch` of records nobody waits for more that come within
/// [`LINGER`], up to [`BATCH`], so a stream of searches is written in a few
/// transactions a second rather than one per handful of records (each a
/// round of thread hand-offs to the database's worker); a record someone
/// waits for ends the wait. Returns false once the queue is closed.
async fn gather(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) -> bool {
    let until = tokio::time::Instant::now() + LINGER;
    while batch.len() < BATCH && batch.iter().all(|p| p.ack.is_none()) {
        tokio::select! {
            n = rx.recv_many(batch, BATCH - batch.len()) => if n == 0 { return false },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    true
}

/// Deletes records older than `retention` before `now`, logging failures.
async fn prune(store: &Store, retention: Option<Duration>, now: i64) {
    if let Some(keep) = retention {
        match store
            .prune_audit(now.saturating_sub(crate::store::ms(keep)))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} audit records past their retention"),
            Err(e) => tracing::warn!("cannot delete old audit records: {e}"),
        }
    }
}

/// The retention for `days` (0: none, records are kept forever).
pub fn retention_days(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 24 * 3600))
}

/// Appends audit records; cheap to clone.
#[derive(Clone, Debug)]
pub struct Audit {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.row.action)
    }
}

impl Audit {
    /// Starts the writer task, which first deletes records older than
    /// `retention` (if any) and again every [`PRUNE_EVERY`]; it ends once
    /// every [`Audit`] clone is dropped and the queue (and every count of
    /// repeated rejections) is written.
    pub fn spawn(store: Store, retention: Option<Duration>) -> (Self, JoinHandle<()>) {
        let (queue, mut rx) = mpsc::channel::<Pending>(QUEUE);
        let task = tokio::spawn(async move {
            prune(&store, retention, now_ms()).await;
            let mut pruned = tokio::time::Instant::now();
            let mut flush = tokio::time::interval(FLUSH_EVERY);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut rejections = Rejections::default();
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let mut rows = Vec::new();
                let open = tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n > 0 && gather(&mut rx, &mut batch).await,
                    _ = flush.tick() => true,
                };
                for pending in &batch {
                    if rejections.admit(&pending.row, &mut rows) {
                        rows.push(pending.row.clone());
                    }
                }
                rejections.flush(if open { now_ms() } else { i64::MAX }, &mut rows);
                let ok = match store.insert_audit(&rows).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!("cannot write {} audit records: {e}", rows.len());
                        false
                    }
                };
                for pending in batch.drain(..) {
                    if let Some(ack) = pending.ack {
                        let _ = ack.send(ok);
                    }
                }
                if !open {
                    break;
                }
                if pruned.elapsed() >= PRUNE_EVERY {
                    prune(&store, retention, now_ms()).await;
                    pruned = tokio::time::Instant::now();
                }
            }
        });
        (Self { queue }, task)
    }

    /// Records an event and returns once it is committed.
    pub async fn record(&self, event: AuditEvent) -> Result<(), ApiError> {
        let (ack, done) = oneshot::channel();
        let mut row = event.row;
        row.at = now_ms();
        self.queue
            .send(Pending {
                row,
                ack: Some(ack),
            })
            .await
            .map_err(|_| ApiError::Internal("audit writer stopped".into()))?;
        match done.await {
            Ok(true) => Ok(()),
            _ => Err(ApiError::Internal("audit record not written".into())),
        }
    }

    /// Queues an event without waiting for it to be written (for reads).
    pub async fn record_later(&self, event: AuditEvent) {
        let mut row = event.row;
        row.at = now_ms();
        let _ = self.queue.send(Pending { row, ack: None }).await;
    }
}

/// Runs `op`, records its outcome as `event` (committed before returning),
/// and returns its result.
pub async fn audited<T>(
    audit: &Audit,
    event: AuditEvent,
    op: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = op.await;
    audit.record(event.outcome(&result)).await?;
    result
}

/// Runs a write `op` that commits `event`'s success record
/// ([`AuditEvent::ok_row`], taken before) in its own transaction when, and
/// only when, it returns `Ok`; a failure is recorded through the queue
/// (committed before returning). Returns `op`'s result.
pub async fn audited_write<T>(
    audit: &Audit,
    event: AuditEvent,
    op: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = op.await;
    if result.is_err() {
        audit.record(event.outcome(&result)).await?;
    }
    result
}

/// Paging of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Records to return (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Records to skip, newest first (default 0).
    pub offset: Option<u32>,
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Sequence number; higher is newer.
    pub id: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
    /// The acting user, if known.
    pub user: Option<String>,
    /// The peer concerned, if any.
    pub peer_id: Option<String>,
    /// What was attempted, e.g. `join`, `download_announced`.
    pub action: String,
    /// `ok`, or the error code it ended with.
    pub outcome: String,
    /// Extra facts: a query, a file id, a count.
    pub detail: Option<String>,
    /// The client's IP address.
    pub client: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Records in the log.
    pub total: i64,
    /// Records skipped.
    pub offset: i64,
    /// This page, newest first.
    pub entries: Vec<AuditEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64, outcome: &str, client: &str) -> AuditRow {
        AuditRow {
            at,
            action: "login".to_string(),
            outcome: outcome.to_string(),
            client: Some(client.to_string()),
            user_name: Some("victim".to_string()),
            ..AuditRow::default()
        }
    }

    /// A record; one someone waits for when `acked` (the wait is dropped).
    fn pending(at: i64, acked: bool) -> Pending {
        let row = row(at, "ok", "a");
        let ack = acked.then(|| oneshot::channel().0);
        Pending { row, ack }
    }

    /// Sends [`pending`]`(delay_ms, acked)` after `delay_ms` (in paused time).
    fn send_later(tx: &mpsc::Sender<Pending>, delay_ms: u64, acked: bool) {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let _ = tx.send(pending(delay_ms as i64, acked)).await;
        });
    }

    #[tokio::test(start_paused = true)]
    async fn records_nobody_waits_for_are_gathered_for_a_while_and_others_at_once() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        // Searches arriving within the linger join the batch; later ones wait.
        let mut batch = vec![pending(0, false)];
        send_later(&tx, 30, false);
        send_later(&tx, 60, false);
        send_later(&tx, LINGER.as_millis() as u64 + 50, false);
        assert!(gather(&mut rx, &mut batch).await);
        let at: Vec<i64> = batch.iter().map(|p| p.row.at).collect();
        assert_eq!(at, [0, 30, 60]);
        // A record someone waits for ends the gathering as it arrives.
        send_later(&tx, LINGER.as_millis() as u64 + 100, true);
        send_later(&tx, LINGER.as_millis() as u64 + 110, false);
        tokio::time::sleep(LINGER + Duration::from_millis(60)).await;
        assert_eq!(rx.len(), 1, "the late search is still queued");
        let mut batch2 = Vec::new();
        rx.recv_many(&mut batch2, BATCH).await;
        assert!(gather(&mut rx, &mut batch2).await);
        assert_eq!(
            batch2.len(),
            2,
            "the late search and the acknowledged record"
        );
        assert!(batch2[1].ack.is_some());
        assert_eq!(rx.len(), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(rx.len(), 1, "what came after the acknowledged record waits");
        // A full batch is not held back, and a closed queue says so.
        let mut full: Vec<Pending> = (0..BATCH).map(|i| pending(i as i64, false)).collect();
        let started = tokio::time::Instant::now();
        assert!(gather(&mut rx, &mut full).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(tx);
        let mut rest = Vec::new();
        rx.recv_many(&mut rest, BATCH).await;
        assert!(!gather(&mut rx, &mut rest).await);
    }

    #[test]
    fn repeated_rejections_are_counted_per_kind_and_minute() {
        let mut r = Rejections::default();
        let mut out = Vec::new();
        // Successes are always written.
        assert!(r.admit(&row(0, "ok", "a"), &mut out));
        assert!(r.admit(&row(0, "ok", "a"), &mut out));
        // The first rejection of a kind is written, the rest of its minute counted.
        assert!(r.admit(&row(1, "denied", "a"), &mut out));
        for at in 2..100 {
            assert!(!r.admit(&row(at, "denied", "a"), &mut out));
        }
        assert!(r.admit(&row(5, "denied", "b"), &mut out));
        assert!(r.admit(&row(5, "rate_limited", "a"), &mut out));
        r.flush(30_000, &mut out);
        assert!(out.is_empty());
        // Once the minute ends, one record with the count.
        r.flush(60_001, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let detail = out[0].detail.clone().unwrap();
        assert!(detail.starts_with("repeated 98 more times"), "{detail}");
        assert_eq!(
            (out[0].client.as_deref(), out[0].at),
            (Some("a"), 99),
            "{out:?}"
        );
        // A new minute starts afresh; a late repeat ends the old one first.
        out.clear();
        assert!(r.admit(&row(70_000, "denied", "a"), &mut out));
        assert!(!r.admit(&row(70_001, "denied", "a"), &mut out));
        assert!(r.admit(&row(200_000, "denied", "a"), &mut out));
        assert_eq!(out.len(), 1);
        assert!(out[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("repeated 1 more"));
        // Stopping writes every count.
        out.clear();
        assert!(!r.admit(&row(200_001, "denied", "a"), &mut out));
        r.flush(i64::MAX, &mut out);
        assert_eq!(out.len(), 1);
        assert!(r.windows.is_empty());
    }
}
