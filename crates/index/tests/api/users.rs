use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{file, Index};

fn names(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn online_users_all_users_and_browse() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let _carol = ix.user("carol").await;
    let a1 = ix
        .join(
            &alice,
            &Keypair::generate_ed25519(),
            json!([file("b.txt", 2), file("a.txt", 1)]),
        )
        .await;
    let a2 = ix
        .join(
            &alice,
            &Keypair::generate_ed25519(),
            json!([file("c.txt", 3)]),
        )
        .await;
    let b1 = ix
        .join(
            &bob,
            &Keypair::generate_ed25519(),
            json!([file("bob.txt", 4)]),
        )
        .await;
    ix.call(Method::DELETE, &format!("/peers/{b1}"), Some(&bob), None)
        .await;

    // Default: online users with their online peers.
    let (status, list) = ix.get("/users", &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list), vec!["alice"]);
    let peers: Vec<_> = list["users"][0]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer_id"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec![a1.clone(), a2.clone()];
    expected.sort();
    assert_eq!(peers, expected);
    assert_eq!(list["users"][0]["online"], true);

    // all=true: everyone, offline ones marked.
    let (_, list) = ix.get("/users?all=true", &bob).await;
    assert_eq!(names(&list), vec!["alice", "bob", "carol"]);
    assert_eq!(list["users"][1]["online"], false);
    assert_eq!(list["users"][1]["peers"][0]["online"], false);
    assert_eq!(list["users"][2]["peers"], json!([]));

    // Browse: alice's files by name.
    let (status, files) = ix.get("/users/alice/files", &bob).await;
    assert_eq!(status, StatusCode::OK);
    let file_names: Vec<_> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(file_names, vec!["a.txt", "b.txt", "c.txt"]);
    assert_eq!(files["files"][2]["peer_id"], a2.as_str());

    // Bob's peer left: nothing online, but all=true shows the list.
    let (_, files) = ix.get("/users/bob/files", &alice).await;
    assert_eq!(files["files"], json!([]));
    let (_, files) = ix.get("/users/bob/files?all=true", &alice).await;
    assert_eq!(files["files"][0]["name"], "bob.txt");
    assert_eq!(files["files"][0]["online"], false);

    let (status, body) = ix.get("/users/nobody/files", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("nobody"));
    let (_, page) = ix.get("/users/alice/files?limit=1&offset=1", &alice).await;
    assert_eq!(page["files"][0]["name"], "b.txt");
    assert_eq!(
        ix.get("/users?all=maybe", &alice).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn unregister_removes_peers_and_files() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    ix.join(
        &alice,
        &Keypair::generate_ed25519(),
        json!([file("gone.txt", 1)]),
    )
    .await;
    assert_eq!(ix.search(&bob, "q=gone").await["total"], 1);
    ix.call(Method::DELETE, "/users/me", Some(&alice), None)
        .await;
    assert_eq!(ix.search(&bob, "q=gone").await["total"], 0);
    let (_, list) = ix.get("/users?all=true", &bob).await;
    assert_eq!(names(&list), vec!["bob"]);
    assert_eq!(
        ix.get("/users/alice/files?all=true", &bob).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_peer_id_names_its_owner() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let a1 = ix
        .join(&alice, &Keypair::generate_ed25519(), json!([]))
        .await;

    let (status, owner) = ix.get(&format!("/peers/{a1}"), &bob).await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    assert_eq!(owner["user"], "alice");
    assert_eq!(owner["peer_id"], a1.as_str());
    assert_eq!(owner["online"], true);

    ix.call(Method::DELETE, &format!("/peers/{a1}"), Some(&alice), None)
        .await;
    let (_, owner) = ix.get(&format!("/peers/{a1}"), &bob).await;
    assert_eq!(owner["online"], false, "a peer that left is named, offline");

    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let (status, body) = ix.get(&format!("/peers/{stranger}"), &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("ever joined"));
}
