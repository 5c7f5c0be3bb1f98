//! Search by file name: exact (equality), substring (an FTS5 trigram index
//! for three or more characters, LIKE with every metacharacter escaped for
//! shorter text) and all-words (FTS5, each word quoted as a phrase),
//! filtered by extension and size, paginated by name. Each result is one
//! file id with its names, its size and every ONLINE peer holding it.
//!
//! A search holds one read connection, and waits for places under its
//! user's, its address's and the shared gates ([`SearchSlot`]). Pages end
//! within the first [`MAX_DEPTH`] results (deeper ones are refused with 400:
//! narrow the search instead). Broad searches do not count or sort
//! every match: matching rows are streamed in name order and reading stops
//! once the page and [`COUNT_LIMIT`] distinct files are found (the response
//! then says `total_is_lower_bound`); when the matches are many, the names
//! are walked in index order instead of sorting the matches.
//!
//! All search SQL lives here, behind [`find`], and it is SQLite's: on an
//! index whose store is PostgreSQL, [`find`] finds nothing. The query text is always bound as a
//! parameter and never becomes SQL or FTS syntax, and control characters
//! (NUL among them; no file name has any) are refused with 400, so no input
//! can cause a server error.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::Json;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{Action, AuditEvent};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, ClientAddr};
use crate::gate::SearchSlot;
use crate::state::AppState;
use crate::store::{now_ms, Db, Store};
use crate::validate;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Results per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most results per page.
pub const MAX_LIMIT: u32 = 500;
/// Distinct files counted for `total` (at least a page's end); past it
/// `total_is_lower_bound` is set instead of counting on.
pub const COUNT_LIMIT: i64 = 1000;
/// Substrings this long or longer are looked up in the trigram index.
pub const MIN_TRIGRAM_CHARS: usize = 3;
/// The furthest a page may reach (`offset + limit`): paging deeper would
/// read every earlier match for each page.
pub const MAX_DEPTH: i64 = COUNT_LIMIT;
/// Matches below which a word or substring search always sorts its matches.
const BROAD_MATCHES_MIN: i64 = 2000;

/// How the query text is matched against file names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// The whole name equals the query (case-sensitive).
    Exact,
    /// The name contains the query (case-insensitive).
    Substring,
    /// The name contains every word of the query (case- and accent-insensitive).
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
    /// Every online peer holding it.
    pub sources: Vec<Source>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    /// Matching file ids in all pages, counted up to 1000 or the end of this
    /// page, whichever is more; see `total_is_lower_bound`.
    pub total: i64,
    /// True when more files match than `total` says (counting stopped there);
    /// pages reach at most 1000 results, so narrow the search to see others.
    pub total_is_lower_bound: bool,
    /// Results skipped.
    pub offset: i64,
    /// This page, ordered by name.
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

/// Escapes `\`, `%` and `_` for a LIKE pattern with `ESCAPE '\'`.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Turns free text into an FTS5 query that matches names containing every
/// word: each whitespace-separated piece with a letter or digit becomes a
/// quoted phrase (inner quotes doubled), so no operator is ever interpreted.
/// `None` when nothing searchable is left.
pub fn fts_query(text: &str) -> Option<String> {
    let phrases: Vec<String> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" AND "))
}

/// How the matching rows are found, chosen per query by [`choose_plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Start from the index that matches (name equality, FTS5 word or
    /// trigram index) and sort the matches by name: best when they are few.
    Matches,
    /// Walk the names in order and keep the matching ones until enough
    /// distinct files are found: best when matches are many (or when no
    /// index can narrow them, as for one- and two-character substrings).
    NameOrder,
}

/// The FTS5 index and query a word or substring search reads, if any.
fn fts_match(query: &SearchQuery) -> Option<(&'static str, String)> {
    match query.mode {
        SearchMode::Exact | SearchMode::Id => None,
        SearchMode::Words => fts_query(&query.text).map(|q| ("files_words", q)),
        SearchMode::Substring => trigram_query(&query.text).map(|q| ("files_trigrams", q)),
    }
}

