//! One search over every place files are known: the index (when there is
//! one and the person is logged in), and the DHT (which reaches LAN peers
//! found by mDNS too). The index is asked first; the DHT runs beside it;
//! neither can hold the answer past its timeout. Results are merged by file
//! id, each holder tagged with where it was found, and each source's
//! outcome is reported so people see why a part is missing.
//!
//! It also resolves `get NAME`: exactly one file id with that name, and the
//! addresses of every holder other than this peer; and `get ID`: the
//! holders of one file id, from the index and the DHT.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use peershare_core::FileId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::discovery::dht::{self, DhtSearch, DhtSearchStats};
use crate::discovery::found::Findings;
use crate::discovery::Reach;
use crate::index_link::client::{IndexResults, SearchParams};
use crate::net::host::Host;
use crate::net::peer_book::FoundBy;
use crate::views::{Hit, Holder, Origin};
use crate::NodeError;

/// How long the index may take to answer a search: a person waits for the
/// answer, so a frozen or overloaded index costs at most this, and the
/// answer says it was not heard.
const INDEX_TIMEOUT: Duration = Duration::from_millis(2500);
/// How long the DHT part of a search may take.
const DHT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the DHT may take to name the holders of one file id.
const HOLDERS_DHT_TIMEOUT: Duration = Duration::from_secs(2);

/// What one source of results did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceOutcome {
    /// It answered.
    pub ok: bool,
    /// Files it found.
    pub results: usize,
    /// Why it did not answer, when it did not.
    pub error: Option<String>,
    /// What the DHT search did (the `dht` source only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<DhtSearchStats>,
}

/// A merged answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Merged {
    /// Files, one per id.
    pub results: Vec<Hit>,
    /// Files the index counts for this query (its own total) plus those only the DHT found.
    pub total: u64,
    /// What each source did: `index`, `dht`.
    pub origins: BTreeMap<String, SourceOutcome>,
}

/// Searches the index and the DHT at once and merges the answers.
pub async fn search(reach: Reach<'_>, params: &SearchParams) -> Merged {
    let index = async {
        let link = reach.index?;
        let outcome = match link.token() {
            Err(e) => Err(e.to_string()),
            Ok(token) => {
                match tokio::time::timeout(INDEX_TIMEOUT, link.client().search(&token, params))
                    .await
                {
                    Ok(Ok(results)) => Ok(results),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "the index did not answer within {:.1} s",
                        INDEX_TIMEOUT.as_secs_f32()
                    )),
                }
            }
        };
        Some(outcome)
    };
    let dht = async {
        let deadline = tokio::time::Instant::now() + DHT_TIMEOUT;
        // The DHT search keeps its own deadline and returns what it has; this is only a guard.
        let guard = DHT_TIMEOUT + Duration::from_secs(2);
        match tokio::time::timeout(guard, dht::search_words(reach.host, &params.q, deadline)).await
        {
            Ok(Ok(found)) => Ok(DhtSearch {
                hits: found
                    .hits
                    .into_iter()
                    .filter(|h| matches_params(h, params))
                    .collect(),
                stats: found.stats,
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the DHT did not answer within {} s",
                DHT_TIMEOUT.as_secs()
            )),
        }
    };
    let (index, dht) = tokio::join!(index, dht);
    merge(reach, index, dht)
}

fn merge(
    reach: Reach<'_>,
    index: Option<Result<IndexResults, String>>,
    dht: Result<DhtSearch, String>,
) -> Merged {
    let mut found = Findings::default();
    let mut origins = BTreeMap::new();
    let mut index_total = 0;
    if let Some(index) = index {
        origins.insert("index".to_string(), outcome(&index, |r| r.hits.len()));
        if let Ok(results) = index {
            index_total = results.total;
            found.extend(results.hits);
        }
    }
    let mut dht_outcome = outcome(&dht, |d| d.hits.len());
    let mut dht_only = 0;
    if let Ok(DhtSearch { hits, stats }) = dht {
        dht_outcome.stats = Some(stats);
        let lan_peers = lan_peers(reach.host);
        for mut hit in hits {
            for holder in &mut hit.sources {
                if lan_peers.contains(&holder.peer_id) {
                    holder.found_by = BTreeSet::from([Origin::Lan]);
                }
            }
            if !found.contains(&hit.id) {
                dht_only += 1;
            }
            found.add(hit);
        }
    }
    origins.insert("dht".to_string(), dht_outcome);
    Merged {
        results: found.into_hits(),
        total: index_total + dht_only,
        origins,
    }
}

/// Peers found on the LAN by mDNS.
fn lan_peers(host: &Host) -> BTreeSet<String> {
    host.book()
        .list()
        .into_iter()
        .filter(|p| p.found_by.contains(&FoundBy::Mdns))
        .map(|p| p.peer_id)
        .collect()
}

fn outcome<T>(result: &Result<T, String>, count: impl Fn(&T) -> usize) -> SourceOutcome {
    match result {
        Ok(v) => SourceOutcome {
            ok: true,
            results: count(v),
            error: None,
            stats: None,
        },
        Err(e) => SourceOutcome {
            ok: false,
            results: 0,
            error: Some(e.clone()),
            stats: None,
        },
    }
}

