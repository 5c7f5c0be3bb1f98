use std::time::Duration;

use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{eventually, file, hex, id_of, ids, Index};

#[tokio::test]
async fn join_with_a_valid_signature_lists_the_files() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let key = Keypair::generate_ed25519();
    let peer = ix
        .join(
            &alice,
            &key,
            json!([file("aula 1.mp4", 1000), file("notes.txt", 5)]),
        )
        .await;
    assert_eq!(peer, key.public().to_peer_id().to_string());
    let found = ix.search(&alice, "q=aula").await;
    assert_eq!(ids(&found), vec![id_of("aula 1.mp4")]);
    let source = &found["results"][0]["sources"][0];
    assert_eq!(source["user"], "alice");
    assert_eq!(source["peer_id"], peer.as_str());
    assert_eq!(source["addrs"][0], "/ip4/127.0.0.1/tcp/4100");

    // Re-joining replaces the whole list.
    ix.join(&alice, &key, json!([file("other.mkv", 7)])).await;
    assert_eq!(ix.search(&alice, "q=aula").await["total"], 0);
    assert_eq!(ix.search(&alice, "q=other").await["total"], 1);
}

#[tokio::test]
async fn a_signature_by_another_key_is_403() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let key = Keypair::generate_ed25519();
    let impostor = Keypair::generate_ed25519();
    let (status, body) = ix
        .join_signed(&alice, &key, &impostor, json!([file("a.txt", 1)]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"].as_str().unwrap().contains("signature"));
    assert_eq!(ix.search(&alice, "q=a.txt&mode=exact").await["total"], 0);

    // A public key that is not the peer id's is refused too.
    let peer_id = key.public().to_peer_id().to_string();
    let (_, ch) = ix
        .call(
            Method::POST,
            "/peers/challenge",
            Some(&alice),
            Some(json!({"peer_id": peer_id})),
        )
        .await;
    let sig = impostor
        .sign(ch["message"].as_str().unwrap().as_bytes())
        .unwrap();
    let (status, _) = ix
        .call(
            Method::POST,
            "/peers",
            Some(&alice),
            Some(json!({"peer_id": peer_id, "addrs": [], "files": [],
                "public_key": hex(&impostor.public().encode_protobuf()), "signature": hex(&sig)})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_challenge_works_once_and_base64_is_accepted() {
    use base64::Engine;
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let key = Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id().to_string();
    let (status, ch) = ix
        .call(
            Method::POST,
            "/peers/challenge",
            Some(&alice),
            Some(json!({"peer_id": peer_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let sig = key
        .sign(ch["message"].as_str().unwrap().as_bytes())
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = json!({"peer_id": peer_id, "addrs": ["/ip4/10.0.0.1/udp/1100/quic-v1"], "files": [],
        "public_key": b64.encode(key.public().encode_protobuf()), "signature": b64.encode(&sig)});
    let (status, joined) = ix
        .call(Method::POST, "/peers", Some(&alice), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["heartbeat_secs"], 1);
    let (status, again) = ix
        .call(Method::POST, "/peers", Some(&alice), Some(body))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(again["message"].as_str().unwrap().contains("challenge"));
}

#[tokio::test]
async fn a_peer_id_owned_by_another_user_is_403() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let mallory = ix.user("mallory").await;
    let key = Keypair::generate_ed25519();
    let peer = ix.join(&alice, &key, json!([file("mine.txt", 1)])).await;

    // Even holding the key, another user cannot take the peer id over.
    let (status, _) = ix
        .join_signed(&mallory, &key, &key, json!([file("evil.txt", 1)]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor heartbeat, publish, unpublish or leave it.
    let hb = format!("/peers/{peer}/heartbeat");
    assert_eq!(
        ix.call(Method::POST, &hb, Some(&mallory), None).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = ix
        .call(
            Method::POST,
            &format!("/peers/{peer}/files"),
            Some(&mallory),
            Some(json!({"files": [file("evil.txt", 1)]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{peer}/files/{}", id_of("mine.txt")),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        ix.call(
            Method::DELETE,
            &format!("/peers/{peer}"),
            Some(&mallory),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    let found = ix.search(&alice, "q=txt&mode=substring").await;
    assert_eq!(ids(&found), vec![id_of("mine.txt")]);
    assert_eq!(found["results"][0]["sources"][0]["user"], "alice");
}

#[tokio::test]
async fn silent_peers_go_offline_and_leave_is_immediate() {
    let ix = Index::start_with(|c| c.peer_timeout = Duration::from_secs(2)).await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let (quiet, busy) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    ix.join(&alice, &quiet, json!([file("song.mp3", 10)])).await;
    let busy_id = ix.join(&bob, &busy, json!([file("song.mp3", 10)])).await;
    let sources = |v: &serde_json::Value| v["results"][0]["sources"].as_array().map_or(0, Vec::len);
    assert_eq!(sources(&ix.search(&alice, "q=song").await), 2);

    // Bob keeps sending heartbeats, Alice's peer does not: only Bob stays.
    let hb = format!("/peers/{busy_id}/heartbeat");
    let gone = eventually(Duration::from_secs(15), || async {
        let (status, _) = ix.call(Method::POST, &hb, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let found = ix.search(&alice, "q=song").await;
        sources(&found) == 1 && found["results"][0]["sources"][0]["user"] == "bob"
    })
    .await;
    assert!(gone, "the silent peer never went offline");

    // Leaving takes Bob's peer out at once; its heartbeats are refused afterwards.
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{busy_id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ix.search(&alice, "q=song").await["total"], 0);
    let (status, body) = ix.call(Method::POST, &hb, Some(&bob), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "peer_left");

    // A heartbeat from Alice's timed-out peer brings it back.
    let quiet_hb = format!("/peers/{}/heartbeat", quiet.public().to_peer_id());
    assert_eq!(
        ix.call(Method::POST, &quiet_hb, Some(&alice), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sources(&ix.search(&alice, "q=song").await), 1);
}

#[tokio::test]
async fn one_user_runs_several_peers() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let (k1, k2) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    ix.join(&alice, &k1, json!([file("shared.iso", 100)])).await;
    ix.join(&alice, &k2, json!([file("shared.iso", 100)])).await;
    let found = ix.search(&alice, "q=shared.iso&mode=exact").await;
    assert_eq!(found["results"][0]["sources"].as_array().unwrap().len(), 2);
    let (_, users) = ix.get("/users", &alice).await;
    assert_eq!(users["users"][0]["peers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_peers_are_404() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let (status, body) = ix
        .call(
            Method::POST,
            &format!("/peers/{stranger}/heartbeat"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("join"));
    let (status, body) = ix
        .call(
            Method::POST,
            "/peers/not-a-peer-id/heartbeat",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_peer_id");
}

#[tokio::test]
async fn a_joining_peer_gets_other_online_peers_to_enter_the_dht_through() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let first = Keypair::generate_ed25519();
    let (status, body) = ix.join_signed(&alice, &first, &first, json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["bootstrap"], json!([]), "nobody else is online yet");
    let first_id = first.public().to_peer_id().to_string();

    let second = Keypair::generate_ed25519();
    let (status, body) = ix.join_signed(&bob, &second, &second, json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["bootstrap"],
        json!([format!("/ip4/127.0.0.1/tcp/4100/p2p/{first_id}")]),
        "the other online peer, never the joiner itself"
    );

    // A peer that left is not handed out.
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{first_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = ix.join_signed(&bob, &second, &second, json!([])).await;
    assert_eq!(body["bootstrap"], json!([]));
}
