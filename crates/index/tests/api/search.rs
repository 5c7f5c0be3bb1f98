use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::Keypair;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{assert_error_shape, file, id_of, ids, sorted_ids, sorted_ids_of, Index};

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

    // Words: every word, any order, case-insensitive, whole words, the last
    // one also the start of one.
    let r = ix.search(&t, "q=aula&mode=words").await;
    assert_eq!(r["total"], 4, "{r}");
    assert_eq!(r["total_is_estimate"], false, "{r}");
    let r = ix.search(&t, "q=MP4%20aula").await;
    assert_eq!(sorted_ids(&r), sorted_ids_of(&["aula 1.mp4", "aula 2.mp4"]));
    assert_eq!(ix.search(&t, "q=aul").await["total"], 4);
    assert_eq!(ix.search(&t, "q=notes%20AUL").await["total"], 1);
    // Only the last word may be unfinished.
    assert_eq!(ix.search(&t, "q=aul%20notes").await["total"], 0);
    // Only the start of a word: the middle of one is substring mode's job.
    assert_eq!(ix.search(&t, "q=ula").await["total"], 0);
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
        sorted_ids(&r),
        sorted_ids_of(&["aula 2.mp4", "lecture aula.mkv"])
    );
    let (status, body) = ix.get("/search?q=aula&min_size=10&max_size=5", &t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pages of two, in rank order, together cover everything once.
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let r = ix
            .search(&t, &format!("q=aula&limit=2&offset={offset}"))
            .await;
        assert_eq!(r["total"], 4);
        seen.extend(ids(&r));
    }
    seen.sort();
    assert_eq!(
        seen,
        sorted_ids_of(&[
            "Aula Notes.PDF",
            "aula 1.mp4",
            "aula 2.mp4",
            "lecture aula.mkv"
        ])
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

/// Sends a search with raw (unencoded) parameters; returns status and body.
async fn search_raw(ix: &Index, token: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = ix
        .http
        .get(format!("{}/search", ix.base))
        .query(params)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.expect("every answer is JSON");
    if !status.is_success() {
        assert_error_shape(&body);
    }
    (status, body)
}

#[tokio::test]
async fn control_characters_syntax_and_long_queries_never_cause_500() {
    let (ix, t) = two_users().await;
    let modes = ["words", "substring", "exact"];
    let exts = [None, Some("mp4"), Some(".txt")];
    // Control characters: a clear 400 in every mode, with or without filters.
    let control = [
        "\0",
        "a\0b",
        "aula\0",
        "\0aula 1.mp4",
        "aula\u{1}",
        "a\nb",
        "a\rb",
        "a\tb",
        "\u{7f}",
        "\u{1b}[31m",
        "\u{9f}",
    ];
    for q in control {
        for mode in modes {
            for ext in exts {
                let mut params = vec![("q", q), ("mode", mode)];
                params.extend(ext.map(|e| ("ext", e)));
                let (status, body) = search_raw(&ix, &t, &params).await;
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "{q:?} {mode} {ext:?}: {body}"
                );
                assert_eq!(body["error"], "invalid_query");
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("control characters"),
                    "{body}"
                );
            }
        }
    }
    // NUL and other controls in the extension filter and in an id.
    for ext in ["mp\u{0}4", "\0", "mp4\n"] {
        let (status, body) = search_raw(&ix, &t, &[("q", "aula"), ("ext", ext)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ext:?}: {body}");
    }
    let (status, body) = search_raw(&ix, &t, &[("q", "\0"), ("mode", "id")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // FTS5 and SQL syntax: always a plain search.
    let long_syntax = "\"*(^-".repeat(51);
    let syntax = [
        "\"",
        "\"\"",
        "\"aula",
        "aula\"",
        "*",
        "aula*",
        "* aula",
        "NEAR",
        "NEAR(aula mp4)",
        "NEAR(aula mp4, 2)",
        "aula NEAR mp4",
        "-",
        "-aula",
        "aula -mp4",
        "^",
        "^aula",
        "(",
        ")",
        "(aula)",
        "((aula) OR (mp4))",
        "aula AND",
        "OR",
        "NOT aula",
        "a:b",
        "name:aula",
        "{name}: aula",
        "+",
        "aula + mp4",
        "'",
        "%",
        "_",
        "\\",
        "a\u{a0}b",
        "ü",
        "😀",
        long_syntax.as_str(),
    ];
    for q in syntax {
        for mode in modes {
            for ext in exts {
                let mut params = vec![("q", q), ("mode", mode)];
                params.extend(ext.map(|e| ("ext", e)));
                let (status, body) = search_raw(&ix, &t, &params).await;
                assert_eq!(status, StatusCode::OK, "{q:?} {mode} {ext:?}: {body}");
            }
        }
    }
    // Long queries: up to 256 characters (any script) searched, longer ones 400.
    let at_limit = ["a".repeat(256), "é".repeat(256), "aula ".repeat(51)];
    let too_long = ["a".repeat(257), "\"".repeat(5000), "a\0".repeat(4000)];
    for mode in modes {
        for q in &at_limit {
            let (status, body) = search_raw(&ix, &t, &[("q", q), ("mode", mode)]).await;
            assert_eq!(status, StatusCode::OK, "{mode}: {body}");
        }
        for q in &too_long {
            let (status, body) = search_raw(&ix, &t, &[("q", q), ("mode", mode)]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {body}");
        }
    }
    // Everything is still there.
    assert_eq!(ix.search(&t, "q=aula").await["total"], 4);
}

#[tokio::test]
async fn pages_reach_at_most_1000_results() {
    let (ix, t) = two_users().await;
    assert_eq!(
        ix.search(&t, "q=aula&offset=500&limit=500").await["total"],
        4
    );
    assert_eq!(ix.search(&t, "q=aula&offset=999&limit=1").await["total"], 4);
    for query in [
        "q=aula&offset=1000&limit=1",
        "q=aula&offset=996",
        "q=aula&offset=4294967295&limit=500",
        "q=aula&offset=100000000&mode=substring",
    ] {
        let (status, body) = ix.get(&format!("/search?{query}"), &t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"], "invalid_query");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("1000") && message.contains("narrow the search"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn one_users_loop_of_searches_cannot_starve_another_users_search() {
    // One search runs at a time and two wait: a shared line of three places.
    let ix = Arc::new(
        Index::start_with(|c| {
            c.search_slots = 1;
            c.search_queue = 2;
        })
        .await,
    );
    let mallory = ix.user("mallory").await;
    let alice = ix.user("alice").await;
    let many: Vec<_> = (0..4_000)
        .map(|i| json!({"name": format!("file number {i}.dat"), "size": i, "id": format!("{i:064x}")}))
        .collect();
    ix.join(&mallory, &Keypair::generate_ed25519(), json!(many))
        .await;

    // Mallory keeps 24 broad searches in flight for two seconds.
    let stop = Instant::now() + Duration::from_secs(2);
    let mut loops = Vec::new();
    for _ in 0..24 {
        let (ix, token) = (ix.clone(), mallory.clone());
        loops.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while Instant::now() < stop {
                let (status, body) = ix.get("/search?q=number&limit=500", &token).await;
                assert!(
                    status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
                    "{status}: {body}"
                );
                answers.push(status);
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Alice's searches, one after another, all get through meanwhile.
    let mut alice_ok = 0;
    while Instant::now() + Duration::from_millis(300) < stop {
        let (status, body) = ix.get("/search?q=number%201.dat", &alice).await;
        assert_eq!(status, StatusCode::OK, "alice's search #{alice_ok}: {body}");
        alice_ok += 1;
    }
    assert!(alice_ok >= 3, "alice searched only {alice_ok} times");
    let mut mallory_ok = 0;
    for l in loops {
        mallory_ok += l
            .await
            .unwrap()
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
    }
    // Mallory is slowed down, not locked out.
    assert!(mallory_ok > 0);
}

/// One simulated peer of the brute-force test and what the test knows of it.
struct SimPeer {
    user: usize,
    key: Keypair,
    peer_id: String,
    /// (name, id, size) as the index should list them.
    files: Vec<(String, String, u64)>,
    joined: bool,
    /// Sending heartbeats (a joined peer that stops times out).
    beating: bool,
}

/// The brute-force answer: sorted ids of online files matching `query`.
fn brute_force(peers: &[SimPeer], query: &BruteQuery) -> Vec<String> {
    let mut ids: Vec<String> = peers
        .iter()
        .filter(|p| p.joined && p.beating)
        .flat_map(|p| p.files.iter())
        .filter(|(name, _, size)| query.matches(name, *size))
        .map(|(_, id, _)| id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

enum BruteQuery {
    Words(Vec<&'static str>),
    Substring(&'static str),
    Exact(String),
    WordsWithExt(&'static str, &'static str),
    WordsAtLeast(&'static str, u64),
}

impl BruteQuery {
    fn matches(&self, name: &str, size: u64) -> bool {
        let lower = name.to_lowercase();
        let name_words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let word_ok = |q: &str| name_words.iter().any(|w| w.starts_with(q));
        match self {
            Self::Words(words) => {
                let (last, whole) = words.split_last().unwrap();
                whole.iter().all(|q| name_words.contains(q)) && word_ok(last)
            }
            Self::Substring(text) => lower.contains(&text.to_lowercase()),
            Self::Exact(text) => name == text,
            Self::WordsWithExt(q, ext) => word_ok(q) && lower.ends_with(&format!(".{ext}")),
            Self::WordsAtLeast(q, min) => word_ok(q) && size >= *min,
        }
    }

    fn params(&self) -> Vec<(String, String)> {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        match self {
            Self::Words(words) => vec![p("q", &words.join(" "))],
            Self::Substring(text) => vec![p("q", text), p("mode", "substring")],
            Self::Exact(text) => vec![p("q", text), p("mode", "exact")],
            Self::WordsWithExt(q, ext) => vec![p("q", q), p("ext", ext)],
            Self::WordsAtLeast(q, min) => vec![p("q", q), p("min_size", &min.to_string())],
        }
    }
}

#[tokio::test]
async fn results_match_a_brute_force_scan_while_peers_come_and_go() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const TIMEOUT: Duration = Duration::from_secs(2);
    let ix = Arc::new(Index::start_with(|c| c.peer_timeout = TIMEOUT).await);
    let mut tokens = Vec::new();
    for u in 0..4 {
        tokens.push(ix.user(&format!("user{u}")).await);
    }
    let vocabulary = [
        "aula", "lecture", "notes", "holiday", "report", "draft", "final", "song", "video", "aulas",
    ];
    let exts = ["mp4", "pdf", "txt", "mkv"];
    let mut rng = StdRng::seed_from_u64(14);
    let random_file = |rng: &mut StdRng| {
        let a = vocabulary[rng.gen_range(0..vocabulary.len())];
        let b = vocabulary[rng.gen_range(0..vocabulary.len())];
        let name = format!(
            "{a} {b} {}.{}",
            rng.gen_range(0..40),
            exts[rng.gen_range(0..exts.len())]
        );
        // A tenth of the names share their id with another name.
        let id = if rng.gen_bool(0.1) {
            id_of(&format!("{a} shared"))
        } else {
            id_of(&name)
        };
        // Sizes follow ids, as they do for real content hashes.
        let size = u64::from_str_radix(&id[..4], 16).unwrap() % 10_000 + 1;
        (name, id, size)
    };
    let mut peers: Vec<SimPeer> = (0..12)
        .map(|i| {
            let key = Keypair::generate_ed25519();
            SimPeer {
                user: i % 4,
                peer_id: key.public().to_peer_id().to_string(),
                key,
                files: Vec::new(),
                joined: false,
                beating: false,
            }
        })
        .collect();

    // Live peers send a heartbeat every 200 ms, ten to a timeout.
    let beating: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let beats = {
        let (ix, beating) = (ix.clone(), beating.clone());
        tokio::spawn(async move {
            loop {
                let live = beating.lock().unwrap().clone();
                for (token, peer) in live {
                    let (status, body) = ix
                        .call(
                            reqwest::Method::POST,
                            &format!("/peers/{peer}/heartbeat"),
                            Some(&token),
                            None,
                        )
                        .await;
                    assert!(
                        status.is_success() || status == StatusCode::CONFLICT,
                        "{status} {body}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let mut answered = 0;
    for round in 0..6 {
        let mut stopped_beating = false;
        let mut writes = Vec::new();
        for p in peers.iter_mut() {
            let token = tokens[p.user].clone();
            let ix = ix.clone();
            let roll = rng.gen_range(0..10);
            if !p.joined || roll < 3 {
                // Join (again): the whole list is replaced.
                p.files = (0..rng.gen_range(0..40))
                    .map(|_| random_file(&mut rng))
                    .collect();
                // The index keeps one entry per (id, name): the last size wins.
                let listed: Vec<Value> = p
                    .files
                    .iter()
                    .map(|(name, id, size)| json!({"name": name, "size": size, "id": id}))
                    .collect();
                p.joined = true;
                p.beating = true;
                let key = p.key.clone();
                writes.push(tokio::spawn(async move {
                    ix.join(&token, &key, json!(listed)).await;
                }));
            } else if roll < 5 {
                let more: Vec<_> = (0..5).map(|_| random_file(&mut rng)).collect();
                let listed: Vec<Value> = more
                    .iter()
                    .map(|(name, id, size)| json!({"name": name, "size": size, "id": id}))
                    .collect();
                p.files.extend(more);
                let path = format!("/peers/{}/files", p.peer_id);
                writes.push(tokio::spawn(async move {
                    let (status, body) = ix
                        .call(
                            reqwest::Method::POST,
                            &path,
                            Some(&token),
                            Some(json!({"files": listed})),
                        )
                        .await;
                    assert!(
                        status.is_success() || status == StatusCode::CONFLICT,
                        "{status} {body}"
                    );
                }));
            } else if roll < 7 && !p.files.is_empty() {
                let id = p.files[rng.gen_range(0..p.files.len())].1.clone();
                p.files.retain(|f| f.1 != id);
                let path = format!("/peers/{}/files/{id}", p.peer_id);
                writes.push(tokio::spawn(async move {
                    let (status, body) = ix
                        .call(reqwest::Method::DELETE, &path, Some(&token), None)
                        .await;
                    assert!(
                        status.is_success() || status == StatusCode::NOT_FOUND,
                        "{status} {body}"
                    );
                }));
            } else if roll == 7 {
                p.joined = false;
                p.beating = false;
                let path = format!("/peers/{}", p.peer_id);
                writes.push(tokio::spawn(async move {
                    let (status, body) = ix
                        .call(reqwest::Method::DELETE, &path, Some(&token), None)
                        .await;
                    assert!(status.is_success(), "{status} {body}");
                }));
            } else if roll == 8 && p.beating {
                // Goes silent: it must drop out of search by itself.
                p.beating = false;
                stopped_beating = true;
            }
        }
        // A peer that left and publishes gets 409 and lists nothing new.
        for p in peers.iter_mut().filter(|p| !p.joined) {
            p.files.clear();
        }
        for w in writes {
            w.await.unwrap();
        }
        *beating.lock().unwrap() = peers
            .iter()
            .filter(|p| p.beating)
            .map(|p| (tokens[p.user].clone(), p.peer_id.clone()))
            .collect();
        if stopped_beating {
            // The timeout, plus one check interval and a margin.
            tokio::time::sleep(TIMEOUT + Duration::from_millis(1500)).await;
        }

        let some_name = peers
            .iter()
            .filter(|p| p.beating)
            .flat_map(|p| p.files.first())
            .map(|f| f.0.clone())
            .next()
            .unwrap_or_else(|| "none.txt".into());
        let queries = [
            BruteQuery::Words(vec!["aula"]),
            BruteQuery::Words(vec!["au"]),
            BruteQuery::Words(vec!["notes", "lec"]),
            BruteQuery::Words(vec!["lec", "notes"]),
            BruteQuery::Words(vec!["song", "video", "mp4"]),
            BruteQuery::Substring("ula"),
            BruteQuery::Substring("s v"),
            BruteQuery::Substring("e"),
            BruteQuery::Exact(some_name),
            BruteQuery::WordsWithExt("report", "pdf"),
            BruteQuery::WordsAtLeast("holiday", 5_000),
        ];
        for query in &queries {
            let want = brute_force(&peers, query);
            let resp = ix
                .http
                .get(format!("{}/search", ix.base))
                .query(&query.params())
                .query(&[("limit", "500")])
                .bearer_auth(&tokens[0])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let got: Value = resp.json().await.unwrap();
            assert_eq!(
                sorted_ids(&got),
                want,
                "round {round}, query {:?}",
                query.params()
            );
            assert_eq!(
                got["total"],
                want.len(),
                "round {round}, query {:?}",
                query.params()
            );
            answered += usize::from(!want.is_empty());
        }
    }
    beats.abort();
    // The comparison is not vacuous: most queries found something.
    assert!(
        answered >= 40,
        "only {answered} of 60 queries found anything"
    );
}