/// Applies the mode and filters the index applies, to a DHT result.
fn matches_params(hit: &Hit, params: &SearchParams) -> bool {
    let name_ok = hit.names.iter().any(|name| match params.mode.as_deref() {
        Some("exact") => name == &params.q,
        Some("substring") => name.to_lowercase().contains(&params.q.to_lowercase()),
        _ => true,
    });
    let ext_ok = params.ext.as_ref().is_none_or(|ext| {
        hit.names.iter().any(|n| {
            n.rsplit_once('.')
                .is_some_and(|(_, e)| e.eq_ignore_ascii_case(ext.trim_start_matches('.')))
        })
    });
    name_ok
        && ext_ok
        && params.min_size.is_none_or(|m| hit.size >= m)
        && params.max_size.is_none_or(|m| hit.size <= m)
}

/// The one file named `name` (whole name, else last path part) held by peers other than this one,
/// and the full addresses of its holders (another machine's loopback addresses last).
pub async fn locate(reach: Reach<'_>, name: &str) -> Result<(FileId, Vec<String>), NodeError> {
    let exact = SearchParams {
        q: name.to_string(),
        mode: Some("exact".into()),
        limit: Some(100),
        ..SearchParams::default()
    };
    let mut merged = search(reach, &exact).await;
    if merged.results.is_empty() {
        let words = SearchParams {
            mode: Some("words".into()),
            ..exact
        };
        merged = search(reach, &words).await;
        merged
            .results
            .retain(|h| h.names.iter().any(|n| n.rsplit('/').next() == Some(name)));
    }
    let me = reach.host.peer_id().to_string();
    for hit in &mut merged.results {
        hit.sources
            .retain(|s| s.peer_id != me && !s.addrs.is_empty());
    }
    merged.results.retain(|h| !h.sources.is_empty());
    let hit = match merged.results.len() {
        1 => merged.results.remove(0),
        0 => {
            let failures: Vec<String> = merged
                .origins
                .iter()
                .filter_map(|(source, o)| o.error.as_ref().map(|e| format!("{source}: {e}")))
                .collect();
            return Err(NodeError::NotFound(format!(
                "no other peer shares a file named {name:?}{}; `peershare search WORDS` finds similar names",
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(" (not asked: {})", failures.join("; "))
                }
            )));
        }
        n => {
            return Err(NodeError::BadRequest(format!(
                "{n} different files are named {name:?}; pick one and a source with `peershare get <peer address> <id>`: {}",
                merged
                    .results
                    .iter()
                    .map(|h| format!(
                        "{} ({} bytes) from {}/p2p/{}",
                        h.id, h.size, h.sources[0].addrs[0], h.sources[0].peer_id
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
    };
    Ok((hit.id, full_addrs(&hit.sources)))
}

/// Full addresses of the peers other than this one that hold file `id`,
/// from the index (when logged in) and the DHT, asked at once; another
/// machine's loopback addresses come last.
pub async fn holders_of(reach: Reach<'_>, id: &FileId) -> Result<Vec<String>, NodeError> {
    let index = async {
        let link = reach.index?;
        let token = link.token().ok()?;
        let params = SearchParams {
            q: id.to_hex(),
            mode: Some("id".into()),
            limit: Some(1),
            ..SearchParams::default()
        };
        let asked = tokio::time::timeout(INDEX_TIMEOUT, link.client().search(&token, &params));
        match asked.await {
            Ok(Ok(results)) => Some(results),
            Ok(Err(e)) => {
                tracing::info!("the index could not be asked for holders of {id}: {e}");
                None
            }
            Err(_) => None,
        }
    };
    let dht = async {
        // A download keeps looking for holders while it runs: a slow DHT node
        // must not hold back the holders the index already named.
        let deadline = tokio::time::Instant::now() + HOLDERS_DHT_TIMEOUT;
        dht::holders_of(reach.host, id, deadline)
            .await
            .unwrap_or_else(|e| {
                tracing::info!("the DHT could not be asked for holders of {id}: {e}");
                Vec::new()
            })
    };
    let (index, dht) = tokio::join!(index, dht);
    let mut found = Findings::default();
    found.extend(index.into_iter().flat_map(|r| r.hits));
    for (peer, addrs) in dht {
        let holder = Holder::found(peer.to_string(), &addrs, Origin::Dht);
        found.add(Hit::held_by(*id, holder));
    }
    let me = reach.host.peer_id().to_string();
    let holders: Vec<Holder> = found
        .into_hits()
        .into_iter()
        .filter(|hit| hit.id == *id)
        .flat_map(|hit| hit.sources)
        .filter(|h| h.peer_id != me)
        .collect();
    let addrs = full_addrs(&holders);
    if addrs.is_empty() {
        return Err(NodeError::NotFound(format!(
            "no other peer is known to share {id} (asked the index and the DHT); \
             a link with its sharer's address (`peershare link`) reaches it directly"
        )));
    }
    Ok(addrs)
}

/// Every holder's full addresses (`…/p2p/<peer id>`), another machine's
/// loopback addresses last: they reach this machine, not that one.
fn full_addrs(holders: &[Holder]) -> Vec<String> {
    let mut addrs: Vec<String> = Vec::new();
    for holder in holders {
        for addr in &holder.addrs {
            let full = format!("{addr}/p2p/{}", holder.peer_id);
            if !addrs.contains(&full) {
                addrs.push(full);
            }
        }
    }
    addrs.sort_by_key(|a| a.starts_with("/ip4/127.") || a.starts_with("/ip6/::1/"));
    addrs
}
