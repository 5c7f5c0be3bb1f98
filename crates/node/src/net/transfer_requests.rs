//! The host's half of the transfer protocol on the sharing side: every
//! inbound request goes to the [`TransferDesk`] (the upload gate), which
//! answers at once or holds it for the person; a held request keeps its
//! reply channel here until the person answers or its time runs out.
//!
//! This module decides nothing about files or slots (the desk does) and
//! owns no task: expiry is a deadline the event loop waits on.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use peershare_core::wire::control::TransferResponse;
use peershare_core::FileId;

use super::deadlines::{DeadlineKey, Deadlines};
use crate::share::SharedFiles;

/// Longest a sharer holds a request for its person: a downloader gives up
/// on an unanswered request a little after this (see the host's transfer
/// timeout), so a longer `--ask-timeout` would only answer nobody.
pub const MAX_ASK_TIMEOUT: Duration = Duration::from_secs(120);

/// What the desk says about a new request.
pub enum Verdict {
    /// Answer now.
    Answer(TransferResponse),
    /// Held for the person under this pending id; answer later.
    Held(u64),
}

/// Whoever decides on transfer requests (the upload gate).
pub trait TransferDesk: Send + Sync + 'static {
    /// Decides on a request from `peer` for `id` among `shares`.
    fn on_request(&self, peer: PeerId, id: &FileId, shares: &SharedFiles) -> Verdict;
    /// Gives up on a held request whose time ran out: the answer to send, or
    /// `None` when the person answered meanwhile (that answer is on its way).
    fn expire(&self, pending_id: u64) -> Option<TransferResponse>;
    /// How long a held request waits for the person.
    fn ask_timeout(&self) -> Duration;
}

/// Reply channels of requests held for the person, each with its deadline.
pub struct HeldRequests<C> {
    channels: HashMap<u64, (C, Option<DeadlineKey>)>,
    deadlines: Deadlines<u64>,
}

impl<C> Default for HeldRequests<C> {
    fn default() -> Self {
        Self {
            channels: HashMap::new(),
            deadlines: Deadlines::default(),
        }
    }
}

impl<C> HeldRequests<C> {
    /// Keeps `channel` for `pending_id` until answered, at most `patience`
    /// (and never past [`MAX_ASK_TIMEOUT`]).
    pub fn hold(&mut self, pending_id: u64, channel: C, patience: Duration) {
        let key = self
            .deadlines
            .insert(pending_id, patience.min(MAX_ASK_TIMEOUT));
        self.channels.insert(pending_id, (channel, Some(key)));
    }

    /// The channel to answer `pending_id` on, if it is still held; its deadline is cancelled.
    pub fn take(&mut self, pending_id: u64) -> Option<C> {
        let (channel, key) = self.channels.remove(&pending_id)?;
        if let Some(key) = key {
            self.deadlines.cancel(&key);
        }
        Some(channel)
    }

    /// Requests held right now.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether no request is held.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The next request whose time ran out. Never completes while none is
    /// held; cancel-safe, so it is one case of the event loop's `select!`.
    pub async fn next_expired(&mut self) -> u64 {
        loop {
            let pending_id = self.deadlines.next().await;
            if let Some((_, key)) = self.channels.get_mut(&pending_id) {
                *key = None;
                return pending_id;
            }
        }
    }

    /// Settles a request whose time ran out: the desk's rejection goes out on
    /// its channel; if the desk says the person answered meanwhile, the
    /// channel stays for that answer.
    pub fn settle_expired(
        &mut self,
        pending_id: u64,
        desk: &dyn TransferDesk,
    ) -> Option<(C, TransferResponse)> {
        let response = desk.expire(pending_id)?;
        let channel = self.take(pending_id)?;
        Some((channel, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::timeout;

    /// A desk that holds every request and remembers which were answered.
    struct AskingDesk {
        answered: Mutex<Vec<u64>>,
    }

    impl TransferDesk for AskingDesk {
        fn on_request(&self, _: PeerId, _: &FileId, _: &SharedFiles) -> Verdict {
            unreachable!("the tests hold requests directly")
        }
        fn expire(&self, pending_id: u64) -> Option<TransferResponse> {
            let answered = self.answered.lock().unwrap().contains(&pending_id);
            (!answered).then(|| TransferResponse::Rejected {
                reason: "timed out".into(),
            })
        }
        fn ask_timeout(&self) -> Duration {
            Duration::from_secs(60)
        }
    }

    fn desk(answered: &[u64]) -> AskingDesk {
        AskingDesk {
            answered: Mutex::new(answered.to_vec()),
        }
    }

    async fn expired_within(
        held: &mut HeldRequests<&'static str>,
        within: Duration,
    ) -> Option<u64> {
        timeout(within, held.next_expired()).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_request_is_rejected_when_its_time_runs_out() {
        let mut held = HeldRequests::default();
        held.hold(1, "channel 1", Duration::from_secs(60));
        assert_eq!(
            expired_within(&mut held, Duration::from_secs(59)).await,
            None
        );
        let expired = expired_within(&mut held, Duration::from_secs(2)).await;
        assert_eq!(expired, Some(1));
        let (channel, response) = held.settle_expired(1, &desk(&[])).expect("rejected");
        assert_eq!(channel, "channel 1");
        assert!(matches!(response, TransferResponse::Rejected { .. }));
        assert!(held.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answered_request_never_expires() {
        let mut held = HeldRequests::default();
        held.hold(1, "channel 1", Duration::from_secs(60));
        held.hold(2, "channel 2", Duration::from_secs(90));
        assert_eq!(held.take(1), Some("channel 1"));
        assert_eq!(held.take(1), None, "a channel is answered once");
        let expired = expired_within(&mut held, Duration::from_secs(3600)).await;
        assert_eq!(expired, Some(2), "only the unanswered request expires");
        assert_eq!(
            expired_within(&mut held, Duration::from_secs(3600)).await,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_racing_the_deadline_keeps_its_channel() {
        let mut held = HeldRequests::default();
        held.hold(5, "channel 5", Duration::from_secs(1));
        let expired = expired_within(&mut held, Duration::from_secs(2)).await;
        assert_eq!(expired, Some(5));
        // The person answered just before: the desk has no rejection to send.
        assert!(held.settle_expired(5, &desk(&[5])).is_none());
        assert_eq!(held.len(), 1);
        assert_eq!(
            held.take(5),
            Some("channel 5"),
            "the answer still finds its channel"
        );
        assert_eq!(
            expired_within(&mut held, Duration::from_secs(3600)).await,
            None
        );
    }
}
