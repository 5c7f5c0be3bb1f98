use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libp2p_identity::Keypair;
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{eventually, Index};

/// Largest envelope the index takes, in bytes.
const MAX_ENVELOPE: usize = 96 * 1024;

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn letter(to_peer: &str, envelope: &[u8]) -> Value {
    json!({"to_peer": to_peer, "envelope": STANDARD.encode(envelope)})
}

async fn send(ix: &Index, token: &str, letters: Vec<Value>) -> (StatusCode, Value) {
    ix.call(
        Method::POST,
        "/mail",
        Some(token),
        Some(json!({ "letters": letters })),
    )
    .await
}

/// The letters of `peer`'s mailbox read as `token`; panics unless 200.
async fn fetch(ix: &Index, token: &str, peer: &str) -> Vec<Value> {
    let (status, body) = ix.get(&format!("/mail?peer_id={peer}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["letters"].as_array().unwrap().clone()
}

async fn ack(ix: &Index, token: &str, peer: &str, ids: Value) -> (StatusCode, Value) {
    ix.call(
        Method::POST,
        "/mail/ack",
        Some(token),
        Some(json!({"peer_id": peer, "ids": ids})),
    )
    .await
}

fn ids_of(letters: &[Value]) -> Vec<i64> {
    letters.iter().map(|l| l["id"].as_i64().unwrap()).collect()
}

async fn letters_in_database(ix: &Index) -> i64 {
    let mut db = ix.db().await;
    let n = db.number("SELECT COUNT(*) FROM letters", &[]).await;
    db.close().await;
    n
}

#[tokio::test]
async fn send_fetch_ack_then_the_mailbox_is_empty() {
    let ix = Index::start().await;
    let root = ix.user("root").await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    let (one, two) = (random_bytes(100), random_bytes(MAX_ENVELOPE));

    let (status, sent) = send(&ix, &alice, vec![letter(&b1, &one), letter(&b1, &two)]).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let stored: Vec<i64> = sent["stored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(stored[0] < stored[1], "ids in the order sent: {sent}");
    let ttl = sent["expires_at"].as_i64().unwrap() - peershare_index::store::now_ms();
    assert!(
        (13 * 24 * 3600 * 1000..=14 * 24 * 3600 * 1000).contains(&ttl),
        "letters are kept 14 days by default: {sent}"
    );

    let letters = fetch(&ix, &bob, &b1).await;
    assert_eq!(ids_of(&letters), stored);
    assert_eq!(letters[0]["from_user"], "alice");
    assert_eq!(
        STANDARD
            .decode(letters[0]["envelope"].as_str().unwrap())
            .unwrap(),
        one
    );
    assert_eq!(
        STANDARD
            .decode(letters[1]["envelope"].as_str().unwrap())
            .unwrap(),
        two
    );
    assert_eq!(letters[1]["expires_at"], sent["expires_at"]);
    let kept =
        letters[0]["expires_at"].as_i64().unwrap() - letters[0]["stored_at"].as_i64().unwrap();
    assert_eq!(kept, 14 * 24 * 3600 * 1000);

    // Paging: after and limit.
    let (_, page) = ix
        .get(&format!("/mail?peer_id={b1}&after={}", stored[0]), &bob)
        .await;
    assert_eq!(ids_of(page["letters"].as_array().unwrap()), vec![stored[1]]);
    let (_, page) = ix.get(&format!("/mail?peer_id={b1}&limit=1"), &bob).await;
    assert_eq!(ids_of(page["letters"].as_array().unwrap()), vec![stored[0]]);
    for bad in ["limit=0", "limit=201", "after=x"] {
        let (status, body) = ix.get(&format!("/mail?peer_id={b1}&{bad}"), &bob).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = ix.get("/mail", &bob).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "peer_id is required: {body}"
    );

    // Acknowledged letters are deleted; unknown ids are ignored.
    let (status, acked) = ack(&ix, &bob, &b1, json!([stored[0], stored[1], 987_654])).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["deleted"], 2);
    assert!(fetch(&ix, &bob, &b1).await.is_empty());
    assert_eq!(ack(&ix, &bob, &b1, json!(stored)).await.1["deleted"], 0);
    let (status, body) = ack(&ix, &bob, &b1, json!(vec![1; 1001])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Ids only grow, even after the newest letters were deleted.
    let (_, again) = send(&ix, &alice, vec![letter(&b1, b"later")]).await;
    assert!(again["stored"][0].as_i64().unwrap() > stored[1], "{again}");

    // Every operation is audited, never with the content.
    let (_, log) = ix.get("/audit?limit=1000", &root).await;
    let entries = log["entries"].as_array().unwrap();
    for (action, user) in [
        ("mail_send", "alice"),
        ("mail_fetch", "bob"),
        ("mail_ack", "bob"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["action"] == action && e["user"] == user && e["outcome"] == "ok"),
            "no {action} by {user} in {log}"
        );
    }
    let send_entry = entries.iter().find(|e| e["action"] == "mail_send").unwrap();
    assert_eq!(send_entry["peer_id"], b1.as_str());
    let text = log.to_string();
    assert!(
        !text.contains(&STANDARD.encode(&one)),
        "an envelope reached the audit log"
    );
}

#[tokio::test]
async fn only_the_owner_of_the_recipient_peer_reads_or_acknowledges() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let mallory = ix.user("mallory").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    let m1 = ix
        .join(&mallory, &Keypair::generate_ed25519(), json!([]))
        .await;
    let (_, sent) = send(&ix, &alice, vec![letter(&b1, b"for bob only")]).await;
    let id = sent["stored"][0].clone();

    let (status, body) = ix.get(&format!("/mail?peer_id={b1}"), &mallory).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "not_your_peer");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("not one of your peers"));
    let (status, body) = ack(&ix, &mallory, &b1, json!([id])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "not_your_peer");
    // Someone else's ids acknowledged through one's own peer delete nothing.
    assert_eq!(ack(&ix, &mallory, &m1, json!([id])).await.1["deleted"], 0);
    // A peer id that never joined is nobody's mailbox; a bad one is a 400.
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let (status, body) = ix.get(&format!("/mail?peer_id={stranger}"), &bob).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = ix.get("/mail?peer_id=nonsense", &bob).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_peer_id");
    let (status, _) = ix
        .call(Method::GET, &format!("/mail?peer_id={b1}"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The letter is still there, and still there after bob's peer left.
    ix.call(Method::DELETE, &format!("/peers/{b1}"), Some(&bob), None)
        .await;
    let letters = fetch(&ix, &bob, &b1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["id"], id);
}

#[tokio::test]
async fn unknown_recipients_and_bad_batches_store_nothing() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    let stranger = Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();

    let (status, body) = send(
        &ix,
        &alice,
        vec![letter(&b1, b"hi"), letter(&stranger, b"hi")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_recipient");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&stranger) && message.contains("ever joined"),
        "{message}"
    );

    let cases = [
        (vec![], StatusCode::BAD_REQUEST, "invalid_letters"),
        (
            vec![letter(&b1, b"x"); 17],
            StatusCode::BAD_REQUEST,
            "invalid_letters",
        ),
        (
            vec![letter(&b1, b"x"), letter("not-a-peer", b"x")],
            StatusCode::BAD_REQUEST,
            "invalid_peer_id",
        ),
        (
            vec![letter(&b1, b"x"), letter(&b1, b"")],
            StatusCode::BAD_REQUEST,
            "invalid_envelope",
        ),
        (
            vec![
                letter(&b1, b"x"),
                json!({"to_peer": b1, "envelope": "not base64!"}),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_envelope",
        ),
    ];
    for (letters, status, code) in cases {
        let (got, body) = send(&ix, &alice, letters).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
    }
    let (status, _) = ix
        .call(
            Method::POST,
            "/mail",
            None,
            Some(json!({"letters": [letter(&b1, b"x")]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(fetch(&ix, &bob, &b1).await.is_empty());
    assert_eq!(letters_in_database(&ix).await, 0);
}

#[tokio::test]
async fn oversize_envelopes_are_refused_and_nothing_is_stored() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;

    let (status, body) = send(
        &ix,
        &alice,
        vec![
            letter(&b1, b"fits"),
            letter(&b1, &random_bytes(MAX_ENVELOPE + 1)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("letter 2") && message.contains("98304"),
        "{message}"
    );
    assert!(fetch(&ix, &bob, &b1).await.is_empty());
    assert_eq!(letters_in_database(&ix).await, 0);

    // A body past the mail limit (17 full envelopes) is refused before it is read.
    let (status, body) = send(
        &ix,
        &alice,
        vec![letter(&b1, &random_bytes(MAX_ENVELOPE)); 17],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "body_too_large");

    // The largest request allowed: 16 envelopes of 96 KiB.
    let full: Vec<Vec<u8>> = (0..16).map(|_| random_bytes(MAX_ENVELOPE)).collect();
    let (status, body) = send(&ix, &alice, full.iter().map(|e| letter(&b1, e)).collect()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let letters = fetch(&ix, &bob, &b1).await;
    let got: Vec<Vec<u8>> = letters
        .iter()
        .map(|l| STANDARD.decode(l["envelope"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(got, full);
}

#[tokio::test]
async fn full_mailboxes_answer_429_and_a_batch_over_a_limit_stores_nothing() {
    let ix = Index::start_with(|c| {
        c.mailbox_per_recipient = 5;
        c.mailbox_per_sender = 3;
    })
    .await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let carol = ix.user("carol").await;
    let dave = ix.user("dave").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    let c1 = ix
        .join(&carol, &Keypair::generate_ed25519(), json!([]))
        .await;

    let (status, _) = send(&ix, &alice, vec![letter(&b1, b"1"), letter(&b1, b"2")]).await;
    assert_eq!(status, StatusCode::CREATED);
    // Per sender: 2 waiting + 2 more > 3; nothing of the batch is stored.
    let (status, body) = send(&ix, &alice, vec![letter(&b1, b"3"), letter(&b1, b"4")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "mailbox_full");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("at most 3") && message.contains("one user"),
        "{message}"
    );
    assert!(
        message.contains("once the recipient collects them"),
        "{message}"
    );
    assert_eq!(fetch(&ix, &bob, &b1).await.len(), 2);

    // Per recipient: 2 + 3 = 5 fill bob's mailbox.
    let (status, _) = send(&ix, &carol, vec![letter(&b1, b"c"); 3]).await;
    assert_eq!(status, StatusCode::CREATED);
    // A batch with room for one letter and none for the other stores neither.
    let (status, body) = send(&ix, &dave, vec![letter(&c1, b"d"), letter(&b1, b"d")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "mailbox_full");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&b1) && message.contains("at most 5"),
        "{message}"
    );
    assert!(
        message.contains("once the recipient collects them"),
        "{message}"
    );
    assert!(fetch(&ix, &carol, &c1).await.is_empty());
    assert_eq!(fetch(&ix, &bob, &b1).await.len(), 5);

    // Once bob collects a letter of alice's, she may send again.
    let first = fetch(&ix, &bob, &b1).await[0]["id"].clone();
    assert_eq!(ack(&ix, &bob, &b1, json!([first])).await.1["deleted"], 1);
    let (status, body) = send(&ix, &alice, vec![letter(&b1, b"again")]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn expired_letters_are_never_returned_and_are_purged() {
    let ix = Index::start_with(|c| {
        c.mail_ttl = Duration::from_secs(2);
        c.mailbox_per_recipient = 1;
        // The sweeper runs as often as the peer timeout, at least once a second.
        c.peer_timeout = Duration::from_secs(1);
    })
    .await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;

    let (status, sent) = send(&ix, &alice, vec![letter(&b1, b"soon gone")]).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let expires_at = sent["expires_at"].as_i64().unwrap();
    let now = peershare_index::store::now_ms();
    assert!((0..=2000).contains(&(expires_at - now)), "{sent}");
    let wait = expires_at - peershare_index::store::now_ms() + 50;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;

    assert!(
        fetch(&ix, &bob, &b1).await.is_empty(),
        "an expired letter was returned"
    );
    // An expired letter no longer counts against the mailbox's limit.
    let (status, body) = send(&ix, &alice, vec![letter(&b1, b"fresh")]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The periodic purge deletes it from the database.
    let first = sent["stored"][0].as_i64().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let mut db = ix.db().await;
            let n = db
                .number("SELECT COUNT(*) FROM letters WHERE id = $1", &[first])
                .await;
            db.close().await;
            n == 0
        })
        .await,
        "the expired letter was not purged"
    );
}

#[tokio::test]
async fn the_database_holds_exactly_the_bytes_sent() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    let marker = random_bytes(48);
    let mut envelope = random_bytes(1000);
    envelope.extend_from_slice(&marker);
    envelope.extend(random_bytes(1000));

    let (status, sent) = send(&ix, &alice, vec![letter(&b1, &envelope)]).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");

    let id = sent["stored"][0].as_i64().unwrap();
    let mut db = ix.db().await;
    if crate::POSTGRES {
        let kind = db
            .text(
                "SELECT pg_typeof(envelope)::text FROM letters WHERE id = $1",
                &[id],
            )
            .await;
        assert_eq!(kind, "bytea");
    } else {
        // The database files (the WAL holds what is not checkpointed yet)
        // contain the raw bytes, not their base64 text.
        let path = ix.config.database_path();
        let mut files = std::fs::read(&path).unwrap();
        files.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        let contains = |needle: &[u8]| files.windows(needle.len()).any(|w| w == needle);
        assert!(
            contains(&marker),
            "the marker bytes are not in the database"
        );
        assert!(
            !contains(STANDARD.encode(&envelope).as_bytes()),
            "the envelope was stored as base64 text"
        );
        let kind = db
            .text("SELECT typeof(envelope) FROM letters WHERE id = $1", &[id])
            .await;
        assert_eq!(kind, "blob");
    }
    let stored = db
        .bytes("SELECT envelope FROM letters WHERE id = $1", &[id])
        .await;
    assert_eq!(stored, envelope);
    db.close().await;
}

#[tokio::test]
async fn unregistering_removes_letters_sent_and_received() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let a1 = ix
        .join(&alice, &Keypair::generate_ed25519(), json!([]))
        .await;
    let b1 = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    send(&ix, &alice, vec![letter(&b1, b"from alice")]).await;
    send(&ix, &bob, vec![letter(&a1, b"to alice")]).await;
    assert_eq!(letters_in_database(&ix).await, 2);

    ix.call(Method::DELETE, "/users/me", Some(&alice), None)
        .await;
    assert!(fetch(&ix, &bob, &b1).await.is_empty());
    assert_eq!(letters_in_database(&ix).await, 0);
}

#[tokio::test]
async fn a_users_peers_show_message_keys_and_presence() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let _carol = ix.user("carol").await;
    let k1 = Keypair::generate_ed25519();
    let card = STANDARD.encode(random_bytes(200));
    let (status, body) = ix
        .join_with(&alice, &k1, &k1, json!([]), json!({"message_key": card}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a1 = k1.public().to_peer_id().to_string();
    let a2 = ix
        .join(&alice, &Keypair::generate_ed25519(), json!([]))
        .await;

    let (status, list) = ix.get("/users/alice/peers", &bob).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["user"], "alice");
    assert_eq!(list["online"], true);
    let peers = list["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2);
    let peer = |id: &str| peers.iter().find(|p| p["peer_id"] == id).unwrap().clone();
    assert_eq!(peer(&a1)["message_key"], card.as_str());
    assert_eq!(peer(&a1)["online"], true);
    assert_eq!(peer(&a1)["addrs"], json!(["/ip4/127.0.0.1/tcp/4100"]));
    assert_eq!(peer(&a2)["message_key"], Value::Null);
    let latest = peers.iter().map(|p| p["last_seen"].as_i64().unwrap()).max();
    assert_eq!(list["last_seen"].as_i64(), latest);

    // Online peers first; the key outlives the peer going offline.
    ix.call(Method::DELETE, &format!("/peers/{a1}"), Some(&alice), None)
        .await;
    let (_, list) = ix.get("/users/alice/peers", &bob).await;
    assert_eq!(list["peers"][0]["peer_id"], a2.as_str());
    assert_eq!(list["peers"][1]["peer_id"], a1.as_str());
    assert_eq!(list["peers"][1]["online"], false);
    assert_eq!(list["peers"][1]["message_key"], card.as_str());
    assert_eq!(list["online"], true);
    ix.call(Method::DELETE, &format!("/peers/{a2}"), Some(&alice), None)
        .await;
    let (_, list) = ix.get("/users/alice/peers", &bob).await;
    assert_eq!(list["online"], false);
    assert_eq!(list["last_seen"].as_i64(), latest);
    let seen: Vec<i64> = list["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["last_seen"].as_i64().unwrap())
        .collect();
    assert!(
        seen.windows(2).all(|w| w[0] >= w[1]),
        "most recent first: {list}"
    );

    // A join replaces the card, and one without a card clears it.
    let (status, body) = ix.join_with(&alice, &k1, &k1, json!([]), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = ix.get("/users/alice/peers", &bob).await;
    assert_eq!(list["peers"][0]["peer_id"], a1.as_str());
    assert_eq!(list["peers"][0]["message_key"], Value::Null);

    // Cards: at most 1024 characters of base64.
    let longest = "A".repeat(1024);
    let (status, body) = ix
        .join_with(&alice, &k1, &k1, json!([]), json!({"message_key": longest}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for bad in ["A".repeat(1025), "not base64!".to_string(), String::new()] {
        let (status, body) = ix
            .join_with(&alice, &k1, &k1, json!([]), json!({"message_key": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_message_key");
    }
    let (_, list) = ix.get("/users/alice/peers", &bob).await;
    assert_eq!(
        list["peers"][0]["message_key"],
        longest.as_str(),
        "a refused join changes nothing"
    );

    // A user without peers, and no such user.
    let (status, list) = ix.get("/users/carol/peers", &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!({"user": "carol", "online": false, "last_seen": null, "peers": []})
    );
    let (status, body) = ix.get("/users/nobody/peers", &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("nobody"));
    let (status, _) = ix.call(Method::GET, "/users/alice/peers", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
