//! The sharer's upload gate as seen from outside: `--policy ask` with
//! accept, reject and timeout, `--max-upload-peers` answering "busy", and
//! the upload slots (`--max-uploads`) taken in turn by every peer served.

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

    let dl = b.start_download(&[&a.addr(), "asked.bin"]);
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
    let b = Daemon::start(&sb, "b", &["--source-patience", "2"]);
    a.wait_shared(1);
    slow.wait_shared(1);

    // Explicit rejection.
    let dl = b.start_download(&[&a.addr(), "no.bin"]);
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

/// With A's one upload slot taken, B's next download is queued (not failed), says why
/// and when it tries again, and completes once the slot is free; the first, paused to
/// free the slot, resumes from its verified pieces.
#[test]
fn busy_source_queues_then_completes() {
    let sb = Sandbox::new();
    let big_id = write_random(&sb.share_dir("a").join("big.bin"), 32 * MIB);
    let small_id = write_random(&sb.share_dir("a").join("small.txt"), 1000);
    let a = Daemon::start(
        &sb,
        "a",
        &["--max-upload-peers", "1", "--max-upload-rate", "4M"],
    );
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(2);
    let addr = a.addr();

    let big = b.start_download(&[&addr, "big.bin"]);
    b.wait_download(big, "to have verified bytes", |d| {
        assert_eq!(s(d, "state"), "active", "big download ended early: {d}");
        d["running"] == true && n(d, "verified_bytes") > 0
    });
    assert_eq!(
        n(&a.status(), "uploads_running"),
        1,
        "A counts its one upload"
    );

    let small = b.start_download(&[&addr, "small.txt"]);
    let queued = b.wait_download(small, "to be queued", |d| d["state"] == "queued");
    assert_eq!(
        queued["running"], true,
        "a queued download keeps its task: {queued}"
    );
    let reason = s(&queued, "error");
    assert!(
        reason.contains("busy") && reason.contains("next try"),
        "{reason}"
    );
    assert!(queued["next_try_ms"].as_i64().is_some(), "{queued}");
    assert!(!b.finished_files().contains("small.txt"));
    let d = b.download(big);
    assert_eq!(
        s(&d, "state"),
        "active",
        "the running download is not disturbed: {d}"
    );

    // Pausing the big download frees A's slot: the queued one gets it on its next try.
    let paused = b.cli_ok(&["downloads", "pause", &big.to_string()]);
    assert_eq!(s(&paused, "state"), "paused", "{paused}");
    let kept = n(&paused, "verified_bytes");
    assert!(
        kept > 0 && kept < 32 * MIB,
        "verified pieces kept: {paused}"
    );
    assert!(
        b.part_path(&big_id).exists(),
        "a paused download keeps its partial file"
    );
    let rec = b.wait_download_end(small);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert_eq!(b3_file(std::path::Path::new(&s(&rec, "path"))), small_id);

    let resumed = b.cli_ok(&["downloads", "resume", &big.to_string()]);
    assert_eq!(resumed["running"], true, "{resumed}");
    let rec = b.wait_download_end(big);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert!(
        n(&rec, "fetched_bytes") <= 32 * MIB - kept,
        "the resumed run fetched only what was missing: {rec}"
    );
    assert_eq!(b3_file(std::path::Path::new(&s(&rec, "path"))), big_id);
}

