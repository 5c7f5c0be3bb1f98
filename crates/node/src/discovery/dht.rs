//! Serverless discovery of files: provider records for every shared file
//! id and every word of every shared name (announced through the host's
//! Kademlia behaviour, see [`crate::net::kademlia`], and withdrawn when a
//! file is unshared), search by words, and the holders of one id.
//!
//! A search asks the DHT who provides each word, then browses the
//! providers of the rarest word and keeps only entries whose names hold
//! every word: a record never
//! stands for a file by itself, so a provider that lies, or answers browse
//! with junk, is skipped and logged, never shown.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};
use peershare_core::words::{file_key, name_has_words, name_words, word_key};
use peershare_core::FileId;
use serde::Serialize;

use crate::discovery::browse::browse_until;
use crate::discovery::found::Findings;
use crate::net::host::Host;
use crate::share::{SharedFile, SharedFiles};
use crate::views::{Hit, Holder, Origin};
use crate::NodeError;

/// Most words of a query looked up.
const MAX_QUERY_WORDS: usize = 8;
/// Most providers browsed for one search.
const MAX_PROVIDERS_BROWSED: usize = 32;
/// How long one provider may take to list its matching files: a person
/// waits for the search, so a silent provider costs at most this.
const PROVIDER_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a search's provider lookups may run before they answer with
/// the providers found so far (DHT nodes that are gone keep a lookup waiting).
pub const LOOKUP_PATIENCE: Duration = Duration::from_millis(1000);

/// The DHT keys announced for these files: each id and each word of each name.
fn keys_of(files: &[SharedFile]) -> HashSet<[u8; 32]> {
    let mut keys = HashSet::new();
    for file in files {
        keys.insert(file_key(&file.id()));
        keys.extend(name_words(&file.name).iter().map(|w| word_key(w)));
    }
    keys
}

