//! `peershare index`, the real binary: it serves the REST API, keeps what it
//! acknowledged across a kill -9, and answers bad input with JSON errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_peershare");

/// An index process and the base address it printed.
struct IndexProcess {
    child: Child,
    addr: String,
}

impl IndexProcess {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["index", "--listen", "127.0.0.1:0", "--json", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("peershare index starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the index prints its address");
        let printed: Value = serde_json::from_str(&line).expect("JSON on the first line");
        let url = printed["url"].as_str().expect("a url").to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Self { child, addr }
    }

    /// Sends one HTTP request and returns (status, JSON body).
    fn request(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect to the index");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().expect("a status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn login(&self, name: &str, password: &str) -> (u16, Value) {
        let body = json!({ "name": name, "password": password }).to_string();
        self.request("POST", "/api/v1/sessions", None, &body)
    }
}

impl Drop for IndexProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn index_binary_serves_accounts_and_keeps_them_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexProcess::start(dir.path());

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

    drop(index); // kill -9
    let index = IndexProcess::start(dir.path());
    assert_eq!(
        index.login("alice", "correct horse").0,
        201,
        "the account survived"
    );
    assert_eq!(index.login("alice", "wrong").0, 401);
}
