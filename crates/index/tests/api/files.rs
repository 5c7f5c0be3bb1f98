use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{file, id_of, ids, sorted_ids, sorted_ids_of, Index};

#[tokio::test]
async fn publish_and_unpublish_without_rejoining() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let peer = ix
        .join(
            &alice,
            &Keypair::generate_ed25519(),
            json!([file("old.txt", 1)]),
        )
        .await;
    let files = format!("/peers/{peer}/files");

    let (status, body) = ix
        .call(
            Method::POST,
            &files,
            Some(&alice),
            Some(json!({"files": [file("new.txt", 2), file("more.txt", 3)]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["files"], 2);
    let r = ix.search(&alice, "q=txt&mode=substring").await;
    assert_eq!(
        sorted_ids(&r),
        sorted_ids_of(&["more.txt", "new.txt", "old.txt"])
    );

    // Publishing the same entry again updates it instead of duplicating it.
    let changed = json!({"name": "new.txt", "size": 20, "id": id_of("new.txt")});
    ix.call(
        Method::POST,
        &files,
        Some(&alice),
        Some(json!({"files": [changed]})),
    )
    .await;
    let r = ix.search(&alice, "q=new.txt&mode=exact").await;
    assert_eq!(r["results"][0]["size"], 20);
    assert_eq!(r["results"][0]["sources"].as_array().unwrap().len(), 1);

    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("{files}/{}", id_of("old.txt")),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = ix.search(&alice, "q=txt&mode=substring").await;
    assert_eq!(sorted_ids(&r), sorted_ids_of(&["more.txt", "new.txt"]));
    // Unpublishing what is not there is a 404 that changes nothing.
    let (status, body) = ix
        .call(
            Method::DELETE,
            &format!("{files}/{}", id_of("old.txt")),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(ix.search(&alice, "q=txt&mode=substring").await["total"], 2);
}

#[tokio::test]
async fn unpublishing_someone_elses_file_changes_nothing() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let alice_peer = ix
        .join(
            &alice,
            &Keypair::generate_ed25519(),
            json!([file("a.txt", 1)]),
        )
        .await;
    let bob_peer = ix
        .join(
            &bob,
            &Keypair::generate_ed25519(),
            json!([file("b.txt", 1)]),
        )
        .await;

    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{alice_peer}/files/{}", id_of("a.txt")),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Through his own peer, Bob can only miss.
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{bob_peer}/files/{}", id_of("a.txt")),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        ids(&ix.search(&bob, "q=a.txt&mode=exact").await),
        vec![id_of("a.txt")]
    );
}

#[tokio::test]
async fn an_announced_download_makes_the_downloader_a_source() {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    ix.join(
        &alice,
        &Keypair::generate_ed25519(),
        json!([file("film.mkv", 99)]),
    )
    .await;
    let bob_peer = ix.join(&bob, &Keypair::generate_ed25519(), json!([])).await;
    let (status, _) = ix
        .call(
            Method::POST,
            &format!("/peers/{bob_peer}/files"),
            Some(&bob),
            Some(json!({"files": [file("film.mkv", 99)], "reason": "download"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = ix.search(&alice, "q=film").await;
    assert_eq!(r["results"][0]["sources"].as_array().unwrap().len(), 2);
    let (status, _) = ix
        .call(
            Method::POST,
            &format!("/peers/{bob_peer}/files"),
            Some(&bob),
            Some(json!({"files": [], "reason": "stolen"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// `n` one-byte files named "`prefix` 0.txt", "`prefix` 1.txt", …
fn names(prefix: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| file(&format!("{prefix} {i}.txt"), 1))
        .collect()
}

#[tokio::test]
async fn past_the_file_budget_joins_and_publishes_are_503_and_change_nothing() {
    let ix = Index::start_with(|c| c.max_files = 10).await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let first = Keypair::generate_ed25519();
    let peer = ix.join(&alice, &first, json!(names("ledger", 8))).await;

    // Bob's join of 5 would list 13 files: refused, nothing stored.
    let second = Keypair::generate_ed25519();
    let (status, body) = ix
        .join_signed(&bob, &second, &second, json!(names("harvest", 5)))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "busy");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("the index is full") && message.contains("max_files"),
        "{message}"
    );
    assert_eq!(ix.search(&bob, "q=harvest").await["total"], 0);
    let (_, listed) = ix.get("/users/bob/files?all=true", &bob).await;
    assert_eq!(listed["files"].as_array().unwrap().len(), 0, "{listed}");

    // A publish past it is refused the same way; one within it is taken.
    let path = format!("/peers/{peer}/files");
    let (status, body) = ix
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"files": names("extra", 3)})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = ix
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"files": names("extra", 2)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Joining again replaces the list, so it counts only the new one.
    ix.join(&alice, &first, json!(names("ledger", 10))).await;
    assert_eq!(ix.search(&alice, "q=ledger").await["total"], 10);
    assert_eq!(ix.search(&alice, "q=extra").await["total"], 0);
    // Searches go on; the status page counts what is listed.
    let (_, stats) = ix.get("/stats", &alice).await;
    assert_eq!(stats["listings"], 10, "{stats}");
}

#[tokio::test]
async fn one_user_lists_at_most_their_allowance_across_their_peers() {
    let ix = Index::start_with(|c| c.max_files_per_user = 10).await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    let laptop = Keypair::generate_ed25519();
    let laptop_id = ix.join(&alice, &laptop, json!(names("ledger", 6))).await;

    // A second peer of Alice's with 5 more would make 11: refused, and
    // nothing of it is stored or found.
    let desktop = Keypair::generate_ed25519();
    let (status, body) = ix
        .join_signed(&alice, &desktop, &desktop, json!(names("harvest", 5)))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "listing_quota", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("lists 6 files") && message.contains("max_files_per_user"),
        "{message}"
    );
    assert_eq!(ix.search(&alice, "q=harvest").await["total"], 0);

    // Bob has an allowance of his own.
    ix.join(
        &bob,
        &Keypair::generate_ed25519(),
        json!(names("orchard", 10)),
    )
    .await;
    assert_eq!(ix.search(&bob, "q=orchard").await["total"], 10);

    // A publish on the laptop past the allowance is refused; within it, taken.
    let path = format!("/peers/{laptop_id}/files");
    for (n, want) in [(5, StatusCode::TOO_MANY_REQUESTS), (4, StatusCode::OK)] {
        let (status, body) = ix
            .call(
                Method::POST,
                &path,
                Some(&alice),
                Some(json!({"files": names("extra", n)})),
            )
            .await;
        assert_eq!(status, want, "{n} more: {body}");
    }
    // Joining the laptop again replaces its list, so only the new one counts;
    // once it leaves, its listings no longer count at all.
    ix.join(&alice, &laptop, json!(names("ledger", 3))).await;
    ix.join(&alice, &desktop, json!(names("harvest", 7))).await;
    assert_eq!(ix.search(&alice, "q=harvest").await["total"], 7);
    let desktop_files = format!("/peers/{}/files", desktop.public().to_peer_id());
    let (status, body) = ix
        .call(
            Method::POST,
            &desktop_files,
            Some(&alice),
            Some(json!({"files": names("more", 1)})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _) = ix
        .call(
            Method::DELETE,
            &format!("/peers/{laptop_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = ix
        .call(
            Method::POST,
            &desktop_files,
            Some(&alice),
            Some(json!({"files": names("more", 3)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn over_the_memory_limit_joins_are_503_and_searches_go_on() {
    // One MiB: any running index is over it.
    let ix = Index::start_with(|c| c.memory_limit_mib = 1).await;
    let alice = ix.user("alice").await;
    let key = Keypair::generate_ed25519();
    let (status, body) = ix
        .join_signed(&alice, &key, &key, json!([file("a.txt", 1)]))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("memory limit"),
        "{body}"
    );
    assert_eq!(ix.search(&alice, "q=a.txt&mode=exact").await["total"], 0);
}
