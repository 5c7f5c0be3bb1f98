//! The user names an index gives to peer ids, so a sharer sees who asks
//! for its files and who downloads them ("alice", not "12D3KooW…").
//!
//! Answers (a name or "unknown") are cached for a few minutes, the cache
//! is bounded, and a lookup never waits long: while the index is slow or
//! down the peer id is shown without a name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::IndexClient;

/// How long an answer is trusted.
const KEEP: Duration = Duration::from_secs(300);
/// How long a lookup may take before the name is left out.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Peers remembered at most.
const MAX_ENTRIES: usize = 4096;

/// A cache of peer id → user name.
#[derive(Default)]
pub struct PeerNames {
    known: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl PeerNames {
    /// The user owning `peer_id` according to the index, if it says.
    pub async fn user_of(
        &self,
        client: &IndexClient,
        token: &str,
        peer_id: &str,
    ) -> Option<String> {
        if let Some(answer) = self.cached(peer_id) {
            return answer;
        }
        let looked_up =
            tokio::time::timeout(LOOKUP_TIMEOUT, client.peer_owner(token, peer_id)).await;
        let answer = match looked_up {
            Ok(Ok(name)) => name,
            Ok(Err(e)) => {
                tracing::debug!(peer_id, "cannot ask the index who owns a peer: {e}");
                return None;
            }
            Err(_) => return None,
        };
        self.remember(peer_id, answer.clone());
        answer
    }

    fn cached(&self, peer_id: &str) -> Option<Option<String>> {
        let known = self.known.lock().expect("names lock");
        known
            .get(peer_id)
            .filter(|(_, at)| at.elapsed() < KEEP)
            .map(|(name, _)| name.clone())
    }

    fn remember(&self, peer_id: &str, name: Option<String>) {
        let mut known = self.known.lock().expect("names lock");
        if known.len() >= MAX_ENTRIES {
            known.retain(|_, (_, at)| at.elapsed() < KEEP);
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
        }
        known.insert(peer_id.to_string(), (name, Instant::now()));
    }
}
