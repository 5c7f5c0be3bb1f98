//! The sharer's upload gate as seen from outside: `--policy ask` with
//! accept, reject and timeout, and `--max-uploads` answering "busy".

mod support;

use serde_json::Value;
use support::*;

/// Waits until A lists exactly one pending request and returns it.
fn one_request(a: &Daemon) -> Value {
    wait_until("a pending request on A", WAIT, || {
        let list = a.cli_ok(&["requests"]);
        let list = list.as_array().expect("requests is a list");
        assert!(list.len() <= 1, "one download, one request: {list:?}");
        list.first().cloned()
    })
}

/// Under `--policy ask`, B's request waits for A's person; once accepted it completes.
#[test]
fn ask_policy_accepted_request_completes() {
    let sb = Sandbox::new();
    let size = 2 * MIB + 17;
    let id = write_random(&sb.share_dir("a").join("asked.bin"), size);
    let a = Daemon::start(&sb, "a", &["--policy", "ask"]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    assert_eq!(s(&a.status(), "policy"), "ask");

    let started = b.cli_ok(&["get", &a.addr(), "asked.bin", "--no-wait"]);
    let dl = started["id"].as_i64().expect("download number");
    let req = one_request(&a);
    assert_eq!(s(&req, "name"), "asked.bin");
    assert_eq!(n(&req, "size"), size);
    assert_eq!(s(&req, "file_id"), id);
    assert_eq!(s(&req, "peer"), b.peer_id(), "the request names who asks");
    // While nobody has answered, nothing is transferred.
    let waiting = b.download(dl);
    assert_eq!(s(&waiting, "state"), "active", "{waiting}");
    assert_eq!(n(&waiting, "verified_bytes"), 0);

    let number = n(&req, "id").to_string();
    let answer = a.cli_ok(&["accept", &number]);
    assert_eq!(answer["accepted"], true, "{answer}");
    assert_eq!(answer["granted"], true, "{answer}");

    let rec = b.wait_download_end(dl);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    let path = std::path::PathBuf::from(s(&rec, "path"));
    assert_eq!(b3_file(&path), id);
    assert!(same_bytes(&path, &a.share_dir.join("asked.bin")));
    let left = a.cli_ok(&["requests"]);
    assert_eq!(
        left.as_array().map(Vec::len),
        Some(0),
        "answered request is gone: {left}"
    );
    // The same number cannot be answered twice.
    assert!(
        !a.cli(&["accept", &number]).0,
        "accepting an answered request fails"
    );
}

/// A rejected request fails the download with "rejected by peer"; so does one nobody answers.
#[test]
fn ask_policy_rejected_and_timed_out_requests_fail() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("no.bin"), 100_000);
    write_random(&sb.share_dir("slow").join("late.bin"), 100_000);
    let a = Daemon::start(&sb, "a", &["--policy", "ask"]);
    let slow = Daemon::start(&sb, "slow", &["--policy", "ask", "--ask-timeout", "2"]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    slow.wait_shared(1);

    // Explicit rejection.
    let started = b.cli_ok(&["get", &a.addr(), "no.bin", "--no-wait"]);
    let dl = started["id"].as_i64().expect("download number");
    let req = one_request(&a);
    assert_eq!(s(&req, "name"), "no.bin");
    assert_eq!(n(&req, "size"), 100_000);
    let answer = a.cli_ok(&["reject", &n(&req, "id").to_string()]);
    assert_eq!(answer["accepted"], false, "{answer}");
    let rec = b.wait_download_end(dl);
    assert_eq!(s(&rec, "state"), "failed", "{rec}");
    let error = s(&rec, "error");
    assert!(error.contains("rejected by peer"), "error: {error}");
    assert!(
        b.finished_files().is_empty(),
        "nothing downloaded after a rejection"
    );

    // Nobody answers within --ask-timeout 2: rejected by timeout. `get` blocks until then.
    let out = b.run(&["get", &slow.addr(), "late.bin"]);
    assert!(!out.ok, "get must fail: {}", out.stdout);
    let rec = out.json();
    assert_eq!(s(&rec, "state"), "failed", "{rec}");
    let error = s(&rec, "error");
    assert!(error.contains("rejected by peer"), "error: {error}");
    assert!(
        error.contains("in time"),
        "error says nobody answered in time: {error}"
    );
    let cli_error = out.error_message().expect("the CLI prints an error");
    assert!(cli_error.contains("rejected by peer"), "{cli_error}");
    let left = slow.cli_ok(&["requests"]);
    assert_eq!(
        left.as_array().map(Vec::len),
        Some(0),
        "timed-out request is gone: {left}"
    );
    assert!(b.finished_files().is_empty());
}

/// With one upload slot taken by a running download, the next request is answered "busy".
#[test]
fn max_uploads_answers_busy() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("big.bin"), 32 * MIB);
    write_random(&sb.share_dir("a").join("small.txt"), 1000);
    let a = Daemon::start(&sb, "a", &["--max-uploads", "1", "--max-upload-rate", "4M"]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(2);
    let addr = a.addr();

    let started = b.cli_ok(&["get", &addr, "big.bin", "--no-wait"]);
    let dl = started["id"].as_i64().expect("download number");
    wait_until(
        "the big download to be running with verified bytes",
        WAIT,
        || {
            let d = b.download(dl);
            assert_eq!(s(&d, "state"), "active", "big download ended early: {d}");
            (d["running"] == true && n(&d, "verified_bytes") > 0).then_some(())
        },
    );
    assert_eq!(
        n(&a.status(), "uploads_running"),
        1,
        "A counts its one upload"
    );

    let out = b.run(&["get", &addr, "small.txt"]);
    assert!(
        !out.ok,
        "the second download must fail while the slot is taken"
    );
    let rec = out.json();
    assert_eq!(s(&rec, "state"), "failed", "{rec}");
    let error = s(&rec, "error");
    assert!(error.contains("busy"), "error: {error}");
    assert!(
        !b.finished_files().contains("small.txt"),
        "the refused file was not written"
    );
    // The running download is not disturbed by the refusal.
    let d = b.download(dl);
    assert_eq!(s(&d, "state"), "active", "{d}");
}
