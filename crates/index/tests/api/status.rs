//! The public status page at `/` and its figures at `/api/v1/stats`: right
//! counts of online users, peers and files, strict security headers, no
//! private or user-supplied text, one shared count for a flood of requests.

use std::collections::HashSet;
use std::time::Duration;

use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{eventually, file, Index};
use crate::tls::start_https;

/// A user name that must never show up on the page, escaped or not.
const HOSTILE_NAME: &str = "<script>alert(\"zaphod\")</script> & co";
/// A file name that must never show up on the page either.
const HOSTILE_FILE: &str = "<img src=x onerror=alert(1)>.txt";

/// The index's root URL (without `/api/v1`).
fn root(ix: &Index) -> String {
    ix.base.strip_suffix("/api/v1").unwrap().to_string()
}

async fn page(ix: &Index) -> (reqwest::header::HeaderMap, String) {
    let resp = ix.http.get(format!("{}/", root(ix))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    (headers, resp.text().await.unwrap())
}

async fn stats(ix: &Index) -> Value {
    let (status, body) = ix.call(Method::GET, "/stats", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn figures(v: &Value) -> [i64; 4] {
    ["users_online", "peers_online", "files_listed", "listings"].map(|k| {
        v[k].as_i64()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
    })
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The page's security headers and semantics.
fn assert_page_shape(headers: &reqwest::header::HeaderMap, html: &str) {
    assert_eq!(header(headers, "content-type"), "text/html; charset=utf-8");
    let csp = header(headers, "content-security-policy");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    assert!(
        !csp.contains("unsafe") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "x-frame-options"), "DENY");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
    for needle in [
        "<!DOCTYPE html>",
        "<html lang=\"en\">",
        "<meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>peershare index: status</title>",
        "<h1>",
        "<dl>",
        "<dt>Users online</dt>",
        "<dt>Files listed</dt>",
        "<dt>Uptime</dt>",
        "prefers-color-scheme:dark",
        "<a href=\"/api/v1/openapi.json\">",
        "<a href=\"/api/v1/stats\">",
    ] {
        assert!(
            html.contains(needle),
            "{needle} missing from the page:\n{html}"
        );
    }
    // Self-contained: nothing fetched from elsewhere, no script.
    for banned in [
        "<script", "src=", "http://", "https://", "<link", "@import", "url(",
    ] {
        assert!(!html.contains(banned), "{banned} in the page:\n{html}");
    }
    assert!(html.contains(&format!(
        "<dt>Version</dt><dd id=\"version\">{}</dd>",
        env!("CARGO_PKG_VERSION")
    )));
}

#[tokio::test]
async fn status_page_counts_online_users_and_files_and_shows_nothing_private() {
    // Before anyone joins: all zero, and no login is needed.
    let mut empty = Index::start().await;
    assert_eq!(figures(&stats(&empty).await), [0, 0, 0, 0]);
    empty.running.take().unwrap().stop().await;

    // A fresh index, so the first count below sees everyone.
    let ix = Index::start().await;
    let hostile = ix.user(HOSTILE_NAME).await;
    let (p1, p2) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let p1_id = ix
        .join(&hostile, &p1, json!([file("a.txt", 10), file("b.txt", 20)]))
        .await;
    // The same b.txt again (one file, two listings) and a file with a hostile name.
    ix.join(
        &hostile,
        &p2,
        json!([file("b.txt", 20), file(HOSTILE_FILE, 30)]),
    )
    .await;
    let dave = ix.user("dave-the-sharer").await;
    ix.join(
        &dave,
        &Keypair::generate_ed25519(),
        json!([file("a.txt", 10)]),
    )
    .await;
    // Bob's peer left: neither he nor his file counts.
    let bob = ix.user("bob-who-left").await;
    let bob_peer = ix
        .join(
            &bob,
            &Keypair::generate_ed25519(),
            json!([file("c.txt", 40)]),
        )
        .await;
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{bob_peer}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Carol never joined a peer.
    ix.user("carol-no-peers").await;

    let (headers, html) = page(&ix).await;
    assert_page_shape(&headers, &html);
    for (id, value) in [
        ("users-online", "2"),
        ("peers-online", "3"),
        ("files-listed", "3"),
        ("listings", "5"),
    ] {
        let want = format!("<dd id=\"{id}\">{value}</dd>");
        assert!(
            html.contains(&want),
            "{want} missing from the page:\n{html}"
        );
    }
    // No user names, peer ids, addresses or file names; and nothing escaped,
    // because nothing a client sent is on the page at all.
    for private in [
        "zaphod",
        "alert",
        "onerror",
        "<img",
        "dave",
        "bob",
        "carol",
        p1_id.as_str(),
        bob_peer.as_str(),
        "127.0.0.1",
        "4100",
        "a.txt",
        "c.txt",
        "&lt;",
        "&quot;",
        "&amp;",
    ] {
        assert!(
            !html.contains(private),
            "{private:?} is on the page:\n{html}"
        );
    }
    assert!(
        !html.contains('&'),
        "an escaped entity is on the page:\n{html}"
    );

    // The same figures as JSON, no login needed, documented in the OpenAPI document.
    let json = stats(&ix).await;
    assert_eq!(figures(&json), [2, 3, 3, 5], "{json}");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["uptime_secs"].as_u64().unwrap() < 600, "{json}");
    assert!(json["counted_at"].as_i64().unwrap() > 0, "{json}");
    let text = json.to_string();
    assert!(!text.contains("zaphod") && !text.contains("dave"), "{text}");
    let (status, doc) = ix.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/stats"]["get"].is_object());

    // A flood is answered from one shared count (a recount may land in the
    // middle, so at most two), and figures counted together stay together.
    let first = json["counted_at"].as_i64().unwrap();
    let eve = ix.user("eve").await;
    ix.join(
        &eve,
        &Keypair::generate_ed25519(),
        json!([file("e.txt", 1)]),
    )
    .await;
    let flood = futures::future::join_all((0..100).map(|_| stats(&ix))).await;
    let counts: HashSet<i64> = flood
        .iter()
        .map(|s| s["counted_at"].as_i64().unwrap())
        .collect();
    assert!(counts.len() <= 2, "{} counts for one flood", counts.len());
    for s in &flood {
        if s["counted_at"] == first {
            assert_eq!(figures(s), [2, 3, 3, 5], "{s}");
        }
    }
    // Within a few refresh intervals the new peer shows.
    let recounted = eventually(Duration::from_secs(20), || async {
        figures(&stats(&ix).await) == [3, 4, 4, 6]
    })
    .await;
    assert!(recounted, "never recounted: {}", stats(&ix).await);
    let (_, html) = page(&ix).await;
    assert!(html.contains("<dd id=\"users-online\">3</dd>"), "{html}");
}

#[tokio::test]
async fn status_page_is_served_over_https_too() {
    let (ix, _certs) = start_https().await;
    assert!(ix.base.starts_with("https://"), "{}", ix.base);
    let token = ix.user("alice").await;
    ix.join(
        &token,
        &Keypair::generate_ed25519(),
        json!([file("x.bin", 5)]),
    )
    .await;
    let (headers, html) = page(&ix).await;
    assert_page_shape(&headers, &html);
    assert!(html.contains("<dd id=\"users-online\">1</dd>"), "{html}");
    assert!(html.contains("<dd id=\"files-listed\">1</dd>"), "{html}");
    assert!(!html.contains("alice"), "{html}");
    assert_eq!(figures(&stats(&ix).await), [1, 1, 1, 1]);
}
