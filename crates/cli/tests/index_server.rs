//! `peershare index`, the real binary: it serves the REST API, keeps what it
//! acknowledged across a kill -9, and answers bad input with JSON errors.

mod support;

use serde_json::json;
use support::{IndexProcess, Sandbox};

#[test]
fn index_binary_serves_accounts_and_keeps_them_across_kill_9() {
    let sandbox = Sandbox::new();
    let mut index = IndexProcess::start(&sandbox, &[]);

    let register = json!({ "name": "alice", "password": "correct horse" }).to_string();
    let (status, _) = index.request("POST", "/api/v1/users", None, &register);
    assert_eq!(status, 201);
    let (status, body) = index.request("POST", "/api/v1/users", None, &register);
    assert_eq!(status, 409, "a taken name is refused: {body}");
    assert!(body["message"].is_string());

    let (status, body) = index.login("alice", "correct horse");
    assert_eq!(status, 201);
    let token = body["token"].as_str().expect("a token").to_string();
    let (status, _) = index.request("GET", "/api/v1/users?all=true", Some(&token), "");
    assert_eq!(status, 200);

    let (status, body) = index.request("POST", "/api/v1/users", None, "{not json");
    assert!(
        (400..500).contains(&status),
        "malformed JSON is a 4xx, got {status}"
    );
    assert!(body["error"].is_string(), "errors are JSON: {body}");

    let (status, spec) = index.request("GET", "/api/v1/openapi.json", None, "");
    assert_eq!(status, 200);
    assert!(
        spec["paths"]["/api/v1/search"].is_object(),
        "the OpenAPI document lists search"
    );

    index.restart(); // kill -9, then the same port and folder

    assert_eq!(
        index.login("alice", "correct horse").0,
        201,
        "the account survived"
    );
    assert_eq!(index.login("alice", "wrong").0, 401);
}
