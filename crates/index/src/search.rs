//! Search by file name: exact (equality), substring (LIKE with every
//! metacharacter escaped) and all-words (SQLite FTS5, each word quoted as a
//! phrase), filtered by extension and size, paginated by file id. Each result
//! is one file id with its names, its size and every ONLINE peer holding it.
//!
//! All search SQL lives here, behind [`find`]; a PostgreSQL store would swap
//! only this module's word matching (FTS5 → tsvector). The query text is
//! always bound as a parameter and never becomes SQL or FTS syntax, so no
//! input can cause a server error.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use crate::api::{ApiQuery, AppState, ClientAddr};
use crate::audit::{Action, AuditEvent};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::store::{now_ms, Db, Store};
use crate::validate;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Results per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most results per page.
pub const MAX_LIMIT: u32 = 500;

/// How the query text is matched against file names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// The whole name equals the query (case-sensitive).
    Exact,
    /// The name contains the query (ASCII case-insensitive).
    Substring,
    /// The name contains every word of the query (case- and accent-insensitive).
    #[default]
    Words,
}

/// Search parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text to look for (1–256 characters).
    pub q: String,
    /// `words` (default), `substring` or `exact`.
    pub mode: Option<SearchMode>,
    /// Only names with this extension (`mp4` or `.mp4`).
    pub ext: Option<String>,
    /// Only files of at least this many bytes.
    pub min_size: Option<u64>,
    /// Only files of at most this many bytes.
    pub max_size: Option<u64>,
    /// Results to skip (default 0).
    pub offset: Option<u32>,
    /// Results per page (1–500, default 50).
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
    /// Matching file ids in all pages.
    pub total: i64,
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
        Ok(Self {
            text: p.q,
            mode: p.mode.unwrap_or_default(),
            ext: p
                .ext
                .as_deref()
                .map(validate::extension_filter)
                .transpose()?,
            min_size,
            max_size,
            offset: i64::from(p.offset.unwrap_or(0)),
            limit: validate::limit(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
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

/// Appends `FROM … WHERE …` selecting matching file rows of online peers.
fn push_matches<'a>(
    q: &mut QueryBuilder<'a, Db>,
    query: &'a SearchQuery,
    fts: Option<String>,
    cutoff: i64,
) {
    q.push(" FROM files f JOIN peers p ON p.peer_id = f.peer_id WHERE p.left_at IS NULL AND p.last_seen >= ")
        .push_bind(cutoff);
    match query.mode {
        SearchMode::Exact => {
            q.push(" AND f.name = ").push_bind(query.text.as_str());
        }
        SearchMode::Substring => {
            q.push(" AND f.name LIKE ")
                .push_bind(format!("%{}%", like_escape(&query.text)))
                .push(" ESCAPE '\\'");
        }
        SearchMode::Words => {
            q.push(" AND f.row_id IN (SELECT rowid FROM files_words WHERE files_words MATCH ")
                .push_bind(fts.unwrap_or_default())
                .push(")");
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

/// Runs a search over peers seen at or after `cutoff` (ms).
pub async fn find(
    store: &Store,
    query: &SearchQuery,
    cutoff: i64,
) -> Result<SearchResults, sqlx::Error> {
    let empty = SearchResults {
        total: 0,
        offset: query.offset,
        results: Vec::new(),
    };
    let fts = match query.mode {
        SearchMode::Words => match fts_query(&query.text) {
            Some(f) => Some(f),
            None => return Ok(empty),
        },
        _ => None,
    };
    let pool = store.reader();

    let mut count: QueryBuilder<Db> = QueryBuilder::new("SELECT COUNT(DISTINCT f.file_id)");
    push_matches(&mut count, query, fts.clone(), cutoff);
    let total: i64 = count.build().fetch_one(pool).await?.get(0);
    if total == 0 {
        return Ok(SearchResults { total, ..empty });
    }

    let mut page: QueryBuilder<Db> =
        QueryBuilder::new("SELECT f.file_id, MIN(f.name) AS first_name");
    push_matches(&mut page, query, fts, cutoff);
    page.push(" GROUP BY f.file_id ORDER BY first_name, f.file_id LIMIT ")
        .push_bind(query.limit)
        .push(" OFFSET ")
        .push_bind(query.offset);
    let ids: Vec<String> = page
        .build()
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Ok(SearchResults { total, ..empty });
    }

    let mut details: QueryBuilder<Db> = QueryBuilder::new(
        "SELECT f.file_id, f.name, f.size, u.name, p.peer_id, p.addrs \
         FROM files f JOIN peers p ON p.peer_id = f.peer_id JOIN users u ON u.id = p.user_id \
         WHERE p.left_at IS NULL AND p.last_seen >= ",
    );
    details.push_bind(cutoff).push(" AND f.file_id IN (");
    let mut list = details.separated(", ");
    for id in &ids {
        list.push_bind(id.as_str());
    }
    details.push(") ORDER BY u.name, p.peer_id, f.name");
    let rows = details.build().fetch_all(pool).await?;

    let mut hits: BTreeMap<String, SearchHit> = BTreeMap::new();
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
    let results = ids
        .into_iter()
        .filter_map(|id| hits.remove(&id))
        .map(|mut hit| {
            hit.names.sort();
            hit
        })
        .collect();
    Ok(SearchResults {
        total,
        offset: query.offset,
        results,
    })
}

/// Search shared files by name.
#[utoipa::path(get, path = "/search", tag = "search", params(SearchParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One entry per file id, with every online peer holding it", body = SearchResults),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
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
}
