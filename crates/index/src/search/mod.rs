//! Search by file name over the online catalogue: all words (whole words,
//! the last one also a word prefix, case- and accent-insensitive; the default),
//! substring, exact name, or file id; filtered by extension and size;
//! ranked by how well the name matches times how many online holders the
//! file has; paged. Each result is one file id with its names, its size and
//! every online peer holding it.
//!
//! The parts: [`tokens`] turns names and queries into terms, [`text`] is
//! the tantivy index of titles with its group-committing indexer (in a
//! [`scratch`] folder that is never synced: it is rebuilt at start), and
//! [`catalogue`] is the in-memory view of online peers and their files that
//! the store's writes are applied to and that results are built from.
//! This module checks the parameters, waits for a place under the user's,
//! the address's and the shared gates ([`SearchSlot`]) and runs the search
//! on a blocking thread. Pages end within the first [`MAX_DEPTH`] results
//! (deeper ones are refused with 400: narrow the search instead). Query
//! text is data only: it never becomes query syntax, and control characters
//! (no file name has any) are refused with 400.

pub mod catalogue;
mod merging;
mod names;
pub mod scratch;
pub mod text;
pub mod tokens;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{Action, AuditEvent};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, ClientAddr};
use crate::gate::SearchSlot;
use crate::state::AppState;
use crate::store::{PeerRow, Store};
use crate::validate;
use catalogue::{Catalogue, OnlinePeer};
use text::{FileFilter, NameMatch, TextIndexError};

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Results per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most results per page.
pub const MAX_LIMIT: u32 = 500;
/// The furthest a page may reach (`offset + limit`).
pub const MAX_DEPTH: i64 = 1000;
/// Most titles ranked for one page: enough for [`MAX_DEPTH`] files even
/// when files have several matching names.
const MAX_RANKED: usize = 16 * MAX_DEPTH as usize;

/// How the query text is matched against file names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// The whole name equals the query (case-sensitive).
    Exact,
    /// The name contains the query (case-insensitive).
    Substring,
    /// Every word of the query is a word of the name, the last one also
    /// the start of one, as in a search box (case- and accent-insensitive):
    /// `aula` finds `aula1.mp4`.
    #[default]
    Words,
    /// The file's BLAKE3 id (64 hex digits) equals the query.
    Id,
}

/// Search parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text to look for (1–256 characters).
    #[param(min_length = 1, max_length = 256)]
    pub q: String,
    /// `words` (default), `substring`, `exact`, or `id` (the query is a BLAKE3 id).
    pub mode: Option<SearchMode>,
    /// Only names with this extension (`mp4` or `.mp4`).
    pub ext: Option<String>,
    /// Only files of at least this many bytes.
    pub min_size: Option<u64>,
    /// Only files of at most this many bytes.
    pub max_size: Option<u64>,
    /// Results to skip (default 0); `offset + limit` may be at most 1000.
    pub offset: Option<u32>,
    /// Results per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A checked search, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The query text.
    pub text: String,
    /// How to match it.
    pub mode: SearchMode,
    /// Lowercase extension without the dot.
    pub ext: Option<String>,
    /// Smallest size.
    pub min_size: Option<i64>,
    /// Largest size.
    pub max_size: Option<i64>,
    /// Results to skip.
    pub offset: i64,
    /// Results to return.
    pub limit: i64,
}

/// An online peer holding a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Source {
    /// The user running the peer.
    pub user: String,
    /// The peer's libp2p id.
    pub peer_id: String,
    /// Where to reach it.
    pub addrs: Vec<String>,
}

