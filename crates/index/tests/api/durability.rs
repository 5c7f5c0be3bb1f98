use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{file, id_of, ids, Index, PASSWORD};

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let mut ix = Index::start().await;
    let root = ix.user("root").await;
    let alice = ix.user("alice").await;
    let key = Keypair::generate_ed25519();
    let peer = ix.join(&alice, &key, json!([file("kept.mp4", 42)])).await;
    let (status, _) = ix
        .call(
            Method::POST,
            &format!("/peers/{peer}/files"),
            Some(&alice),
            Some(json!({"files": [file("added later.txt", 7)]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = ix.get("/audit?limit=1000", &root).await;

    ix.restart().await;

    // Accounts and tokens.
    assert_eq!(ix.get("/users", &alice).await.0, StatusCode::OK);
    assert_eq!(ix.login("alice", PASSWORD).await.0, StatusCode::CREATED);
    // Peers and files (the peer is still within its timeout).
    assert_eq!(
        ids(&ix.search(&alice, "q=kept.mp4&mode=exact").await),
        vec![id_of("kept.mp4")]
    );
    assert_eq!(ix.search(&alice, "q=added%20later").await["total"], 1);
    // Ownership: the peer id is still alice's.
    let bob = ix.user("bob").await;
    let (status, _) = ix.join_signed(&bob, &key, &key, json!([])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The audit log kept every record written before the restart.
    let (_, after) = ix.get("/audit?limit=1000", &root).await;
    let before_ids: Vec<_> = before["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    let after_ids: Vec<_> = after["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert!(before_ids.iter().all(|id| after_ids.contains(id)));
    assert!(before_ids.len() >= 6, "{before}");
    // The database file is where the config says.
    assert!(ix.config.database_path().exists());
}
