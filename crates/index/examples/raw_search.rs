//! The baseline of bench/index.sh: the same searches run straight on the
//! search structure (the online catalogue and its text index), with no HTTP,
//! on one thread, after loading an index's database the way the index does
//! at start and waiting for the text index's merges to end (an index that
//! has been idle a second searches the merged segments). Each search is
//! what the index runs for a request: `search::find_json`, ranking and
//! writing the page's JSON. Not a test; bench/index.sh builds and runs it
//! beside a live index.
//!
//! Usage: `raw_search STORE QUERIES_JSON SECONDS MAX_QUERIES [--on-request]`,
//! where the store is an index.db file or a PostgreSQL URL and the queries
//! file is `{"kind": [[q, mode, ext or null], ...], ...}`. Prints one JSON
//! object: per kind, queries run, queries/s, p50 and p99 (seconds) and the
//! min/median/max totals of its first 20 queries; the load time and the
//! wait for merges.
//!
//! With `--on-request` it loads once, prints the load time, the wait and
//! the totals on one line, then measures one kind per line read from stdin
//! (its name) and prints that kind's figures on one line, until stdin ends.
//! The bench measures each kind right before and right after the index's
//! levels of that kind: this machine's speed drifts by up to 2x within
//! minutes, so a baseline taken minutes away from the level it divides
//! measures the machine, not the index.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use peershare_index::search::catalogue::Catalogue;
use peershare_index::search::{self, SearchMode, SearchParams, SearchQuery};
use peershare_index::store::Store;

/// The same allocator as the `peershare` binary, so the baseline and the
/// index differ only by what lies between them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Kinds = BTreeMap<String, Vec<(String, String, Option<String>)>>;

fn query(q: &str, mode: &str, ext: &Option<String>) -> SearchQuery {
    let mode = match mode {
        "exact" => SearchMode::Exact,
        "substring" => SearchMode::Substring,
        "id" => SearchMode::Id,
        _ => SearchMode::Words,
    };
    SearchQuery::from_params(SearchParams {
        q: q.to_string(),
        mode: Some(mode),
        ext: ext.clone(),
        min_size: None,
        max_size: None,
        offset: None,
        limit: None,
    })
    .expect("bench queries are valid")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[at]
}

/// CPU time this process has used, in clock ticks (Linux).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Waits until the text index's merges after the load are done (the
/// process idle for 5 s in a row, at most 15 minutes: the small segments
/// are merged once the indexer has been idle 3 s) and the indexer has had
/// time to search the merged segments, as the index does once idle;
/// returns the wait in seconds.
async fn settle() -> f64 {
    let start = Instant::now();
    let (mut quiet, mut used) = (0, cpu_ticks());
    while quiet < 5 && start.elapsed().as_secs() < 900 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = cpu_ticks();
        quiet = match (used, now) {
            (Some(before), Some(after)) if after.saturating_sub(before) < 5 => quiet + 1,
            _ => 0,
        };
        used = now;
    }
    start.elapsed().as_secs_f64()
}

/// The min/median/max totals of a kind's first 20 queries.
fn totals(catalogue: &Catalogue, prepared: &[SearchQuery]) -> Result<serde_json::Value, String> {
    let mut totals: Vec<i64> = prepared
        .iter()
        .take(20)
        .map(|q| search::find(catalogue, q).map(|r| r.total))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    totals.sort_unstable();
    Ok(serde_json::json!([
        totals.first(),
        totals.get(totals.len() / 2),
        totals.last()
    ]))
}

/// Runs `prepared` round robin for `seconds` (at most `max` queries, at
/// least 5) and reports queries run, queries/s, p50 and p99.
fn measure(
    catalogue: &Catalogue,
    prepared: &[SearchQuery],
    seconds: f64,
    max: usize,
) -> Result<serde_json::Value, String> {
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut k = 0;
    while (start.elapsed().as_secs_f64() < seconds && latencies.len() < max) || k < 5 {
        let q = &prepared[k % prepared.len()];
        k += 1;
        let t = Instant::now();
        search::find_json(catalogue, q).map_err(|e| e.to_string())?;
        latencies.push(t.elapsed().as_secs_f64());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "n": latencies.len(),
        "qps": latencies.len() as f64 / elapsed,
        "p50": percentile(&latencies, 50.0),
        "p99": percentile(&latencies, 99.0),
    }))
}

fn print_line(value: &serde_json::Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (db, queries, seconds, max, on_request) = match args.as_slice() {
        [_, db, queries, seconds, max] => (db, queries, seconds, max, false),
        [_, db, queries, seconds, max, flag] if flag == "--on-request" => {
            (db, queries, seconds, max, true)
        }
        _ => {
            return Err(
                "usage: raw_search STORE QUERIES_JSON SECONDS MAX_QUERIES [--on-request]".into(),
            )
        }
    };
    let seconds: f64 = seconds.parse()?;
    let max: usize = max.parse()?;
    let kinds: Kinds = serde_json::from_str(&std::fs::read_to_string(queries)?)?;
    let folder = tempfile::tempdir()?;

    let began = Instant::now();
    let store = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Store::open_postgres(db, 1).await?
    } else {
        Store::open(&PathBuf::from(db), 1).await?
    };
    let catalogue = Catalogue::open(folder.path(), u64::from(u32::MAX))?;
    // Every peer that has not left, whenever it was last seen.
    search::load_online(&store, &catalogue, 0)
        .await
        .map_err(|e| e.to_string())?;
    store.close().await;
    let load_secs = began.elapsed().as_secs_f64();
    let settle_secs = settle().await;

    let prepared: BTreeMap<&String, Vec<SearchQuery>> = kinds
        .iter()
        .map(|(kind, list)| (kind, list.iter().map(|(q, m, e)| query(q, m, e)).collect()))
        .collect();
    let mut all_totals = serde_json::Map::new();
    for (kind, list) in &prepared {
        all_totals.insert(kind.to_string(), totals(&catalogue, list)?);
    }
    if on_request {
        print_line(&serde_json::json!({
            "load_secs": load_secs, "settle_secs": settle_secs, "totals": all_totals,
        }))?;
        for line in std::io::stdin().lock().lines() {
            let kind = line?;
            let list = prepared
                .get(&kind)
                .ok_or_else(|| format!("no query kind {kind:?} in {queries}"))?;
            print_line(&measure(&catalogue, list, seconds, max)?)?;
        }
    } else {
        let mut out = serde_json::Map::new();
        for (kind, list) in &prepared {
            let mut figures = measure(&catalogue, list, seconds, max)?;
            figures["totals"] = all_totals[kind.as_str()].clone();
            out.insert(kind.to_string(), figures);
        }
        print_line(&serde_json::json!({
            "load_secs": load_secs, "settle_secs": settle_secs, "kinds": out,
        }))?;
    }
    catalogue.close();
    Ok(())
}
