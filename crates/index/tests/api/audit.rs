use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{file, id_of, Index, PASSWORD};

fn find<'a>(entries: &'a [Value], action: &str, user: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["action"] == action && e["user"] == user)
        .collect()
}

#[tokio::test]
async fn admins_read_every_operation() {
    let ix = Index::start().await;
    let root = ix.user("root").await;
    let alice = ix.user("alice").await;
    assert_eq!(ix.login("alice", "wrong").await.0, StatusCode::UNAUTHORIZED);
    let key = Keypair::generate_ed25519();
    let peer = ix.join(&alice, &key, json!([file("x.txt", 1)])).await;
    let files = format!("/peers/{peer}/files");
    ix.call(
        Method::POST,
        &files,
        Some(&alice),
        Some(json!({"files": [file("y.txt", 1)]})),
    )
    .await;
    ix.call(
        Method::POST,
        &files,
        Some(&alice),
        Some(json!({"files": [file("z.txt", 1)], "reason": "download"})),
    )
    .await;
    ix.call(
        Method::DELETE,
        &format!("{files}/{}", id_of("x.txt")),
        Some(&alice),
        None,
    )
    .await;
    ix.search(&alice, "q=needle").await;
    let mallory = ix.user("mallory").await;
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("{files}/{}", id_of("y.txt")),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    ix.call(
        Method::DELETE,
        &format!("/peers/{peer}"),
        Some(&alice),
        None,
    )
    .await;
    ix.call(Method::DELETE, "/sessions/current", Some(&mallory), None)
        .await;
    let (_, s) = ix.login("alice", PASSWORD).await;
    ix.call(
        Method::DELETE,
        "/users/me",
        Some(s["token"].as_str().unwrap()),
        None,
    )
    .await;

    // Not for ordinary users.
    let (status, body) = ix.get("/audit", &alice).await;
    // (alice is unregistered by now, so her token is simply invalid)
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let bob = ix.user("bob").await;
    let (status, body) = ix.get("/audit", &bob).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["message"].as_str().unwrap().contains("admin"));

    // Search records are queued without waiting: poll until the search shows up.
    let mut entries = Vec::new();
    for _ in 0..50 {
        let (status, page) = ix.get("/audit?limit=1000", &root).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        entries = page["entries"].as_array().unwrap().clone();
        if !find(&entries, "search", "alice").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for (action, user) in [
        ("register", Some("alice")),
        ("login", Some("alice")),
        ("challenge", Some("alice")),
        ("join", Some("alice")),
        ("publish", Some("alice")),
        ("download_announced", Some("alice")),
        ("unpublish", Some("alice")),
        ("search", Some("alice")),
        ("leave", Some("alice")),
        ("logout", Some("mallory")),
        ("unregister", Some("alice")),
    ] {
        let hits: Vec<_> = entries
            .iter()
            .filter(|e| e["action"] == action && user.is_none_or(|u| e["user"] == u))
            .collect();
        assert!(!hits.is_empty(), "no {action} by {user:?} in {entries:#?}");
        for h in &hits {
            assert!(h["at"].as_i64().unwrap() > 0);
            assert_eq!(h["client"], "127.0.0.1");
        }
    }
    let logins = find(&entries, "login", "alice");
    assert!(logins.iter().any(|e| e["outcome"] == "bad_credentials"));
    assert!(logins.iter().any(|e| e["outcome"] == "ok"));
    let join = find(&entries, "join", "alice")[0];
    assert_eq!(join["peer_id"], peer.as_str());
    let denied = find(&entries, "unpublish", "mallory");
    assert_eq!(denied[0]["outcome"], "forbidden");
    assert_eq!(find(&entries, "search", "alice")[0]["detail"], "needle");
    // Newest first, and paging works.
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    let (_, page) = ix.get("/audit?limit=2&offset=1", &root).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert!(page["total"].as_i64().unwrap() >= entries.len() as i64);
    // Passwords never reach the log.
    assert!(!serde_json::to_string(&entries).unwrap().contains(PASSWORD));
}

