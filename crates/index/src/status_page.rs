//! The index's public status: a small self-contained HTML page at `/` and
//! the same figures as JSON at `GET /api/v1/stats` (users and peers online,
//! files listed, uptime, version), plus the [`StatusBoard`] that counts them
//! at most every few seconds and shares one count among all requests.
//!
//! It shows aggregate numbers and fixed text only: it must never put a user
//! name, peer id, address, file name or any other client-supplied text (not
//! even the `Host` header) on the page, never load anything from elsewhere or
//! run script (its Content-Security-Policy allows only its own inline style,
//! by hash), and never let requests start more than one count at a time: a
//! flood of `GET /` is answered from the last count.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::search::catalogue::Catalogue;
use crate::store::{now_ms, OnlineCounts};

/// Counts are reused for at least this long.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// The index's version, as built.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the index serves its OpenAPI document.
const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the index serves these figures as JSON.
const STATS_PATH: &str = "/api/v1/stats";

/// The public figures of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IndexStatus {
    /// Users with at least one peer online.
    pub users_online: i64,
    /// Peers online (joined, not left, heartbeat within the peer timeout).
    pub peers_online: i64,
    /// Distinct files (by BLAKE3 id) shared by online peers.
    pub files_listed: i64,
    /// File entries of online peers: a file shared by two peers, or under two names, counts twice.
    pub listings: i64,
    /// When the figures above were counted, in milliseconds since the Unix epoch; they are
    /// recounted at most every 5 seconds (less often on a large index).
    pub counted_at: i64,
    /// Seconds since the index started.
    pub uptime_secs: u64,
    /// The index's version.
    pub version: String,
}

/// Reads the figures from the online catalogue, at most every
/// [`MIN_REFRESH`], and keeps the last reading.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Board>,
}

struct Board {
    catalogue: Arc<Catalogue>,
    started: Instant,
    min_refresh: Duration,
    latest: Mutex<Option<Counted>>,
}

/// One reading.
#[derive(Clone, Copy, Debug)]
struct Counted {
    counts: OnlineCounts,
    at_ms: i64,
    /// Not read again before this.
    next: Instant,
}

impl StatusBoard {
    /// A board reading `catalogue`; uptime starts now.
    pub fn new(catalogue: Arc<Catalogue>) -> Self {
        Self::with_refresh(catalogue, MIN_REFRESH)
    }

    fn with_refresh(catalogue: Arc<Catalogue>, min_refresh: Duration) -> Self {
        Self {
            inner: Arc::new(Board {
                catalogue,
                started: Instant::now(),
                min_refresh,
                latest: Mutex::new(None),
            }),
        }
    }

    /// The current figures: the last reading while it is fresh.
    pub fn status(&self) -> IndexStatus {
        let mut latest = self
            .inner
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counted = match *latest {
            Some(last) if Instant::now() < last.next => last,
            _ => {
                let counted = Counted {
                    counts: self.inner.catalogue.counts(),
                    at_ms: now_ms(),
                    next: Instant::now() + self.inner.min_refresh,
                };
                *latest = Some(counted);
                counted
            }
        };
        self.figures(counted)
    }

    fn figures(&self, counted: Counted) -> IndexStatus {
        IndexStatus {
            users_online: counted.counts.users,
            peers_online: counted.counts.peers,
            files_listed: counted.counts.files,
            listings: counted.counts.listings,
            counted_at: counted.at_ms,
            uptime_secs: self.inner.started.elapsed().as_secs(),
            version: VERSION.to_string(),
        }
    }
}

/// Public figures about the index: users and peers online, files listed, uptime, version.
#[utoipa::path(get, path = "/stats", tag = "status",
    responses(
        (status = 200, description = "The figures, counted at most every 5 seconds", body = IndexStatus),
        (status = 500, description = "They could not be counted", body = ErrorBody),
    ))]
pub async fn stats(State(board): State<StatusBoard>) -> Result<Json<IndexStatus>, ApiError> {
    Ok(Json(board.status()))
}

/// The status page at `/`: the figures as a small self-contained HTML page.
pub async fn page(State(board): State<StatusBoard>) -> Result<Response, ApiError> {
    let status = board.status();
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CONTENT_SECURITY_POLICY, CSP.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    Ok((headers, render(&status)).into_response())
}