/// Keeps the DHT's provider records in step with the files offered to the
/// network; run it on the daemon's lifetime.
pub async fn announce_shares(host: Host, shares: SharedFiles) {
    let mut changes = shares.subscribe();
    let mut provided: HashSet<[u8; 32]> = HashSet::new();
    loop {
        let wanted = keys_of(&shares.published());
        for key in wanted.difference(&provided) {
            if host.provide(*key).await.is_err() {
                return;
            }
        }
        for key in provided.difference(&wanted) {
            if host.unprovide(*key).await.is_err() {
                return;
            }
        }
        if wanted != provided {
            tracing::debug!(keys = wanted.len(), "DHT announcements updated");
        }
        provided = wanted;
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// The addresses of `peer`, waiting briefly for the connection the provider
/// lookup opened to report where it is.
async fn known_addrs(host: &Host, peer: &PeerId) -> Vec<Multiaddr> {
    for _ in 0..60 {
        let addrs = host.book().addrs(peer);
        if !addrs.is_empty() {
            return addrs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Vec::new()
}

/// What a DHT search did, for people and benchmarks to see.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DhtSearchStats {
    /// Words looked up (one provider lookup each, in parallel).
    pub words: usize,
    /// Requests the lookups sent to DHT nodes, all words together.
    pub lookup_requests: u32,
    /// How long the slowest lookup ran, in milliseconds.
    pub lookup_ms: u64,
    /// Providers of the rarest word, other than this peer.
    pub providers: usize,
    /// Providers that answered with at least one matching file.
    pub answered: usize,
    /// Providers skipped: unreachable, broken answers, or nothing matching.
    pub skipped: usize,
    /// The whole search, in milliseconds.
    pub ms: u64,
}

/// The files a DHT search found, and what it cost.
#[derive(Debug, Clone, Default)]
pub struct DhtSearch {
    /// Files, one per id.
    pub hits: Vec<Hit>,
    /// What the search did.
    pub stats: DhtSearchStats,
}

/// Peers the DHT names as holders of `id`, with the addresses they are
/// known at. Unconfirmed: asking a holder for the file confirms it (one
/// that lies answers "not found" and is passed over).
pub async fn holders_of(
    host: &Host,
    id: &FileId,
    deadline: tokio::time::Instant,
) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NodeError> {
    let patience = deadline.saturating_duration_since(tokio::time::Instant::now());
    let lookup = tokio::time::timeout_at(deadline, host.find_providers(file_key(id), patience))
        .await
        .map_err(|_| NodeError::PeerUnreachable("no DHT node answered in time".into()))??;
    let mut providers: Vec<PeerId> = lookup
        .providers
        .into_iter()
        .filter(|p| *p != host.peer_id())
        .collect();
    providers.sort();
    providers.truncate(MAX_PROVIDERS_BROWSED);
    let located = providers
        .iter()
        .map(|peer| async move { (*peer, known_addrs(host, peer).await) });
    Ok(join_all(located)
        .await
        .into_iter()
        .filter(|(_, addrs)| !addrs.is_empty())
        .collect())
}

/// Files whose names hold every word of `query`, from the peers the DHT
/// names as providers; providers that have not answered by `deadline` (or
/// within [`PROVIDER_TIMEOUT`]) are skipped, never waited for.
pub async fn search_words(
    host: &Host,
    query: &str,
    deadline: tokio::time::Instant,
) -> Result<DhtSearch, NodeError> {
    let started = std::time::Instant::now();
    let words: BTreeSet<String> = name_words(query)
        .into_iter()
        .take(MAX_QUERY_WORDS)
        .collect();
    let mut stats = DhtSearchStats {
        words: words.len(),
        ..DhtSearchStats::default()
    };
    if words.is_empty() {
        return Ok(DhtSearch::default());
    }
    let lookups = words
        .iter()
        .map(|w| host.find_providers(word_key(w), LOOKUP_PATIENCE));
    // Nodes keep only `replication` providers per key, so a common word's list
    // is cut short: browse the providers of the rarest word, whose list is
    // whole, rather than intersect lists that may each miss the holder.
    let mut rarest: Option<HashSet<PeerId>> = None;
    let lookups = tokio::time::timeout_at(deadline, join_all(lookups))
        .await
        .map_err(|_| NodeError::PeerUnreachable("no DHT node answered in time".into()))?;
    for lookup in lookups {
        let lookup = lookup?;
        stats.lookup_requests += lookup.requests;
        stats.lookup_ms = stats.lookup_ms.max(lookup.duration.as_millis() as u64);
        if rarest
            .as_ref()
            .is_none_or(|r| lookup.providers.len() < r.len())
        {
            rarest = Some(lookup.providers);
        }
    }
    let mut providers: Vec<PeerId> = rarest
        .unwrap_or_default()
        .into_iter()
        .filter(|p| *p != host.peer_id())
        .collect();
    providers.sort();
    providers.truncate(MAX_PROVIDERS_BROWSED);
    stats.providers = providers.len();
    let words = &words;
    let browse_deadline = deadline.min(tokio::time::Instant::now() + PROVIDER_TIMEOUT);
    let browses = providers.iter().map(|peer| async move {
        // Providers filter by the words themselves; their answers are checked anyway.
        let addrs = async { Ok(known_addrs(host, peer).await) };
        let (addrs, listing) = browse_until(host, *peer, addrs, words, browse_deadline).await;
        (*peer, addrs, listing)
    });
    let mut found = Findings::default();
    for (peer, addrs, listing) in join_all(browses).await {
        let entries = match listing {
            Ok(listing) => listing.files,
            Err(e) => {
                tracing::info!(%peer, "skipping a DHT provider: {e}");
                stats.skipped += 1;
                continue;
            }
        };
        let matching: Vec<_> = entries
            .into_iter()
            .filter(|e| name_has_words(&e.name, words))
            .collect();
        if matching.is_empty() {
            tracing::info!(%peer, "a DHT provider lists no file with these words; skipped");
            stats.skipped += 1;
            continue;
        }
        stats.answered += 1;
        for entry in matching {
            found.add(Hit {
                id: entry.id,
                names: vec![entry.name],
                size: entry.size,
                sources: vec![Holder::found(peer.to_string(), &addrs, Origin::Dht)],
                sources_total: 1,
            });
        }
    }
    stats.ms = started.elapsed().as_millis() as u64;
    Ok(DhtSearch {
        hits: found.into_hits(),
        stats,
    })
}