/// Every record of the log (up to 10 000), newest first.
async fn all_entries(ix: &Index, token: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    loop {
        let (status, page) = ix
            .get(
                &format!("/audit?limit=1000&offset={}", entries.len()),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let got = page["entries"].as_array().unwrap().clone();
        let done = got.len() < 1000 || entries.len() >= 10_000;
        entries.extend(got);
        if done {
            return entries;
        }
    }
}

/// How many requests a record stands for: 1, or N + … for a count of repeats.
fn represented(entry: &Value) -> u64 {
    entry["detail"]
        .as_str()
        .and_then(|d| d.strip_prefix("repeated "))
        .map(|rest| {
            rest.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no count in {entry}"))
        })
        .unwrap_or(1)
}

#[tokio::test]
async fn floods_of_rejections_add_a_handful_of_counted_records() {
    let mut ix = Index::start().await;
    let root = ix.user("root").await;
    ix.user("victim").await;
    let before = all_entries(&ix, &root).await.len();

    // 1000 failed logins (soon rate limited) and 1000 refused searches.
    let ix_ref = &ix;
    let logins = futures::future::join_all((0..8).map(|_| async move {
        for _ in 0..125 {
            let (status, body) = ix_ref.login("victim", "wrong").await;
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
                "{status}: {body}"
            );
        }
    }));
    let root_ref = &root;
    let searches = futures::future::join_all((0..8).map(|_| async move {
        for _ in 0..125 {
            let (status, body) = ix_ref.get("/search?q=a&offset=5000", root_ref).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        }
    }));
    futures::future::join(logins, searches).await;

    // Only the first of each kind is written at once...
    let entries = all_entries(&ix, &root).await;
    assert!(
        entries.len() - before <= 10,
        "{} records for 2000 rejections: {:#?}",
        entries.len() - before,
        &entries[..entries.len().min(20)]
    );
    // ...and the repeats are counted when their minute ends or the index stops.
    ix.restart().await;
    let (_, s) = ix.login("root", PASSWORD).await;
    let root = s["token"].as_str().unwrap().to_string();
    let entries = all_entries(&ix, &root).await;
    let rejected = |action: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] != "ok")
            .collect()
    };
    let logins = rejected("login");
    assert!(logins.len() <= 6, "{logins:#?}");
    assert!(logins
        .iter()
        .all(|e| e["user"] == "victim" && e["client"] == "127.0.0.1"));
    assert_eq!(
        logins.iter().map(|e| represented(e)).sum::<u64>(),
        1000,
        "{logins:#?}"
    );
    assert!(
        logins.iter().any(|e| e["outcome"] == "rate_limited"),
        "{logins:#?}"
    );
    let searches = rejected("search");
    assert!(searches.len() <= 4, "{searches:#?}");
    assert_eq!(
        searches.iter().map(|e| represented(e)).sum::<u64>(),
        1000,
        "{searches:#?}"
    );
    assert!(searches.iter().any(|e| e["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("repeated 999 more times"))));
    assert_eq!(searches[0]["outcome"], "invalid_query");
}

#[tokio::test]
async fn records_past_the_retention_are_deleted_at_start() {
    let mut ix = Index::start().await;
    assert_eq!(ix.config.audit_retention_days, 90);
    let root = ix.user("root").await;
    ix.user("old").await;
    let entries = all_entries(&ix, &root).await;
    assert!(find(&entries, "register", "old").len() == 1, "{entries:#?}");
    ix.running.take().unwrap().stop().await;

    // Age every record by 100 days, then add one 89 days old.
    let mut db = ix.db().await;
    let day: i64 = 24 * 3600 * 1000;
    db.execute("UPDATE audit SET at = at - $1", &[100 * day])
        .await;
    db.execute(
        "INSERT INTO audit (at, user_name, action, outcome, client) \
         SELECT MAX(at) + 11 * $1, 'recent', 'login', 'bad_credentials', '127.0.0.1' FROM audit",
        &[day],
    )
    .await;
    db.close().await;

    let running = peershare_index::start(ix.config.clone()).await.unwrap();
    ix.base = format!("{}/api/v1", running.url());
    ix.running = Some(running);
    let (_, s) = ix.login("root", PASSWORD).await;
    let root = s["token"].as_str().unwrap().to_string();
    let entries = all_entries(&ix, &root).await;
    assert!(find(&entries, "register", "old").is_empty(), "{entries:#?}");
    assert_eq!(find(&entries, "login", "recent").len(), 1, "{entries:#?}");
    let oldest = entries
        .iter()
        .map(|e| e["at"].as_i64().unwrap())
        .min()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(now - oldest < 90 * day, "{entries:#?}");
}
