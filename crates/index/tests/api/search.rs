use libp2p_identity::Keypair;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{file, id_of, ids, Index};

/// Alice and Bob on two peers with overlapping files.
async fn two_users() -> (Index, String) {
    let ix = Index::start().await;
    let alice = ix.user("alice").await;
    let bob = ix.user("bob").await;
    ix.join(
        &alice,
        &Keypair::generate_ed25519(),
        json!([
            file("aula 1.mp4", 2_000_000_000),
            file("aula 2.mp4", 500),
            file("Aula Notes.PDF", 300),
            file("100%_done.txt", 10),
            file("it's \"quoted\".txt", 11),
        ]),
    )
    .await;
    ix.join(
        &bob,
        &Keypair::generate_ed25519(),
        json!([
            file("aula 1.mp4", 2_000_000_000),
            file("lecture aula.mkv", 900),
            file("100x_done.txt", 12)
        ]),
    )
    .await;
    (ix, alice)
}

#[tokio::test]
async fn exact_substring_and_words() {
    let (ix, t) = two_users().await;

    // Exact: the whole name, one result with both holders.
    let r = ix.search(&t, "q=aula%201.mp4&mode=exact").await;
    assert_eq!(ids(&r), vec![id_of("aula 1.mp4")]);
    let users: Vec<_> = r["results"][0]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user"].clone())
        .collect();
    assert_eq!(users, vec![json!("alice"), json!("bob")]);
    assert_eq!(r["results"][0]["size"], 2_000_000_000i64);
    assert_eq!(r["results"][0]["names"], json!(["aula 1.mp4"]));
    assert_eq!(ix.search(&t, "q=aula%201&mode=exact").await["total"], 0);

    // Substring, ASCII case-insensitive.
    let r = ix.search(&t, "q=ULA%20&mode=substring").await;
    assert_eq!(r["total"], 3, "{r}");

    // Words: every word, any order, case-insensitive, whole words only.
    let r = ix.search(&t, "q=aula&mode=words").await;
    assert_eq!(r["total"], 4, "{r}");
    let r = ix.search(&t, "q=MP4%20aula").await;
    assert_eq!(ids(&r), vec![id_of("aula 1.mp4"), id_of("aula 2.mp4")]);
    assert_eq!(ix.search(&t, "q=aul").await["total"], 0);
    let r = ix.search(&t, "q=lecture%20aula").await;
    assert_eq!(ids(&r), vec![id_of("lecture aula.mkv")]);
}

#[tokio::test]
async fn extension_and_size_filters_and_pages() {
    let (ix, t) = two_users().await;
    let r = ix.search(&t, "q=aula&ext=mp4").await;
    assert_eq!(r["total"], 2);
    let r = ix.search(&t, "q=aula&ext=.PDF").await;
    assert_eq!(ids(&r), vec![id_of("Aula Notes.PDF")]);
    let r = ix.search(&t, "q=aula&min_size=1000000000").await;
    assert_eq!(ids(&r), vec![id_of("aula 1.mp4")]);
    let r = ix.search(&t, "q=aula&min_size=400&max_size=900").await;
    assert_eq!(
        ids(&r),
        vec![id_of("aula 2.mp4"), id_of("lecture aula.mkv")]
    );
    let (status, body) = ix.get("/search?q=aula&min_size=10&max_size=5", &t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pages of two, ordered by name, together cover everything once.
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let r = ix
            .search(&t, &format!("q=aula&limit=2&offset={offset}"))
            .await;
        assert_eq!(r["total"], 4);
        seen.extend(ids(&r));
    }
    assert_eq!(
        seen,
        vec![
            id_of("Aula Notes.PDF"),
            id_of("aula 1.mp4"),
            id_of("aula 2.mp4"),
            id_of("lecture aula.mkv")
        ]
    );
}

#[tokio::test]
async fn sql_and_fts_metacharacters_are_literal() {
    let (ix, t) = two_users().await;
    // `%` and `_` match only themselves in substring mode.
    let r = ix.search(&t, "q=100%25_&mode=substring").await;
    assert_eq!(ids(&r), vec![id_of("100%_done.txt")]);
    let r = ix.search(&t, "q=%25&mode=substring").await;
    assert_eq!(ids(&r), vec![id_of("100%_done.txt")]);
    let r = ix.search(&t, "q=_&mode=substring").await;
    assert_eq!(r["total"], 2);
    // Quotes in every mode.
    let q = "it%27s%20%22quoted%22.txt";
    assert_eq!(
        ix.search(&t, &format!("q={q}&mode=exact")).await["total"],
        1
    );
    assert_eq!(
        ix.search(&t, &format!("q={q}&mode=substring")).await["total"],
        1
    );
    assert_eq!(
        ix.search(&t, &format!("q={q}&mode=words")).await["total"],
        1
    );
    // Injection attempts and FTS operators: never a server error.
    for q in [
        "%27%20OR%201%3D1%20--",
        "%22",
        "%22%22%22",
        "aula%20OR%20x",
        "aula%20NOT%20mp4",
        "NEAR(aula%20mp4)",
        "*",
        "aula*",
        "%5E",
        "a%3Ab",
        "(((",
        "%5C",
        "%27%3B%20DROP%20TABLE%20files%3B%20--",
    ] {
        for mode in ["exact", "substring", "words"] {
            let (status, body) = ix.get(&format!("/search?q={q}&mode={mode}"), &t).await;
            assert_eq!(status, StatusCode::OK, "q={q} mode={mode}: {body}");
        }
    }
    // Operators are words, not syntax: "aula OR x" needs the word "or".
    assert_eq!(ix.search(&t, "q=aula%20OR%20x").await["total"], 0);
    // Everything is still there.
    assert_eq!(ix.search(&t, "q=aula").await["total"], 4);
}

#[tokio::test]
async fn bad_search_parameters_are_400() {
    let (ix, t) = two_users().await;
    for query in [
        "",
        "q=",
        "q=%20%20",
        "q=aula&mode=fuzzy",
        "q=aula&min_size=-1",
        "q=aula&min_size=lots",
        "q=aula&limit=0",
        "q=aula&limit=100000",
        "q=aula&ext=m%25",
    ] {
        let (status, body) = ix.get(&format!("/search?{query}"), &t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let long = "a".repeat(300);
    assert_eq!(
        ix.get(&format!("/search?q={long}"), &t).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn by_id_finds_every_holder_of_one_file() {
    let (ix, t) = two_users().await;
    let id = id_of("aula 1.mp4");
    let r = ix
        .search(&t, &format!("q={}&mode=id", id.to_uppercase()))
        .await;
    assert_eq!(ids(&r), vec![id.clone()], "{r}");
    assert_eq!(r["results"][0]["sources"].as_array().unwrap().len(), 2);

    let r = ix
        .search(&t, &format!("q={}&mode=id", id_of("nobody has this")))
        .await;
    assert!(ids(&r).is_empty(), "{r}");

    let (status, body) = ix.get("/search?q=aula&mode=id", &t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