/// One file id found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// BLAKE3 id.
    pub id: String,
    /// Every name online peers give it, sorted.
    pub names: Vec<String>,
    /// Size in bytes.
    pub size: i64,
    /// Online peers holding it: all of them, or for a popular file a
    /// sample of [`catalogue::MAX_SOURCES_LISTED`] that differs between
    /// searches (so downloads spread over its holders).
    pub sources: Vec<Source>,
    /// How many online peers hold it (more than `sources` lists when it is
    /// popular).
    #[serde(default)]
    pub sources_total: i64,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    /// Matching file ids in all pages; an estimate when
    /// `total_is_estimate` says so.
    pub total: i64,
    /// Always false: kept for older clients (totals are no longer cut at a
    /// count limit; see `total_is_estimate`).
    pub total_is_lower_bound: bool,
    /// True when `total` is estimated from the ranked matches (many files
    /// match); pages reach at most 1000 results, so narrow the search to
    /// see others.
    #[serde(default)]
    pub total_is_estimate: bool,
    /// Results skipped.
    pub offset: i64,
    /// This page, best first: by how well the name matches the query,
    /// times how many online holders the file has.
    pub results: Vec<SearchHit>,
}

impl SearchQuery {
    /// Checks raw parameters.
    pub fn from_params(p: SearchParams) -> Result<Self, ApiError> {
        let chars = p.q.chars().count();
        if p.q.trim().is_empty() || chars > MAX_QUERY_CHARS {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("q must have 1 to {MAX_QUERY_CHARS} characters (not only spaces)"),
            ));
        }
        if p.q.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "q must not contain control characters (such as NUL, tabs or line breaks); \
                 no file name has any, so leave them out",
            ));
        }
        let size = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let (min_size, max_size) = (size(p.min_size), size(p.max_size));
        if let (Some(min), Some(max)) = (min_size, max_size) {
            if min > max {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "min_size is larger than max_size; swap them",
                ));
            }
        }
        let offset = i64::from(p.offset.unwrap_or(0));
        let limit = validate::limit(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        if offset + limit > MAX_DEPTH {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "offset + limit may be at most {MAX_DEPTH} (got {}): pages reach only the \
                     first {MAX_DEPTH} results; narrow the search (more words, mode=exact, ext, \
                     min_size or max_size) instead of paging further",
                    offset + limit
                ),
            ));
        }
        let mode = p.mode.unwrap_or_default();
        let text = match mode {
            SearchMode::Id => validate::file_id(p.q.trim())?,
            _ => p.q,
        };
        Ok(Self {
            text,
            mode,
            ext: p
                .ext
                .as_deref()
                .map(validate::extension_filter)
                .transpose()?,
            min_size,
            max_size,
            offset,
            limit,
        })
    }
}

impl SearchQuery {
    /// Whether the search's work is usually small: an exact name or a file
    /// id looks up one entry, and a default page lists at most
    /// [`DEFAULT_LIMIT`] files (an exact name shared by more than
    /// [`text::EXACT_MATCHES`] titles is still run off the async threads).
    pub fn is_quick(&self) -> bool {
        matches!(self.mode, SearchMode::Exact | SearchMode::Id)
            && self.limit <= DEFAULT_LIMIT as i64
    }

    fn filter(&self) -> FileFilter {
        let size = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        FileFilter {
            ext: self.ext.clone(),
            min_size: size(self.min_size),
            max_size: size(self.max_size),
        }
    }

    fn name_match(&self) -> Option<NameMatch> {
        match self.mode {
            SearchMode::Words => {
                let words = tokens::words(&self.text);
                (!words.is_empty()).then_some(NameMatch::Words(words))
            }
            SearchMode::Substring => Some(NameMatch::Substring(self.text.clone())),
            SearchMode::Exact => Some(NameMatch::Exact(self.text.clone())),
            SearchMode::Id => None,
        }
    }
}

/// Runs a search over the online catalogue (blocking: tantivy and the
/// catalogue's lock; call it off the async threads).
pub fn find(catalogue: &Catalogue, query: &SearchQuery) -> Result<SearchResults, TextIndexError> {
    let (head, files) = page_of(catalogue, query)?;
    Ok(SearchResults {
        results: catalogue.hits(&files),
        ..head
    })
}

/// [`find`], answered as the JSON of its [`SearchResults`] written
/// straight from the catalogue (blocking, like [`find`]). The index
/// answers with this.
pub fn find_json(catalogue: &Catalogue, query: &SearchQuery) -> Result<Vec<u8>, ApiError> {
    let internal = |e: &dyn std::fmt::Display| ApiError::Internal(e.to_string());
    let (head, files) = page_of(catalogue, query).map_err(|e| internal(&e))?;
    catalogue.page_json(head, &files).map_err(|e| internal(&e))
}

