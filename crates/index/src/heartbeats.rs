//! Group commit for heartbeats: each heartbeat waits in one bounded line,
//! and one task writes every heartbeat waiting at that moment in a single
//! transaction, so a heartbeat costs at most one durable commit and
//! thousands of them share one. Each sender learns whether its own
//! heartbeat hit one of its user's online peers.
//!
//! It never acknowledges before the commit, never holds more than
//! [`LINE_LENGTH`] heartbeats (senders wait for room), and stops once
//! every sender is gone, after writing what it holds.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{now_ms, Store};

/// Heartbeats waiting at most; further senders wait for room.
pub const LINE_LENGTH: usize = 8192;
/// Heartbeats written in one transaction at most.
const MAX_BATCH: usize = 4096;

/// A heartbeat could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the heartbeat could not be written: {0}")]
pub struct HeartbeatFailed(String);

struct Beat {
    user_id: i64,
    peer_id: String,
    reply: oneshot::Sender<Result<(bool, i64), HeartbeatFailed>>,
}

/// The line heartbeats wait in; cheap to clone.
#[derive(Clone, Debug)]
pub struct HeartbeatLine {
    beats: mpsc::Sender<Beat>,
}

impl HeartbeatLine {
    /// Starts the writer task on `store`; it ends when every line is dropped.
    pub fn start(store: Store) -> (Self, JoinHandle<()>) {
        let (beats, rx) = mpsc::channel(LINE_LENGTH);
        (Self { beats }, tokio::spawn(write_beats(store, rx)))
    }

    /// Records that `peer_id` of `user_id` is alive; returns whether it was
    /// that user's online peer and the time written (ms).
    pub async fn beat(&self, user_id: i64, peer_id: &str) -> Result<(bool, i64), HeartbeatFailed> {
        let (reply, answer) = oneshot::channel();
        let beat = Beat {
            user_id,
            peer_id: peer_id.to_string(),
            reply,
        };
        let stopped = || HeartbeatFailed("the index is stopping".into());
        self.beats.send(beat).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_beats(store: Store, mut line: mpsc::Receiver<Beat>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while line.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let now = now_ms();
        let keys: Vec<(i64, &str)> = batch
            .iter()
            .map(|b| (b.user_id, b.peer_id.as_str()))
            .collect();
        let written = store.heartbeats(&keys, now).await;
        drop(keys);
        match written {
            Ok(hits) => {
                for (beat, hit) in batch.drain(..).zip(hits) {
                    let _ = beat.reply.send(Ok((hit, now)));
                }
            }
            Err(e) => {
                tracing::warn!("cannot write {} heartbeats: {e}", batch.len());
                let failed = HeartbeatFailed(e.to_string());
                for beat in batch.drain(..) {
                    let _ = beat.reply.send(Err(failed.clone()));
                }
            }
        }
    }
}
