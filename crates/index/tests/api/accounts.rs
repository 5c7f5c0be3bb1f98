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