/// A query's totals (with no results yet) and the file slots of its page.
/// Titles are ranked, then grouped by file in rank order; when a page
/// needs more distinct files than the ranked titles give, more are ranked.
fn page_of(
    catalogue: &Catalogue,
    query: &SearchQuery,
) -> Result<(SearchResults, Vec<u32>), TextIndexError> {
    let mut head = SearchResults {
        total: 0,
        total_is_lower_bound: false,
        total_is_estimate: false,
        offset: query.offset,
        results: Vec::new(),
    };
    let start = usize::try_from(query.offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(query.limit).unwrap_or(usize::MAX));
    let filter = query.filter();
    let Some(name) = query.name_match() else {
        let mut files = Vec::new();
        if query.mode == SearchMode::Id {
            files.extend(catalogue.by_id(&query.text, &filter));
            head.total = files.len() as i64;
        }
        files.drain(..start.min(files.len()));
        return Ok((head, files));
    };
    // Most files have one name: a quarter more titles than the page needs
    // usually give enough files, and fewer make skipping work better.
    let mut wanted = end
        .saturating_add(end / 4)
        .saturating_add(8)
        .min(MAX_RANKED);
    loop {
        let ranked = catalogue.rank(&name, &filter, wanted)?;
        let files = catalogue.files_of(&ranked.best);
        let seen_all = !ranked.estimated && ranked.best.len() as u64 >= ranked.matches;
        if files.len() >= end || seen_all || wanted >= MAX_RANKED {
            head.total = if seen_all {
                files.len() as i64
            } else {
                head.total_is_estimate = true;
                // The share of distinct files among the ranked titles,
                // applied to all matching titles.
                let share = files.len() as f64 / ranked.best.len().max(1) as f64;
                ((ranked.matches as f64 * share) as i64).max(files.len() as i64)
            };
            let page = files[start.min(files.len())..end.min(files.len())].to_vec();
            return Ok((head, page));
        }
        wanted = wanted.saturating_mul(4).min(MAX_RANKED);
    }
}

/// Runs [`find_json`]: a search whose work is small and bounded (see
/// [`SearchQuery::is_quick`]) right here when the catalogue is not being
/// changed, any other on a blocking thread. Handing a search of a few
/// microseconds to another thread and back cost more than the search (two
/// thread wake-ups, a fifth of the index's CPU at 20,000 exact searches/s).
/// A page's JSON is written and freed on the thread that ran the search
/// (handing hundreds of small allocations to another thread made the
/// allocator collect frees across threads, a quarter of the index's CPU in
/// a profile at 1M).
pub async fn find_as_json(
    catalogue: Arc<Catalogue>,
    query: SearchQuery,
) -> Result<Vec<u8>, ApiError> {
    if query.is_quick() {
        // Queued behind the tasks ready to run, holding its places at the
        // gates: run at once, a search frees its place within the poll that
        // took it, the gates never see a line, and searches wait unseen in
        // the runtime's queue instead (p99 67–138 ms at 1,000 clients at
        // 10M, against 1.6 ms with this yield).
        tokio::task::yield_now().await;
        if answers_at_once(&catalogue, &query) {
            return find_json(&catalogue, &query);
        }
    }
    tokio::task::spawn_blocking(move || find_json(&catalogue, &query))
        .await
        .map_err(|e| ApiError::Internal(format!("search task failed: {e}")))?
}

/// Whether a quick search may run right here: the catalogue is not being
/// changed, and an exact name has at most [`text::EXACT_MATCHES`] titles
/// (every one is ranked, and names are free to share).
fn answers_at_once(catalogue: &Catalogue, query: &SearchQuery) -> bool {
    match query.mode {
        SearchMode::Exact => catalogue
            .titles_named_at_once(&query.text)
            .is_some_and(|titles| u64::from(titles) <= text::EXACT_MATCHES),
        _ => catalogue.readable_at_once(),
    }
}

