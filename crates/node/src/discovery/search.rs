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

use crate::discovery::dht::{self, DhtHit, DhtSearch, DhtSearchStats};
use crate::discovery::Reach;
use crate::index_link::client::{SearchParams, SearchResults};
use crate::net::peer_book::FoundBy;
use crate::NodeError;

/// How long the index may take to answer a search: a person waits for the
/// answer, so a frozen or overloaded index costs at most this, and the
/// answer says it was not heard.
const INDEX_TIMEOUT: Duration = Duration::from_millis(2500);
/// How long the DHT part of a search may take.
const DHT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a holder was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The index listed it.
    Index,
    /// The DHT named it as a provider.
    Dht,
    /// The DHT named it, and it was found on the LAN.
    Lan,
}

/// A holder of a file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Holder {
    /// The user, when the index knows it.
    pub user: Option<String>,
    /// The peer id.
    pub peer_id: String,
    /// Where to reach it.
    pub addrs: Vec<String>,
    /// Where it was found.
    pub found_by: BTreeSet<Origin>,
}

/// One file id with every known holder.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Hit {
    /// The file id.
    #[schema(value_type = String)]
    pub id: FileId,
    /// Names it is shared under.
    pub names: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// Holders from every source.
    pub sources: Vec<Holder>,
}

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
    index: Option<Result<SearchResults, String>>,
    dht: Result<DhtSearch, String>,
) -> Merged {
    let mut hits: BTreeMap<FileId, Hit> = BTreeMap::new();
    let mut origins = BTreeMap::new();
    let mut index_total = 0;
    if let Some(index) = index {
        origins.insert("index".to_string(), outcome(&index, |r| r.results.len()));
        if let Ok(results) = index {
            index_total = results
                .extra
                .get("total")
                .and_then(|t| t.as_u64())
                .unwrap_or(results.results.len() as u64);
            for found in results.results {
                let hit = hit_for(&mut hits, found.id, found.size);
                for name in found.names {
                    add_name(hit, name);
                }
                for src in found.sources {
                    let holder = holder_for(hit, &src.peer_id, &src.addrs);
                    holder.user = Some(src.user);
                    holder.found_by.insert(Origin::Index);
                }
            }
        }
    }
    let mut dht_outcome = outcome(&dht, |d| d.hits.len());
    let mut dht_only = 0;
    if let Ok(DhtSearch { hits: found, stats }) = dht {
        dht_outcome.stats = Some(stats);
        let lan_peers: BTreeSet<String> = reach
            .host
            .book()
            .list()
            .into_iter()
            .filter(|p| p.found_by.contains(&FoundBy::Mdns))
            .map(|p| p.peer_id)
            .collect();
        for found in found {
            if !hits.contains_key(&found.id) {
                dht_only += 1;
            }
            let hit = hit_for(&mut hits, found.id, found.size);
            for name in found.names {
                add_name(hit, name);
            }
            for src in found.sources {
                let how = if lan_peers.contains(&src.peer_id) {
                    Origin::Lan
                } else {
                    Origin::Dht
                };
                holder_for(hit, &src.peer_id, &src.addrs)
                    .found_by
                    .insert(how);
            }
        }
    }
    origins.insert("dht".to_string(), dht_outcome);
    Merged {
        results: hits.into_values().collect(),
        total: index_total + dht_only,
        origins,
    }
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

fn hit_for(hits: &mut BTreeMap<FileId, Hit>, id: FileId, size: u64) -> &mut Hit {
    hits.entry(id).or_insert_with(|| Hit {
        id,
        names: Vec::new(),
        size,
        sources: Vec::new(),
    })
}

fn add_name(hit: &mut Hit, name: String) {
    if !hit.names.contains(&name) {
        hit.names.push(name);
    }
}

fn holder_for<'a>(hit: &'a mut Hit, peer_id: &str, addrs: &[String]) -> &'a mut Holder {
    let at = match hit.sources.iter().position(|h| h.peer_id == peer_id) {
        Some(at) => at,
        None => {
            hit.sources.push(Holder {
                user: None,
                peer_id: peer_id.to_string(),
                addrs: Vec::new(),
                found_by: BTreeSet::new(),
            });
            hit.sources.len() - 1
        }
    };
    let holder = &mut hit.sources[at];
    for addr in addrs {
        if !holder.addrs.contains(addr) {
            holder.addrs.push(addr.clone());
        }
    }
    holder
}

/// Applies the mode and filters the index applies, to a DHT result.
fn matches_params(hit: &DhtHit, params: &SearchParams) -> bool {
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
    let mut addrs: Vec<String> = hit
        .sources
        .iter()
        .flat_map(|src| {
            src.addrs
                .iter()
                .map(move |a| format!("{a}/p2p/{}", src.peer_id))
        })
        .collect();
    // Another machine's loopback address reaches this one: try those last.
    addrs.sort_by_key(|a| a.starts_with("/ip4/127.") || a.starts_with("/ip6/::1/"));
    Ok((hit.id, addrs))
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
        let deadline = tokio::time::Instant::now() + DHT_TIMEOUT;
        dht::holders_of(reach.host, id, deadline)
            .await
            .unwrap_or_else(|e| {
                tracing::info!("the DHT could not be asked for holders of {id}: {e}");
                Vec::new()
            })
    };
    let (index, dht) = tokio::join!(index, dht);
    let me = reach.host.peer_id().to_string();
    let mut addrs: Vec<String> = Vec::new();
    let index_sources = index
        .into_iter()
        .flat_map(|r| r.results)
        .filter(|hit| hit.id == *id)
        .flat_map(|hit| hit.sources)
        .map(|src| (src.peer_id, src.addrs));
    let dht_sources = dht.into_iter().map(|(peer, addrs)| {
        let addrs = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        (peer.to_string(), addrs)
    });
    for (peer, peer_addrs) in index_sources.chain(dht_sources) {
        if peer == me {
            continue;
        }
        for addr in peer_addrs {
            let full = format!("{addr}/p2p/{peer}");
            if !addrs.contains(&full) {
                addrs.push(full);
            }
        }
    }
    if addrs.is_empty() {
        return Err(NodeError::NotFound(format!(
            "no other peer is known to share {id} (asked the index and the DHT); \
             a link with its sharer's address (`peershare link`) reaches it directly"
        )));
    }
    addrs.sort_by_key(|a| a.starts_with("/ip4/127.") || a.starts_with("/ip6/::1/"));
    Ok(addrs)
}
