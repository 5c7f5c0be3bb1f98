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
