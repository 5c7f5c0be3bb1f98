use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{eventually, Index, PASSWORD};

#[tokio::test]
async fn register_login_logout_unregister() {
    let ix = Index::start().await;
    assert_eq!(ix.register("alice", "s3cret").await, StatusCode::CREATED);
    let (status, session) = ix.login("alice", "s3cret").await;
    assert_eq!(status, StatusCode::CREATED);
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(session["expires_at"].as_i64().unwrap() > 0);

    // The token works, then logout revokes it.
    assert_eq!(ix.get("/users", &token).await.0, StatusCode::OK);
    let (status, _) = ix
        .call(Method::DELETE, "/sessions/current", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = ix.get("/users", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    // Unregister removes the account: the name is free and the old password fails.
    let (_, session) = ix.login("alice", "s3cret").await;
    let token = session["token"].as_str().unwrap().to_string();
    let (status, _) = ix
        .call(Method::DELETE, "/users/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ix.get("/users", &token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ix.login("alice", "s3cret").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ix.register("alice", "other").await, StatusCode::CREATED);
}

#[tokio::test]
async fn taken_name_is_409_and_changes_nothing() {
    let ix = Index::start().await;
    assert_eq!(ix.register("bob", "first").await, StatusCode::CREATED);
    let (status, body) = ix
        .call(
            Method::POST,
            "/users",
            None,
            Some(json!({"name": "bob", "password": "second"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "name_taken");
    assert_eq!(ix.login("bob", "first").await.0, StatusCode::CREATED);
    assert_eq!(ix.login("bob", "second").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_password_is_401_then_rate_limited() {
    let ix = Index::start().await;
    assert_eq!(ix.register("carol", PASSWORD).await, StatusCode::CREATED);
    for _ in 0..5 {
        let (status, body) = ix.login("carol", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "bad_credentials");
    }
    // Even the right password is refused while the limit holds.
    let body = rate_limited(&ix, "/sessions", "carol").await;
    assert!(body["message"].as_str().unwrap().contains("try again in"));

    // Another name from the same address is not limited yet.
    assert_eq!(ix.register("dave", PASSWORD).await, StatusCode::CREATED);
    assert_eq!(ix.login("dave", PASSWORD).await.0, StatusCode::CREATED);
    // Unknown names fail like wrong passwords.
    assert_eq!(ix.login("nobody", "x").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_token_is_401() {
    let ix = Index::start_with(|c| c.token_lifetime = Duration::from_secs(1)).await;
    assert_eq!(ix.register("erin", PASSWORD).await, StatusCode::CREATED);
    let started = Instant::now();
    let (_, session) = ix.login("erin", PASSWORD).await;
    let token = session["token"].as_str().unwrap().to_string();
    let first = ix.get("/users", &token).await.0;
    assert!(
        first == StatusCode::OK || started.elapsed() >= Duration::from_secs(1),
        "a fresh token was refused: {first}"
    );
    let expired = eventually(Duration::from_secs(10), || async {
        ix.get("/users", &token).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(expired, "the token never expired");
    let (_, body) = ix.get("/users", &token).await;
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn missing_or_garbage_tokens_are_401() {
    let ix = Index::start().await;
    let (status, body) = ix.call(Method::GET, "/users", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "missing_token");
    assert_eq!(
        ix.get("/users", "deadbeef").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = ix
        .call(Method::DELETE, "/users/me", Some("' OR 1=1 --"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let ix = Index::start_with(|c| c.registrations_per_minute = 3).await;
    for i in 0..3 {
        let status = ix.register(&format!("user{i}"), PASSWORD).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    rate_limited(&ix, "/users", "user3").await;
    // The refused account does not exist; the others work and logins are not limited.
    assert_eq!(
        ix.login("user3", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ix.login("user0", PASSWORD).await.0, StatusCode::CREATED);
    // A taken name is still told apart (no password hashed for it).
    assert_eq!(ix.register("user1", PASSWORD).await, StatusCode::CONFLICT);
}

/// Posts `name` with the test password to `path`, checks the answer is a 429
/// with a Retry-After within the minute, and returns its body.
async fn rate_limited(ix: &Index, path: &str, name: &str) -> serde_json::Value {
    let resp = ix
        .http
        .post(format!("{}{path}", ix.base))
        .json(&json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&retry));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    body
}

/// A client whose requests come from `ip` (any 127.x.y.z reaches the index on 127.0.0.1).
fn client_from(ip: &str) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_burst_of_guesses_is_counted_before_checking_and_locks_only_the_guessers_address() {
    let ix = Index::start().await;
    assert_eq!(ix.register("victim", PASSWORD).await, StatusCode::CREATED);
    let guesses = (0..64).map(|i| {
        let ix = &ix;
        async move { ix.login("victim", &format!("guess {i}")).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        checked <= 5,
        "{checked} of 64 concurrent guesses were checked"
    );
    for (status, body) in &answers {
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(status),
            "{status}: {body}"
        );
    }
    // The guesser's address is locked out, even with the right password...
    rate_limited(&ix, "/sessions", "victim").await;
    // ...but the real user at their own address still logs in.
    let own = client_from("127.0.0.2")
        .post(format!("{}/sessions", ix.base))
        .json(&json!({"name": "victim", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn password_hashing_runs_in_a_bounded_pool_and_the_rest_is_told_to_retry() {
    let ix = Index::start().await;
    let registrations = (0..200).map(|i| {
        let ix = &ix;
        async move {
            let resp = ix
                .http
                .post(format!("{}/users", ix.base))
                .json(&json!({"name": format!("crowd{i}"), "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let retry = resp.headers().get("retry-after").cloned();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, retry, body)
        }
    });
    let answers = futures::future::join_all(registrations).await;
    let mut busy = 0;
    for (status, retry, body) in &answers {
        match *status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(body["error"], "busy", "{body}");
                assert!(retry.is_some(), "503 without Retry-After: {body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        busy > 0,
        "200 concurrent registrations were all hashed at once"
    );
    // A turned-away name was not created and can be registered later.
    let turned_away = answers
        .iter()
        .position(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .unwrap();
    let name = format!("crowd{turned_away}");
    assert_eq!(ix.register(&name, PASSWORD).await, StatusCode::CREATED);
}

#[tokio::test]
async fn admin_rights_stay_with_the_account_not_the_name() {
    let mut ix = Index::start_with(|c| c.admins = vec!["alice".into()]).await;
    let alice = ix.user("alice").await;
    assert_eq!(ix.get("/audit", &alice).await.0, StatusCode::OK);
    let (status, _) = ix
        .call(Method::DELETE, "/users/me", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Mallory cannot take the deleted admin's name.
    let (status, body) = ix
        .call(
            Method::POST,
            "/users",
            None,
            Some(json!({"name": "alice", "password": "mallory"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("reserved"),
        "{body}"
    );
    assert_eq!(
        ix.login("alice", "mallory").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Still reserved after a restart with the same settings.
    ix.restart().await;
    assert_eq!(ix.register("alice", "mallory").await, StatusCode::FORBIDDEN);

    // The operator drops the name for one run: it is an ordinary name then...
    ix.config.admins = vec![];
    ix.restart().await;
    let plain = ix.user("alice").await;
    assert_eq!(ix.get("/audit", &plain).await.0, StatusCode::FORBIDDEN);
    // ...and adding it back binds it to the account holding it now.
    ix.config.admins = vec!["alice".into()];
    ix.restart().await;
    let (_, session) = ix.login("alice", PASSWORD).await;
    let again = session["token"].as_str().unwrap();
    assert_eq!(ix.get("/audit", again).await.0, StatusCode::OK);
}

#[tokio::test]
async fn look_alike_names_are_one_name_or_refused() {
    let ix = Index::start().await;
    let token = ix.user("alice").await;
    let register = |name: &'static str| {
        let ix = &ix;
        async move {
            ix.call(
                Method::POST,
                "/users",
                None,
                Some(json!({"name": name, "password": "mallory"})),
            )
            .await
        }
    };
    for (name, why) in [
        ("alice\u{200b}", "zero-width space"),
        ("\u{202e}alice", "right-to-left override"),
        ("ali\u{441}e", "Cyrillic es among Latin letters"),
        ("\u{430}lice", "Cyrillic a among Latin letters"),
    ] {
        let (status, body) = register(name).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["error"], "invalid_name", "{why}: {body}");
    }
    // A wholly Cyrillic look-alike of an existing name.
    let (status, body) = register("\u{430}\u{4cf}\u{456}\u{441}\u{435}").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("looks like"),
        "{body}"
    );

    // Two Unicode forms of alicé are one name, found by either form.
    let (status, body) = ix
        .call(
            Method::POST,
            "/users",
            None,
            Some(json!({"name": "alic\u{e9}", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "alic\u{e9}");
    assert_eq!(register("alice\u{301}").await.0, StatusCode::CONFLICT);
    let (status, session) = ix.login("alice\u{301}", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["name"], "alic\u{e9}");
    let (status, body) = ix.get("/users/alice%CC%81/peers", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "alic\u{e9}");
    // Plain names are untouched.
    assert_eq!(ix.login("alice", PASSWORD).await.0, StatusCode::CREATED);
}