/// `peershare events` shows a request waiting for the person, then how it ended.
#[test]
fn a_waiting_request_is_pushed_as_an_event() {
    use std::io::{BufRead, BufReader};
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("asked.bin"), 100_000);
    let a = Daemon::start(&sb, "a", &["--policy", "ask"]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    let mut watcher = a.spawn_client(&["events"]);
    let mut lines = BufReader::new(watcher.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut said = String::new();
    BufReader::new(watcher.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert!(said.contains("listening"), "{said}");
    let dl = b.start_download(&[&a.addr(), "asked.bin"]);
    let waiting = lines
        .by_ref()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
        .find(|e| e["type"] == "request_waiting")
        .expect("a request_waiting event");
    assert_eq!(s(&waiting["request"], "name"), "asked.bin", "{waiting}");
    assert_eq!(s(&waiting["request"], "peer"), b.peer_id());
    let number = waiting["request"]["id"].to_string();
    a.cli_ok(&["accept", &number]);
    let ended = lines
        .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
        .find(|e| e["type"] == "request_ended")
        .expect("a request_ended event");
    assert_eq!(ended["id"].to_string(), number);
    assert_eq!(ended["accepted"], true, "{ended}");
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(s(&b.wait_download_end(dl), "state"), "done");
}

/// A download that meets "busy" after a restart stays queued, and shows the
/// verified bytes already on disk, not 0 %.
#[test]
fn a_resumed_download_that_meets_busy_stays_queued_with_its_verified_bytes() {
    let sb = Sandbox::new();
    // c's download holds a's only slot for about 12 s, longer than b needs to restart.
    write_random(&sb.share_dir("a").join("big.bin"), 48 * MIB);
    let a = Daemon::start(
        &sb,
        "a",
        &["--max-upload-peers", "1", "--max-upload-rate", "4M"],
    );
    let mut b = Daemon::start(&sb, "b", &[]);
    let c = Daemon::start(&sb, "c", &[]);
    a.wait_shared(1);
    let addr = a.addr();

    // b gets part of the file, then pauses.
    let dl = b.start_download(&[&addr, "big.bin"]);
    b.wait_download(dl, "to have verified bytes", |d| {
        n(d, "verified_bytes") >= 2 * MIB
    });
    let kept = n(
        &b.cli_ok(&["downloads", "pause", &dl.to_string()]),
        "verified_bytes",
    );
    assert!(kept > 0);

    // c takes a's only slot; b, resumed, is queued; b restarts and is queued again.
    let c_dl = c.start_download(&[&addr, "big.bin"]);
    c.wait_download(c_dl, "to be running", |d| n(d, "verified_bytes") > 0);
    b.cli_ok(&["downloads", "resume", &dl.to_string()]);
    b.wait_download(dl, "to be queued", |d| d["state"] == "queued");
    b.restart();
    let after = b.wait_download(dl, "to be queued after the restart", |d| {
        d["state"] == "queued"
    });
    assert_eq!(
        n(&after, "verified_bytes"),
        kept,
        "the verified bytes on disk are shown: {after}"
    );
    assert_eq!(after["running"], true, "it keeps trying: {after}");
}

/// One upload slot and three downloaders: the slot is taken one piece at a
/// time, in turn, so every downloader makes progress at once (none is
/// told "busy", none waits for another to finish).
#[test]
fn one_upload_slot_is_shared_in_turn_by_every_downloader() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("big.bin"), 24 * MIB);
    let a = Daemon::start(&sb, "a", &["--max-uploads", "1", "--max-upload-rate", "4M"]);
    a.wait_shared(1);
    let addr = a.addr();
    let downloaders: Vec<Daemon> = ["b", "c", "d"]
        .iter()
        .map(|name| Daemon::start(&sb, name, &[]))
        .collect();
    let started: Vec<i64> = downloaders
        .iter()
        .map(|d| d.start_download(&[&addr, "big.bin"]))
        .collect();
    // At 4 MB/s shared, one downloader alone would need 6 s for the file;
    // all three have pieces long before the first could finish.
    wait_until("every downloader to have verified pieces", WAIT, || {
        let progress: Vec<serde_json::Value> = downloaders
            .iter()
            .zip(&started)
            .map(|(d, id)| d.download(*id))
            .collect();
        for p in &progress {
            assert_eq!(s(p, "state"), "active", "nobody is queued or done yet: {p}");
        }
        progress
            .iter()
            .all(|p| n(p, "verified_bytes") >= 2 * MIB)
            .then_some(())
    });
    assert_eq!(n(&a.status(), "uploads_running"), 3, "{}", a.status());
    for (d, id) in downloaders.iter().zip(&started) {
        assert_eq!(s(&d.wait_download_end(*id), "state"), "done");
    }
}