/// The page's only style, allowed by its hash in the Content-Security-Policy.
const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#fff;--fg:#1c1d21;--muted:#5b5f68;--line:#d9dbe0;--card:#f6f7f9;--link:#0b57d0}
@media (prefers-color-scheme:dark){:root{--bg:#121317;--fg:#e7e8eb;--muted:#a4a8b1;--line:#33363e;--card:#1b1d22;--link:#8ab4f8}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}
main,footer{max-width:42rem;margin:0 auto;padding:1.25rem 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}
h2{font-size:1.1rem;margin:1.75rem 0 .5rem}
p{margin:.25rem 0}
dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5rem,1fr));gap:.75rem;margin:1rem 0 0}
dl div{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem 1rem}
dt{color:var(--muted);font-size:.875rem}
dd{margin:0;font-size:1.4rem;font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
a{color:var(--link)}
ul{padding-left:1.25rem}
.note,footer{color:var(--muted);font-size:.875rem}
.note{margin-top:.75rem}
";

/// The Content-Security-Policy of the page: nothing but its own style.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let style = match sha256(STYLE.as_bytes()) {
        Some(digest) => format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ),
        None => "'unsafe-inline'".to_string(),
    };
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src {style}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// SHA-256 of `data` through the TLS library's provider (no hashing crate of our own).
fn sha256(data: &[u8]) -> Option<Vec<u8>> {
    use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
    use rustls::crypto::hash::HashAlgorithm;
    let hash = TLS13_AES_128_GCM_SHA256.tls13()?.common.hash_provider;
    (hash.algorithm() == HashAlgorithm::SHA256).then(|| hash.hash(data).as_ref().to_vec())
}

/// The page for `status`; every dynamic part is a number or the built-in version.
pub fn render(status: &IndexStatus) -> String {
    let rows = [
        ("users-online", "Users online", grouped(status.users_online)),
        ("peers-online", "Peers online", grouped(status.peers_online)),
        ("files-listed", "Files listed", grouped(status.files_listed)),
        ("listings", "Listings", grouped(status.listings)),
        ("uptime", "Uptime", human_duration(status.uptime_secs)),
        ("version", "Version", VERSION.to_string()),
    ];
    let mut figures = String::new();
    for (id, label, value) in rows {
        let _ = writeln!(
            figures,
            "<div><dt>{label}</dt><dd id=\"{id}\">{value}</dd></div>"
        );
    }
    format!(
        "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<meta name=\"color-scheme\" content=\"light dark\">
<meta name=\"referrer\" content=\"no-referrer\">
<title>peershare index: status</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>peershare index</h1>
<p>This index is up. Peers join it to share files, search by name and find each other.</p>
<h2>Right now</h2>
<dl>
{figures}</dl>
<p class=\"note\">Users online have at least one peer online. Files listed are distinct files (by content id) shared by online peers; listings count every entry, so a file on two peers counts twice. The figures are recounted at most every {refresh} seconds (less often on a very large index), so they may be a little old.</p>
<h2>API</h2>
<ul>
<li><a href=\"{OPENAPI_PATH}\">OpenAPI document</a>: the REST API reference (paths, parameters, answers)</li>
<li><a href=\"{STATS_PATH}\">These figures as JSON</a></li>
</ul>
</main>
<footer>peershare-index {VERSION}</footer>
</body>
</html>
",
        refresh = MIN_REFRESH.as_secs(),
    )
}

/// `n` with thousands separated by commas, e.g. `1,234,567`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration for people, to the two largest units: `45 s`, `12 min`, `3 h 12 min`, `2 d 5 h`.
fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(60), "1 min");
        assert_eq!(human_duration(3599), "59 min");
        assert_eq!(human_duration(3 * 3600 + 12 * 60 + 5), "3 h 12 min");
        assert_eq!(human_duration(2 * 86_400 + 5 * 3600 + 59), "2 d 5 h");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-12_345), "-12,345");
    }

    #[test]
    fn the_policy_allows_exactly_the_style_by_its_sha256() {
        // SHA-256("abc"), FIPS 180-2.
        assert_eq!(
            hex::encode(sha256(b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let csp = CSP.to_str().unwrap();
        let digest =
            base64::engine::general_purpose::STANDARD.encode(sha256(STYLE.as_bytes()).unwrap());
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(
            csp.contains(&format!("style-src 'sha256-{digest}';")),
            "{csp}"
        );
        assert!(!csp.contains("unsafe") && !csp.contains("script"), "{csp}");
        let page = render(&sample());
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
        assert_eq!(page.matches("<style").count(), 1);
        assert!(!page.contains("<script") && !page.contains("style=\""));
    }

    fn sample() -> IndexStatus {
        IndexStatus {
            users_online: 1234,
            peers_online: 2,
            files_listed: 3,
            listings: 4,
            counted_at: 0,
            uptime_secs: 3 * 3600 + 12 * 60,
            version: VERSION.to_string(),
        }
    }

    #[test]
    fn the_page_labels_every_figure() {
        let page = render(&sample());
        for needle in [
            "<html lang=\"en\">",
            "<meta name=\"viewport\"",
            "<title>",
            "<h1>",
            "<dt>Users online</dt><dd id=\"users-online\">1,234</dd>",
            "<dd id=\"peers-online\">2</dd>",
            "<dd id=\"files-listed\">3</dd>",
            "<dd id=\"listings\">4</dd>",
            "<dd id=\"uptime\">3 h 12 min</dd>",
            "prefers-color-scheme:dark",
            "href=\"/api/v1/openapi.json\"",
        ] {
            assert!(page.contains(needle), "{needle} missing from {page}");
        }
    }
}
