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
