//! Crashes in the middle of a transfer: the downloader or the sharer is
//! killed with SIGKILL, and the download resumes from its verified pieces.

mod support;

use support::*;

const BIG: u64 = 64 * MIB;

/// Starts a rate-limited sharer A with one 64 MiB file and a downloader B;
/// B starts the download and the call returns once B has at least 16 MiB
/// verified and a piece map on disk. Returns (a, b, file id, download number).
fn start_slow_download(sb: &Sandbox) -> (Daemon, Daemon, String, i64) {
    let id = write_random(&sb.share_dir("a").join("big.bin"), BIG);
    let a = Daemon::start(sb, "a", &["--max-upload-rate", "16M"]);
    let b = Daemon::start(sb, "b", &["--source-patience", "2"]);
    a.wait_shared(1);
    let dl = b.start_download(&[&a.addr(), "big.bin"]);
    assert_eq!(s(&b.download(dl), "file_id"), id);
    wait_until("B to verify 16 MiB and save its piece map", WAIT, || {
        let d = b.download(dl);
        assert_ne!(d["state"], "failed", "download failed early: {d}");
        assert_ne!(
            d["state"], "done",
            "download finished before the crash point: {d}"
        );
        (n(&d, "verified_bytes") >= 16 * MIB && b.map_path(&id).exists()).then_some(())
    });
    (a, b, id, dl)
}

/// Kill -9 of the downloader mid-way; after a restart it finishes without fetching everything again.
#[test]
fn downloader_killed_resumes_from_verified_pieces() {
    let sb = Sandbox::new();
    let (a, mut b, id, dl) = start_slow_download(&sb);
    let downloads_before = b.cli_ok(&["downloads"]).as_array().unwrap().len();

    b.kill9();
    let part = b.part_path(&id);
    assert!(
        part.exists(),
        "partial file kept after kill -9: {}",
        part.display()
    );
    assert!(b.finished_files().is_empty(), "nothing finished yet");

    b.restart();
    // The restarted daemon resumes unfinished downloads on its own.
    let rec = b.wait_download_end(dl);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    let fetched = n(&rec, "fetched_bytes");
    assert!(
        fetched < BIG,
        "the resumed run fetched {fetched} bytes, the whole file is {BIG}"
    );
    assert!(fetched > 0, "the resumed run fetched the missing pieces");
    let path = std::path::PathBuf::from(s(&rec, "path"));
    assert_eq!(b3_file(&path), id, "resumed file hashes to its id");
    assert!(same_bytes(&path, &a.share_dir.join("big.bin")));
    assert_eq!(
        b.finished_files(),
        ["big.bin".to_string()].into_iter().collect(),
        "exactly one finished file"
    );
    assert!(!part.exists(), "partial file removed once done");
    let downloads_after = b.cli_ok(&["downloads"]).as_array().unwrap().len();
    assert_eq!(
        downloads_after, downloads_before,
        "resumed in place, not started anew"
    );
}

/// Kill -9 of the sharer mid-way: the download fails saying it can be resumed, keeps its
/// partial file, and finishes from where it stopped once the sharer is back.
#[test]
fn sharer_killed_download_fails_then_resumes() {
    let sb = Sandbox::new();
    let (mut a, b, id, dl) = start_slow_download(&sb);
    let peer_before = a.peer_id();

    a.kill9();
    let failed = b.wait_download_end(dl);
    assert_eq!(s(&failed, "state"), "failed", "{failed}");
    let error = s(&failed, "error");
    assert!(
        error.to_lowercase().contains("resum"),
        "the error says the download can be resumed: {error}"
    );
    assert!(
        b.part_path(&id).exists(),
        "partial file kept after the failure"
    );
    assert!(
        b.finished_files().is_empty(),
        "no finished file after a failure"
    );

    a.restart();
    assert_eq!(a.peer_id(), peer_before, "same data folder, same peer id");
    a.wait_shared(1);
    let addr = a.addr();
    let rec = b.cli_ok(&["get", &addr, "big.bin"]);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert_eq!(
        rec["id"].as_i64(),
        Some(dl),
        "the failed download was resumed"
    );
    let fetched = n(&rec, "fetched_bytes");
    assert!(
        fetched < BIG,
        "the resumed run fetched {fetched} bytes, the whole file is {BIG}"
    );
    let path = std::path::PathBuf::from(s(&rec, "path"));
    assert_eq!(b3_file(&path), id, "resumed file hashes to its id");
    assert!(same_bytes(&path, &a.share_dir.join("big.bin")));
    assert_eq!(
        b.finished_files(),
        ["big.bin".to_string()].into_iter().collect()
    );
}

/// SIGTERM of the downloader mid-way: it stops at once, records its verified
/// pieces, and the restarted daemon finishes without fetching them again.
#[test]
fn downloader_stopped_with_sigterm_resumes() {
    let sb = Sandbox::new();
    let (_a, mut b, id, dl) = start_slow_download(&sb);
    let verified_before = n(&b.download(dl), "verified_bytes");

    assert!(b.stop(), "the daemon exits by itself on SIGTERM");
    assert!(b.part_path(&id).exists(), "partial file kept");
    assert!(b.map_path(&id).exists(), "piece map kept");

    b.restart();
    let rec = b.wait_download_end(dl);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    let fetched = n(&rec, "fetched_bytes");
    assert!(
        fetched <= BIG - verified_before,
        "after SIGTERM at {verified_before} verified bytes the resumed run fetched {fetched} of {BIG}"
    );
    assert_eq!(b3_file(std::path::Path::new(&s(&rec, "path"))), id);
}