/// Fills `catalogue` with the store's peers seen at or after `cutoff` (ms)
/// and their files; returns how many peers, once they are searchable.
pub async fn load_online(
    store: &Store,
    catalogue: &Catalogue,
    cutoff: i64,
) -> Result<usize, ApiError> {
    let peers = store.online_peers(cutoff).await?;
    let mut last = catalogue::Pending::none();
    for (user, peer) in &peers {
        let files = store.peer_files(&peer.peer_id).await?;
        last = catalogue.join(online_peer(user, peer), &files);
    }
    searchable(last).await?;
    Ok(peers.len())
}

/// Waits until a catalogue change is searchable.
pub async fn searchable(pending: catalogue::Pending) -> Result<(), ApiError> {
    pending
        .searchable()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A stored peer as the catalogue lists it.
pub fn online_peer(user: &str, peer: &PeerRow) -> OnlinePeer {
    OnlinePeer {
        peer_id: peer.peer_id.clone(),
        user: user.to_string(),
        addrs: serde_json::from_str(&peer.addrs_json).unwrap_or_default(),
        last_seen: peer.last_seen,
    }
}

/// Refuses a join or publish by `user` of `adding` files (replacing the
/// peer's current ones when `replacing`): with 429 when the user would list
/// more than their allowance, with 503 when the index would pass its file
/// budget or the process is over its memory limit.
pub fn room_for_files(
    state: &AppState,
    user: &str,
    peer_id: &str,
    adding: usize,
    replacing: bool,
) -> Result<(), ApiError> {
    const RETRY_SECS: u64 = 60;
    let allowance = state.config().max_files_per_user;
    if allowance > 0 {
        let (of_user, of_peer) = state.catalogue().listings_of(user, peer_id);
        let kept = if replacing {
            of_user.saturating_sub(of_peer)
        } else {
            of_user
        };
        let after = kept + adding as u64;
        if after > allowance {
            return Err(ApiError::QuotaExceeded {
                code: "listing_quota",
                message: format!(
                    "{user} lists {of_user} files across their peers and would list {after}; \
                     one user may list at most {allowance} (max_files_per_user): share fewer \
                     files, or take another peer offline first"
                ),
            });
        }
    }
    if let Err(full) = state.catalogue().room_for(peer_id, adding, replacing) {
        return Err(ApiError::Busy {
            retry_after_secs: RETRY_SECS,
            message: format!(
                "the index is full: {full}; this join or publish of {adding} files is refused \
                 (the operator can raise max_files); searches still work"
            ),
        });
    }
    let limit_mib = state.config().memory_limit_mib;
    if limit_mib > 0 {
        let used = crate::memory::resident_bytes().unwrap_or(0);
        if used > limit_mib.saturating_mul(1 << 20) {
            return Err(ApiError::Busy {
                retry_after_secs: RETRY_SECS,
                message: format!(
                    "the index is at its memory limit ({} MiB used of {limit_mib} MiB); \
                     joins and publishes are refused until peers leave (the operator can \
                     raise memory_limit_mib); searches still work",
                    used >> 20
                ),
            });
        }
    }
    Ok(())
}

/// Search shared files by name.
#[utoipa::path(get, path = "/search", tag = "search", params(SearchParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One entry per file id, with every online peer holding it", body = SearchResults),
        (status = 400, description = "Bad parameter (a control character in q, or offset + limit over 1000)", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 503, description = "Busy with other searches (or with too many of this user's or address's own); retry after Retry-After seconds", body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, ApiError> {
    let _slot = SearchSlot::enter(&state, &user.name, client.0).await?;
    let event = AuditEvent::new(Action::Search, client)
        .user(&user.name)
        .detail(&params.q);
    let result = async {
        let query = SearchQuery::from_params(params)?;
        find_as_json(state.catalogue().clone(), query).await
    }
    .await;
    state.audit().record_later(event.outcome(&result)).await;
    let body = result?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FileRow;

    fn params(q: &str, offset: Option<u32>, limit: Option<u32>) -> SearchParams {
        SearchParams {
            q: q.to_string(),
            mode: None,
            ext: None,
            min_size: None,
            max_size: None,
            offset,
            limit,
        }
    }

    #[test]
    fn control_characters_and_deep_pages_are_refused() {
        for q in ["a\0b", "\0", "a\nb", "tab\there", "\u{7f}x"] {
            let err = SearchQuery::from_params(params(q, None, None)).unwrap_err();
            assert_eq!(err.code(), "invalid_query", "{q:?}");
        }
        assert!(SearchQuery::from_params(params("a", Some(500), Some(500))).is_ok());
        let err = SearchQuery::from_params(params("a", Some(996), Some(5))).unwrap_err();
        assert!(err.to_string().contains("narrow the search"), "{err}");
        assert!(SearchQuery::from_params(params("a", Some(u32::MAX), Some(500))).is_err());
    }

    fn with_mode(q: &str, mode: SearchMode, offset: u32) -> SearchQuery {
        SearchQuery::from_params(SearchParams {
            mode: Some(mode),
            ..params(q, Some(offset), Some(7))
        })
        .unwrap()
    }

    #[test]
    fn only_exact_names_and_ids_on_short_pages_run_without_a_hand_off() {
        let page = |mode, limit| {
            SearchQuery::from_params(SearchParams {
                mode: Some(mode),
                ..params(&"a".repeat(64), None, limit)
            })
            .unwrap()
            .is_quick()
        };
        assert!(page(SearchMode::Exact, None));
        assert!(page(SearchMode::Id, Some(50)));
        assert!(!page(SearchMode::Exact, Some(51)));
        assert!(!page(SearchMode::Words, None));
        assert!(!page(SearchMode::Substring, Some(1)));
    }

    #[tokio::test]
    async fn the_json_written_from_the_catalogue_is_the_typed_results_json() {
        let folder = tempfile::tempdir().unwrap();
        let catalogue = Catalogue::open(folder.path(), 10_000).unwrap();
        let file = |n: u32, name: &str| FileRow {
            file_id: format!("{n:064x}"),
            name: name.to_string(),
            size: 1000 + i64::from(n),
            ext: "mp4".into(),
        };
        let mut last = catalogue::Pending::none();
        // Eight peers (fewer than a page lists, so no sources are sampled),
        // each with shared and own files, one under a second name, and
        // names with quotes and non-ASCII to escape.
        for p in 0..8u32 {
            let mut files: Vec<FileRow> = (0..20)
                .map(|n| file(n, &format!("lecture {n} \"intro\" ü.mp4")))
                .collect();
            files.push(file(100 + p, &format!("lecture solo {p}.mp4")));
            files.push(file(3, "other name for three.mp4"));
            let peer = OnlinePeer {
                peer_id: format!("12D3KooPeer{p}"),
                user: format!("user{}", p % 3),
                addrs: vec![format!("/ip4/10.0.0.{p}/tcp/4001"), "/ip6/::1/tcp/1".into()],
                last_seen: 1,
            };
            last = catalogue.join(peer, &files);
        }
        searchable(last).await.unwrap();
        let queries = [
            with_mode("lecture", SearchMode::Words, 0),
            with_mode("lecture", SearchMode::Words, 5),
            with_mode("solo", SearchMode::Words, 0),
            with_mode("intro\" ü", SearchMode::Substring, 0),
            with_mode("other name for three.mp4", SearchMode::Exact, 0),
            with_mode(&format!("{:064x}", 3), SearchMode::Id, 0),
            with_mode(&format!("{:064x}", 999), SearchMode::Id, 0),
            with_mode("nothing like it", SearchMode::Words, 0),
        ];
        for query in &queries {
            let typed = serde_json::to_value(find(&catalogue, query).unwrap()).unwrap();
            let written: serde_json::Value =
                serde_json::from_slice(&find_json(&catalogue, query).unwrap()).unwrap();
            assert_eq!(written, typed, "{query:?}");
        }
        // The comparison saw real pages: sources, names and totals.
        let page = find(&catalogue, &queries[0]).unwrap();
        assert_eq!(page.results.len(), 7);
        assert!(page.results.iter().all(|h| h.sources.len() == 8));
        let three = find(&catalogue, &queries[5]).unwrap();
        assert_eq!(three.total, 1);
        assert_eq!(three.results[0].names.len(), 2);
        catalogue.close();
    }
}
