//! Hostile or broken input from the network, the disk and the local
//! machine: dangerous names, paths instead of names, files changed behind
//! the sharer's back, a sharer serving corrupt bytes, requests to the local
//! API without the token or from a foreign Host, and junk on the data port.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Names from the network are never paths: `..\..\evil` and a control character
/// are cleaned, and the files land inside the downloads folder and nowhere else.
#[test]
fn hostile_remote_names_stay_inside_downloads() {
    let sb = Sandbox::new();
    let evil_name = "..\\..\\evil";
    let bell_name = "bad\u{7}name.txt";
    let evil_id = write_random(&sb.share_dir("a").join(evil_name), 4096);
    let bell_id = write_random(&sb.share_dir("a").join(bell_name), 5000);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(2);
    let addr = a.addr();

    let files = b.browse(&addr);
    assert_eq!(
        s(entry(&files, evil_name), "id"),
        evil_id,
        "browse shows the raw name"
    );
    assert_eq!(s(entry(&files, bell_name), "id"), bell_id);

    let sandbox_before = list_dir(sb.path());
    let b_base = b.downloads.parent().unwrap().to_path_buf();
    let b_base_before = list_dir(&b_base);

    let rec = b.cli_ok(&["get", &addr, evil_name]);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert_eq!(s(&rec, "name"), "evil");
    let rec = b.cli_ok(&["get", &addr, bell_name]);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert_eq!(s(&rec, "name"), "badname.txt");

    let evil = b.downloads.join("evil");
    let bell = b.downloads.join("badname.txt");
    assert_eq!(b3_file(&evil), evil_id);
    assert_eq!(b3_file(&bell), bell_id);
    assert_eq!(b.finished_files(), set(&["evil", "badname.txt"]));

    // Nothing was created beside or above the downloads folder.
    assert_eq!(
        list_dir(&b_base),
        b_base_before,
        "beside B's downloads folder"
    );
    assert_eq!(list_dir(sb.path()), sandbox_before, "in the sandbox root");
    assert_eq!(list_dir(&b_base), set(&["data", "downloads", "share"]));
    for dir in [sb.path().to_path_buf(), b_base.clone(), b.data_dir.clone()] {
        let names = list_dir(&dir);
        assert!(
            !names
                .iter()
                .any(|n| n.contains("evil") || n.contains("name.txt")),
            "stray file in {}: {names:?}",
            dir.display()
        );
    }
}

/// Paths are never accepted in place of a shared name or id.
#[test]
fn paths_and_unshared_ids_are_refused() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("ok.bin"), 1000);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    let addr = a.addr();
    let before = list_tree(&b.downloads);

    let passwd_id = b3_file(std::path::Path::new("/etc/passwd"));
    let attempts = [
        "../../etc/passwd".to_string(),
        "/etc/passwd".to_string(),
        "../ok.bin".to_string(),
        passwd_id.clone(),
        passwd_id.to_uppercase(),
    ];
    for wanted in &attempts {
        let out = b.run(&["get", &addr, wanted]);
        assert!(!out.ok, "get {wanted:?} must fail: {}", out.stdout);
        let error = out.error_message().unwrap_or_default().to_lowercase();
        assert!(
            error.contains("not found") || error.contains("no file"),
            "get {wanted:?}: {error}"
        );
    }
    assert_eq!(
        list_tree(&b.downloads),
        before,
        "nothing new in B's downloads folder"
    );
    let list = b.cli_ok(&["downloads"]);
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "no download records: {list}"
    );
}

/// A file edited in place after hashing (same size) is not served under its old id.
#[test]
fn file_changed_after_hashing_is_not_served() {
    let sb = Sandbox::new();
    let path = sb.share_dir("a").join("changing.bin");
    let old_id = write_random(&path, 3 * MIB);
    let a = Daemon::start(&sb, "a", &["--no-watch"]);
    let b = Daemon::start(&sb, "b", &["--source-patience", "2"]);
    a.wait_shared(1);
    let addr = a.addr();
    assert_eq!(s(entry(&b.browse(&addr), "changing.bin"), "id"), old_id);

    let old_mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Overwrite until the file system records a new mtime (its clock may be coarse).
    wait_until("the edit to change the file's mtime", WAIT, || {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(MIB + 123)).unwrap();
        f.write_all(b"edited after hashing").unwrap();
        f.sync_all().unwrap();
        (std::fs::metadata(&path).unwrap().modified().unwrap() != old_mtime).then_some(())
    });
    drop(f);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        3 * MIB,
        "same size"
    );
    assert_ne!(b3_file(&path), old_id);

    let out = b.run(&["get", &addr, &old_id]);
    assert!(!out.ok, "get by the old id must fail: {}", out.stdout);
    let rec = out.json();
    assert_eq!(s(&rec, "state"), "failed", "{rec}");
    let error = s(&rec, "error");
    assert!(
        error.contains("no longer") || error.contains("changed"),
        "the error says the file is not shared as it was: {error}"
    );
    assert!(
        b.finished_files().is_empty(),
        "no finished file: {:?}",
        b.finished_files()
    );
}

