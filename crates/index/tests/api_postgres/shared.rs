//! Several index processes on one PostgreSQL database (PostgreSQL only: a
//! SQLite file has one index). Each "process" here is an index started in
//! this test binary with its own pools, listener and in-memory state.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures::future::join_all;
use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::Index;

/// Another index on `first`'s database.
async fn beside(first: &Index, tweak: impl FnOnce(&mut peershare_index::IndexConfig)) -> Index {
    let database = first.config.database.clone();
    Index::start_with(move |c| {
        c.database = database;
        tweak(c);
    })
    .await
}

#[tokio::test]
async fn indexes_starting_at_once_on_a_new_database_take_turns_at_the_schema() {
    let database = crate::postgres::fresh_database().await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let starts = dirs.iter().map(|dir| {
        let mut config = crate::common::config(dir.path().join("index"));
        config.database = Some(database.clone());
        peershare_index::start(config)
    });
    let running: Vec<_> = join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("every index starts"))
        .collect();
    // One schema, shared: an account made through one index logs in through another.
    let http = crate::common::http_client();
    let register = http
        .post(format!("{}/api/v1/users", running[0].url()))
        .json(&json!({"name": "alice", "password": crate::common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::CREATED);
    let login = http
        .post(format!("{}/api/v1/sessions", running[3].url()))
        .json(&json!({"name": "alice", "password": crate::common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::CREATED);
    for index in running {
        index.stop().await;
    }
}

#[tokio::test]
async fn mailbox_limits_hold_across_indexes_sending_at_once() {
    let a = Index::start_with(|c| c.mailbox_per_recipient = 5).await;
    let b = beside(&a, |c| c.mailbox_per_recipient = 5).await;
    let alice = a.user("alice").await;
    let carol = a.user("carol").await;
    let bob = a.user("bob").await;
    let b1 = a.join(&bob, &Keypair::generate_ed25519(), json!([])).await;

    // 24 single letters at once, half through each index, from two senders.
    let sends = (0..24).map(|i| {
        let (ix, token) = match i % 4 {
            0 => (&a, &alice),
            1 => (&b, &alice),
            2 => (&a, &carol),
            _ => (&b, &carol),
        };
        let body = json!({"letters": [{"to_peer": b1, "envelope": STANDARD.encode([i as u8])}]});
        async move {
            ix.call(Method::POST, "/mail", Some(token), Some(body))
                .await
                .0
        }
    });
    let statuses = join_all(sends).await;
    let stored = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let full = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((stored, full), (5, 19), "{statuses:?}");
    let mut db = a.db().await;
    assert_eq!(db.number("SELECT COUNT(*) FROM letters", &[]).await, 5);
    db.close().await;
    // The recipient pages through them in id order, through either index.
    let (status, body) = b.get(&format!("/mail?peer_id={b1}"), &bob).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<i64> = body["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn a_peer_id_joined_by_two_users_at_once_goes_to_one() {
    let a = Index::start().await;
    let b = beside(&a, |_| {}).await;
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    for _ in 0..8 {
        let key = Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id().to_string();
        let (first, second) = tokio::join!(
            a.join_signed(&alice, &key, &key, json!([crate::common::file("a.txt", 1)])),
            b.join_signed(&bob, &key, &key, json!([crate::common::file("b.txt", 2)])),
        );
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::FORBIDDEN],
            "{first:?} {second:?}"
        );
        let winner = if first.0 == StatusCode::OK {
            "alice"
        } else {
            "bob"
        };
        let (status, owner) = b.get(&format!("/peers/{peer_id}"), &alice).await;
        assert_eq!(status, StatusCode::OK, "{owner}");
        assert_eq!(owner["user"], winner);
        // Only the winner's files are listed under the peer.
        let (_, files) = a
            .get(&format!("/users/{winner}/files?all=true"), &alice)
            .await;
        let names: Vec<&str> = files["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["peer_id"] == peer_id.as_str())
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let expected = if winner == "alice" { "a.txt" } else { "b.txt" };
        assert_eq!(names, vec![expected], "{files}");
    }
}

#[tokio::test]
async fn a_setting_that_is_not_a_postgresql_url_is_refused_saying_what_is_accepted() {
    for setting in ["mysql://u@h/db", "index.db", "sqlite://x.db", ""] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::common::config(dir.path().join("index"));
        config.database = Some(setting.to_string());
        let e = peershare_index::start(config).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("postgres://") && text.contains("SQLite"),
            "{setting}: {text}"
        );
    }
    // A server that is not there: a clear error naming the database, not its password.
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path().join("index"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.database = Some(format!("postgres://ix:hunter2@127.0.0.1:{port}/nothing"));
    let e = peershare_index::start(config).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("postgres://ix@127.0.0.1:{port}/nothing")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// A login token of the existing user `name` on `ix`.
async fn token(ix: &Index, name: &str) -> String {
    let (status, body) = ix.login(name, crate::common::PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// The sorted ids `ix` finds for `query` with `token`.
async fn found(ix: &Index, token: &str, query: &str) -> Vec<String> {
    crate::common::sorted_ids(&ix.search(token, query).await)
}

#[tokio::test]
async fn what_one_index_changes_is_searchable_on_the_other_within_a_second() {
    use std::time::{Duration, Instant};

    let a = Index::start().await;
    let b = beside(&a, |_| {}).await;
    let alice = a.user("alice").await;
    let on_b = token(&b, "alice").await;
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id().to_string();
    let files = |names: &[&str]| -> Vec<serde_json::Value> {
        names.iter().map(|n| crate::common::file(n, 5)).collect()
    };

    // Each change made through A is seen by a search on B; the time it
    // takes is printed (bench/index.sh measures it under load).
    let mut slowest = Duration::ZERO;
    let expect_on_b = |want: Vec<String>, query: &'static str| {
        let (b, on_b) = (&b, on_b.clone());
        async move {
            let began = Instant::now();
            let seen = crate::common::eventually(Duration::from_secs(5), || {
                let (want, on_b) = (want.clone(), on_b.clone());
                async move { found(b, &on_b, query).await == want }
            })
            .await;
            assert!(seen, "B never saw {want:?} for {query}");
            began.elapsed()
        }
    };
    a.join(
        &alice,
        &key,
        json!(files(&["harbour lights.flac", "notes.txt"])),
    )
    .await;
    slowest = slowest.max(
        expect_on_b(
            crate::common::sorted_ids_of(&["harbour lights.flac"]),
            "q=harb",
        )
        .await,
    );
    let (status, body) = a
        .call(
            Method::POST,
            &format!("/peers/{peer}/files"),
            Some(&alice),
            Some(json!({"files": files(&["harbour nights.flac"])})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    slowest = slowest.max(
        expect_on_b(
            crate::common::sorted_ids_of(&["harbour lights.flac", "harbour nights.flac"]),
            "q=harb",
        )
        .await,
    );
    let gone = crate::common::id_of("harbour lights.flac");
    let (status, _) = a
        .call(
            Method::DELETE,
            &format!("/peers/{peer}/files/{gone}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    slowest = slowest.max(
        expect_on_b(
            crate::common::sorted_ids_of(&["harbour nights.flac"]),
            "q=harb",
        )
        .await,
    );
    let (status, _) = a
        .call(
            Method::DELETE,
            &format!("/peers/{peer}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    slowest = slowest.max(expect_on_b(Vec::new(), "q=harb").await);
    eprintln!("slowest change seen on the other index: {slowest:?}");
}

#[tokio::test]
async fn heartbeats_through_one_index_keep_a_peer_online_on_the_other() {
    use std::time::Duration;

    let timeout = Duration::from_secs(2);
    let a = Index::start_with(|c| c.peer_timeout = timeout).await;
    let b = beside(&a, move |c| c.peer_timeout = timeout).await;
    let alice = a.user("alice").await;
    let on_b = token(&b, "alice").await;
    let key = Keypair::generate_ed25519();
    let peer = a
        .join(
            &alice,
            &key,
            json!([crate::common::file("lighthouse.iso", 9)]),
        )
        .await;
    // Three timeouts long, the peer's heartbeats reach only B.
    for _ in 0..12 {
        let (status, body) = b
            .call(
                Method::POST,
                &format!("/peers/{peer}/heartbeat"),
                Some(&on_b),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            found(&a, &alice, "q=lighthouse").await.len(),
            1,
            "A timed out a peer that B hears from"
        );
    }
    // Silent everywhere: both drop it.
    tokio::time::sleep(timeout + Duration::from_millis(1500)).await;
    assert!(found(&a, &alice, "q=lighthouse").await.is_empty());
    assert!(found(&b, &on_b, "q=lighthouse").await.is_empty());
}

#[tokio::test]
async fn an_index_killed_with_9_leaves_the_other_serving_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let b = Index::start().await;
    let database = b.config.database.clone().unwrap();
    let (mut child, addr) =
        crate::durability::spawn_index_process(&dir.path().join("a"), Some(&database)).await;
    // A client of the process that will die: register, log in, join.
    let a_view = Index {
        running: None,
        _dir: tempfile::tempdir().unwrap(),
        config: b.config.clone(),
        http: crate::common::http_client(),
        base: format!("http://{addr}/api/v1"),
    };
    let carol_on_a = a_view.user("carol").await;
    let key = Keypair::generate_ed25519();
    let names: Vec<String> = (0..50).map(|i| format!("tide table {i}.pdf")).collect();
    let listed: Vec<_> = names.iter().map(|n| crate::common::file(n, 100)).collect();
    a_view.join(&carol_on_a, &key, json!(listed)).await;

    child.kill().unwrap();
    let _ = child.wait();

    // B has every acknowledged write: the account, the session, the files.
    let carol_on_b = token(&b, "carol").await;
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    let want = crate::common::sorted_ids_of(&wanted);
    let seen = crate::common::eventually(std::time::Duration::from_secs(5), || {
        let (b, token, want) = (&b, carol_on_b.clone(), want.clone());
        async move { found(b, &token, "q=tide&limit=100").await == want }
    })
    .await;
    assert!(seen, "B lost what A acknowledged");
    let (status, body) = b.get("/users/carol/files", &carol_on_a).await;
    assert_eq!(status, StatusCode::OK, "A's session works on B: {body}");
    // And B goes on taking writes.
    let peer = key.public().to_peer_id().to_string();
    let (status, body) = b
        .call(
            Method::POST,
            &format!("/peers/{peer}/heartbeat"),
            Some(&carol_on_b),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}
