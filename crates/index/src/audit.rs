//! The audit log: every operation (who, which peer, what, when, how it
//! ended) is recorded; `GET /audit` lets admins read it.
//!
//! A write that succeeds commits its record in its own transaction
//! ([`audited_write`] hands the record to the store), so the write and its
//! record become durable together, in one commit, before the answer. Failed
//! operations and reads that wait ([`audited`]) go through [`Audit`], which
//! batches concurrent records into one transaction and answers once it
//! committed; searches are queued without waiting ([`Audit::record_later`]). This module never
//! changes or deletes a record, and never records passwords or tokens.

use std::future::Future;

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
    /// Starts the writer task; it ends once every [`Audit`] clone is dropped
    /// and the queue is written.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (queue, mut rx) = mpsc::channel::<Pending>(QUEUE);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let rows: Vec<AuditRow> = batch.iter().map(|p| p.row.clone()).collect();
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