/// A sharer whose file changed without its size or mtime changing serves corrupt
/// bytes; the downloader detects it and never turns them into a file.
#[test]
fn corrupt_data_from_a_lying_sharer_never_becomes_a_file() {
    let sb = Sandbox::new();
    let path = sb.share_dir("a").join("lie.bin");
    let id = write_random(&path, 4 * MIB);
    let a = Daemon::start(&sb, "a", &["--no-watch"]);
    let b = Daemon::start(&sb, "b", &["--source-patience", "2"]);
    a.wait_shared(1);
    let addr = a.addr();
    assert_eq!(s(entry(&b.browse(&addr), "lie.bin"), "id"), id);

    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open(&path)
            .unwrap();
        let at = 2 * MIB + 4321;
        let mut buf = [0u8; 64];
        f.read_exact_at(&mut buf, at).unwrap();
        for byte in &mut buf {
            *byte ^= 0xA5;
        }
        f.write_all_at(&buf, at).unwrap();
        f.sync_all().unwrap();
        f.set_modified(mtime).unwrap();
    }
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_ne!(b3_file(&path), id, "the file really is different now");

    let out = b.run(&["get", &addr, "lie.bin"]);
    assert!(!out.ok, "get of corrupt data must fail: {}", out.stdout);
    let rec = out.json();
    assert_eq!(s(&rec, "state"), "failed", "{rec}");
    let error = s(&rec, "error");
    assert!(
        error.contains("does not match its hash"),
        "the error names the mismatch: {error}"
    );
    assert!(
        b.finished_files().is_empty(),
        "no finished file: {:?}",
        b.finished_files()
    );
}

/// Sends one raw HTTP/1.1 request; returns (status code, body).
fn http_get(addr: &str, host: &str, token: Option<&str>, origin: Option<&str>) -> (u16, String) {
    http_get_path("/api/v1/status", addr, host, token, origin)
}

fn http_get_path(
    path: &str,
    addr: &str,
    host: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    if let Some(o) = origin {
        req += &format!("Origin: {o}\r\n");
    }
    req += "\r\n";
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the API's answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One or more chunks: keep the data lines.
        body.split("\r\n")
            .collect::<Vec<_>>()
            .chunks(2)
            .filter_map(|c| c.get(1).copied())
            .collect::<String>()
    } else {
        body.to_string()
    };
    (code, body)
}

/// The local API needs the token and a loopback Host/Origin.
#[test]
fn local_api_requires_token_and_loopback_host() {
    let sb = Sandbox::new();
    let a = Daemon::start(&sb, "a", &[]);
    let addr = std::fs::read_to_string(a.data_dir.join("api.addr")).unwrap();
    let addr = addr.trim();
    let token = std::fs::read_to_string(a.data_dir.join("api-token")).unwrap();
    let token = token.trim();
    assert!(!token.is_empty());

    let (code, body) = http_get(addr, addr, None, None);
    assert_eq!(code, 401, "no token: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(v["code"], "unauthorized", "{v}");
    assert!(v["message"].is_string(), "{v}");
    assert!(v.get("peer_id").is_none());

    let (code, _) = http_get(addr, addr, Some("not-the-token"), None);
    assert_eq!(code, 401, "wrong token");

    let (code, body) = http_get(addr, "evil.example", Some(token), None);
    assert_eq!(code, 403, "foreign Host: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(v["code"], "forbidden", "{v}");
    assert!(v.get("peer_id").is_none());

    let (code, body) = http_get(addr, addr, Some(token), Some("http://evil.example"));
    assert_eq!(code, 403, "foreign Origin: {body}");

    let (code, body) = http_get(addr, addr, Some(token), None);
    assert_eq!(code, 200, "good token, loopback Host: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON status");
    assert_eq!(s(&v, "peer_id"), a.peer_id());

    let port = addr.rsplit_once(':').unwrap().1;
    let (code, _) = http_get(addr, &format!("localhost:{port}"), Some(token), None);
    assert_eq!(code, 200, "localhost is loopback too");

    // The served OpenAPI document is the one checked in as docs/local-api.json.
    let (code, body) = http_get_path("/api/v1/openapi.json", addr, addr, Some(token), None);
    assert_eq!(code, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).expect("JSON document");
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/local-api.json");
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(docs).unwrap()).unwrap();
    assert_eq!(served, checked_in, "the daemon serves docs/local-api.json");

    let (code, body) = http_get_path("/api/v1/nope", addr, addr, Some(token), None);
    assert_eq!(code, 404);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(v["code"], "no_such_endpoint", "{v}");
}

/// Garbage on the data port neither kills the sharer nor blocks other downloads.
#[test]
fn junk_on_the_data_port_is_survived() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("after.bin"), 3 * MIB + 1);
    let mut a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    let port = n(&a.status(), "data_port");
    assert!(port > 0);
    let target = format!("127.0.0.1:{port}");

    // 64 KiB of garbage, then close.
    let mut junk = vec![0u8; 64 * 1024];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut junk);
    {
        let mut sock = TcpStream::connect(&target).expect("connect to the data port");
        let _ = sock.write_all(&junk); // the sharer may hang up early
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
    // Something that looks like a TLS record header, then garbage.
    {
        let mut sock = TcpStream::connect(&target).expect("connect to the data port");
        let mut hello = vec![0x16, 0x03, 0x01, 0xff, 0xff];
        hello.extend_from_slice(&junk[..4096]);
        let _ = sock.write_all(&hello);
    }
    // And a connection that says nothing and stays open during the download.
    let idle = TcpStream::connect(&target).expect("connect to the data port");

    assert!(a.is_alive(), "A survived the junk");
    let rec = b.cli_ok(&["get", &a.addr(), "after.bin"]);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    let path = std::path::PathBuf::from(s(&rec, "path"));
    assert_eq!(b3_file(&path), id);
    assert!(a.is_alive(), "A still alive after serving");
    drop(idle);
}