/// Turns a substring of at least [`MIN_TRIGRAM_CHARS`] characters into an
/// FTS5 phrase for the trigram index (the whole text quoted, inner quotes
/// doubled, so it is never syntax); `None` for shorter text.
pub fn trigram_query(text: &str) -> Option<String> {
    (text.chars().count() >= MIN_TRIGRAM_CHARS)
        .then(|| format!("\"{}\"", text.replace('"', "\"\"")))
}

/// Picks the plan: walking names in order pays off once the matches are so
/// many that sorting them all costs more than reading names until a page and
/// the count limit are filled (about when matches² > 2000 × rows). Filters
/// (extension, size) thin the matches out unpredictably, so with filters the
/// matches are always sorted.
async fn choose_plan(
    conn: &mut SqliteConnection,
    query: &SearchQuery,
    fts: Option<&(&'static str, String)>,
) -> Result<Plan, sqlx::Error> {
    let filtered = query.ext.is_some() || query.min_size.is_some() || query.max_size.is_some();
    let Some((table, text)) = fts else {
        // Exact names use their index; short substrings cannot use any.
        return Ok(match query.mode {
            SearchMode::Substring if !filtered => Plan::NameOrder,
            _ => Plan::Matches,
        });
    };
    if filtered {
        return Ok(Plan::Matches);
    }
    let rows: i64 = sqlx::query("SELECT COALESCE(MAX(row_id), 0) FROM files")
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    let threshold = ((2000.0 * rows as f64).sqrt() as i64).max(BROAD_MATCHES_MIN);
    let sql =
        format!("SELECT COUNT(*) FROM (SELECT rowid FROM {table} WHERE {table} MATCH ? LIMIT ?)");
    let matches: i64 = sqlx::query(&sql)
        .bind(text.as_str())
        .bind(threshold)
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    Ok(if matches >= threshold {
        Plan::NameOrder
    } else {
        Plan::Matches
    })
}

/// Appends `FROM … WHERE …` selecting matching file rows of online peers.
fn push_matches<'a>(
    q: &mut QueryBuilder<'a, Db>,
    query: &'a SearchQuery,
    fts: Option<(&'static str, String)>,
    plan: Plan,
    cutoff: i64,
) {
    q.push(" FROM files f ");
    if plan == Plan::NameOrder {
        q.push("INDEXED BY files_name ");
    }
    q.push("JOIN peers p ON p.peer_id = f.peer_id WHERE p.left_at IS NULL AND p.last_seen >= ")
        .push_bind(cutoff);
    match (query.mode, fts) {
        (SearchMode::Exact, _) => {
            q.push(" AND f.name = ").push_bind(query.text.as_str());
        }
        (SearchMode::Id, _) => {
            q.push(" AND f.file_id = ").push_bind(query.text.as_str());
        }
        (_, Some((table, text))) => {
            q.push(format_args!(
                " AND f.row_id IN (SELECT rowid FROM {table} WHERE {table} MATCH "
            ))
            .push_bind(text)
            .push(")");
        }
        (_, None) => {
            q.push(" AND f.name LIKE ")
                .push_bind(format!("%{}%", like_escape(&query.text)))
                .push(" ESCAPE '\\'");
        }
    }
    if let Some(ext) = &query.ext {
        q.push(" AND f.ext = ").push_bind(ext.as_str());
    }
    if let Some(min) = query.min_size {
        q.push(" AND f.size >= ").push_bind(min);
    }
    if let Some(max) = query.max_size {
        q.push(" AND f.size <= ").push_bind(max);
    }
}

/// Runs a search over peers seen at or after `cutoff` (ms), on one read
/// connection: matching rows are read in name order only until the page and
/// [`COUNT_LIMIT`] distinct files are found, then the page's sources.
pub async fn find(
    store: &Store,
    query: &SearchQuery,
    cutoff: i64,
) -> Result<SearchResults, sqlx::Error> {
    let mut results = SearchResults {
        total: 0,
        total_is_lower_bound: false,
        offset: query.offset,
        results: Vec::new(),
    };
    let fts = fts_match(query);
    if query.mode == SearchMode::Words && fts.is_none() {
        return Ok(results);
    }
    // The SQL below is SQLite's; on PostgreSQL search finds nothing until
    // search moves out of the database.
    let Some(reader) = store.sqlite_reader() else {
        return Ok(results);
    };
    let mut conn = reader.acquire().await?;
    let plan = choose_plan(&mut conn, query, fts.as_ref()).await?;

    // Distinct ids in order of their first (smallest) matching name: the
    // order of `GROUP BY file_id ORDER BY MIN(name), file_id`, streamed.
    let enough = usize::try_from(COUNT_LIMIT.max(query.offset + query.limit)).unwrap_or(usize::MAX);
    let mut ids: Vec<String> = Vec::new();
    {
        let mut matching: QueryBuilder<Db> = QueryBuilder::new("SELECT f.file_id");
        push_matches(&mut matching, query, fts, plan, cutoff);
        matching.push(" ORDER BY f.name, f.file_id");
        let mut seen = HashSet::new();
        let mut rows = matching.build().fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let id: String = row.get(0);
            if seen.insert(id.clone()) {
                ids.push(id);
                if ids.len() > enough {
                    break;
                }
            }
        }
    }
    results.total_is_lower_bound = ids.len() > enough;
    ids.truncate(enough);
    results.total = ids.len() as i64;
    let start = usize::try_from(query.offset)
        .unwrap_or(usize::MAX)
        .min(ids.len());
    let end = start
        .saturating_add(usize::try_from(query.limit).unwrap_or(usize::MAX))
        .min(ids.len());
    let ids = &ids[start..end];
    if ids.is_empty() {
        return Ok(results);
    }

    let mut details: QueryBuilder<Db> = QueryBuilder::new(
        "SELECT f.file_id, f.name, f.size, u.name, p.peer_id, p.addrs \
         FROM files f JOIN peers p ON p.peer_id = f.peer_id JOIN users u ON u.id = p.user_id \
         WHERE p.left_at IS NULL AND p.last_seen >= ",
    );
    details.push_bind(cutoff).push(" AND f.file_id IN (");
    let mut list = details.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    details.push(") ORDER BY u.name, p.peer_id, f.name");
    let rows = details.build().fetch_all(&mut *conn).await?;
    drop(conn);

    let mut hits: HashMap<String, SearchHit> = HashMap::with_capacity(ids.len());
    for r in rows {
        let id: String = r.get(0);
        let hit = hits.entry(id.clone()).or_insert_with(|| SearchHit {
            id,
            names: Vec::new(),
            size: r.get(2),
            sources: Vec::new(),
        });
        let name: String = r.get(1);
        if !hit.names.contains(&name) {
            hit.names.push(name);
        }
        let peer_id: String = r.get(4);
        if !hit.sources.iter().any(|s| s.peer_id == peer_id) {
            let addrs: String = r.get(5);
            hit.sources.push(Source {
                user: r.get(3),
                peer_id,
                addrs: serde_json::from_str(&addrs).unwrap_or_default(),
            });
        }
    }
    results.results = ids
        .iter()
        .filter_map(|id| hits.remove(id))
        .map(|mut hit| {
            hit.names.sort();
            hit
        })
        .collect();
    Ok(results)
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
) -> Result<Json<SearchResults>, ApiError> {
    let _slot = SearchSlot::enter(&state, &user.name, client.0).await?;
    let event = AuditEvent::new(Action::Search, client)
        .user(&user.name)
        .detail(&params.q);
    let result = async {
        let query = SearchQuery::from_params(params)?;
        let cutoff = state.online_cutoff(now_ms());
        Ok(Json(find(state.store(), &query, cutoff).await?))
    }
    .await;
    state.audit().record_later(event.outcome(&result)).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_escape(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn fts_queries_are_quoted_phrases() {
        assert_eq!(fts_query("aula 1").unwrap(), "\"aula\" AND \"1\"");
        assert_eq!(fts_query("a\"b OR").unwrap(), "\"a\"\"b\" AND \"OR\"");
        assert_eq!(fts_query("% _ ' \" *"), None);
        assert_eq!(fts_query("   "), None);
    }

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
}
