//! The local API answers every malformed request with its JSON error shape
//! (`{"code","message"}`), and `up` refuses a non-loopback `--api`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{free_port, run_refusing, Daemon, Sandbox, BIN};

/// Sends one request; returns (status, body text).
fn send(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head += &format!("Content-Type: {t}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body); // the daemon may answer 413 before reading it all
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[test]
fn malformed_requests_answer_json_errors() {
    let sb = Sandbox::new();
    let a = Daemon::start(&sb, "a", &[]);
    let addr = std::fs::read_to_string(a.data_dir.join("api.addr")).unwrap();
    let addr = addr.trim();
    let token = std::fs::read_to_string(a.data_dir.join("api-token")).unwrap();
    let token = token.trim();
    let json = Some("application/json");
    let big = vec![b'a'; 2 << 20];
    // (what, method, path, content type, body, expected status)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        (
            "bad JSON",
            "POST",
            "/api/v1/contacts",
            json,
            b"{not json",
            400,
        ),
        (
            "bad query",
            "GET",
            "/api/v1/search?q=x&min_size=lots",
            None,
            b"",
            400,
        ),
        ("bad path", "GET", "/api/v1/downloads/abc", None, b"", 400),
        (
            "unknown route",
            "GET",
            "/api/v1/no-such-thing",
            None,
            b"",
            404,
        ),
        ("wrong method", "DELETE", "/api/v1/status", None, b"", 405),
        ("too large", "POST", "/api/v1/contacts", json, &big, 413),
        (
            "not JSON",
            "POST",
            "/api/v1/contacts",
            Some("text/plain"),
            b"{}",
            415,
        ),
    ];
    for (what, method, path, content_type, body, want) in cases {
        let (status, text) = send(addr, method, path, token, content_type, body);
        assert_eq!(status, want, "{what}: {text}");
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: the answer is not JSON ({e}): {text:?}"));
        assert!(value["code"].is_string(), "{what}: no code in {value}");
        let message = value["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: no message in {value}");
    }
}

#[test]
fn up_refuses_a_non_loopback_api_address() {
    let sb = Sandbox::new();
    let api = format!("0.0.0.0:{}", free_port());
    let out = run_refusing(
        Command::new(BIN)
            .args(["up", "--no-index", "--no-mdns", "--api", &api, "--data-dir"])
            .arg(sb.dir("a"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--downloads"])
            .arg(sb.dir("dl")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loopback") && stderr.contains("--ui-listen"),
        "the refusal says why and what to use instead: {stderr}"
    );
}

/// Found by bench/api_schema.sh (schemathesis): serde reads a struct from an
/// array of its fields, so `[null, null]` was taken as a limits change; and
/// `2000000.0`, an integer to JSON Schema, was refused for an integer field.
#[test]
fn array_bodies_are_refused_and_whole_floats_are_integers() {
    let sb = Sandbox::new();
    let a = Daemon::start(&sb, "a", &["--max-upload-rate", "1M"]);
    let addr = std::fs::read_to_string(a.data_dir.join("api.addr")).unwrap();
    let addr = addr.trim();
    let token = std::fs::read_to_string(a.data_dir.join("api-token")).unwrap();
    let token = token.trim();
    let json = Some("application/json");
    let limits = |addr: &str| -> Value {
        let (status, text) = send(addr, "GET", "/api/v1/limits", token, None, b"");
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    let before = limits(addr);
    assert!(before["max_upload_rate"].as_u64().is_some(), "{before}");

    let (status, text) = send(addr, "POST", "/api/v1/limits", token, json, b"[null, null]");
    assert_eq!(status, 422, "{text}");
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["code"], "invalid_body", "{value}");
    assert_eq!(limits(addr), before, "the refused body changed nothing");

    let body = br#"{"max_upload_rate": 2000000.0, "max_download_rate": null}"#;
    let (status, text) = send(addr, "POST", "/api/v1/limits", token, json, body);
    assert_eq!(status, 200, "{text}");
    assert_eq!(limits(addr)["max_upload_rate"], 2_000_000);

    let body = br#"{"max_upload_rate": 1.5, "max_download_rate": null}"#;
    let (status, text) = send(addr, "POST", "/api/v1/limits", token, json, body);
    assert_eq!(status, 422, "a fraction is no rate: {text}");
}
