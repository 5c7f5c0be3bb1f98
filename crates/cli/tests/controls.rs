//! The person's controls over downloads, through the real binary: cancel,
//! remove, clean, attaching a second `get`, Ctrl-C on a foreground `get`,
//! and the events stream that `get` and `downloads --watch` follow.

mod support;

use std::io::{BufRead, BufReader, Read, Write};

use support::*;

const BIG: u64 = 32 * MIB;

/// A sharer limited to 8 MiB/s with one 32 MiB file, and a downloader.
fn slow_pair(sb: &Sandbox) -> (Daemon, Daemon, String) {
    let id = write_random(&sb.share_dir("a").join("big.bin"), BIG);
    let a = Daemon::start(sb, "a", &["--max-upload-rate", "8M"]);
    let b = Daemon::start(sb, "b", &[]);
    a.wait_shared(1);
    (a, b, id)
}

fn running_with_bytes(b: &Daemon, dl: i64) {
    b.wait_download(dl, "to have verified bytes", |d| {
        assert_eq!(s(d, "state"), "active", "ended early: {d}");
        n(d, "verified_bytes") > 0 && b.map_path(&s(d, "file_id")).exists()
    });
}

#[test]
fn cancel_deletes_the_partial_and_remove_forgets_only_the_entry() {
    let sb = Sandbox::new();
    let (a, b, id) = slow_pair(&sb);
    let dl = b.start_download(&[&a.addr(), "big.bin"]);
    running_with_bytes(&b, dl);
    assert!(b.part_path(&id).exists());

    // A running download cannot be removed: it says what to do instead.
    let out = b.run(&["downloads", "remove", &dl.to_string()]);
    assert!(!out.ok, "{}", out.stdout);
    let msg = out.error_message().expect("an error message");
    assert!(msg.contains("cancel it first"), "{msg}");

    let cancelled = b.cli_ok(&["downloads", "cancel", &dl.to_string()]);
    assert_eq!(s(&cancelled, "state"), "cancelled", "{cancelled}");
    assert_eq!(cancelled["running"], false, "{cancelled}");
    assert!(!b.part_path(&id).exists(), "the partial file is deleted");
    assert!(!b.map_path(&id).exists(), "the piece map is deleted");
    assert!(b.finished_files().is_empty());

    b.cli_ok(&["downloads", "remove", &dl.to_string()]);
    let list = b.cli_ok(&["downloads"]);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    let out = b.run(&["downloads", "cancel", &dl.to_string()]);
    assert!(!out.ok, "a forgotten download is not found");
    assert!(out.error_message().unwrap().contains("no download number"));

    // A finished download is forgotten; its file stays.
    let small_id = write_random(&a.share_dir.join("small.txt"), 5000);
    a.cli_ok(&["rescan"]);
    let done = b.cli_ok(&["get", &a.addr(), "small.txt"]);
    let done_id = done["id"].as_i64().unwrap();
    let out = b.run(&["downloads", "cancel", &done_id.to_string()]);
    assert!(!out.ok, "a finished download cannot be cancelled");
    b.cli_ok(&["downloads", "remove", &done_id.to_string()]);
    let path = std::path::PathBuf::from(s(&done, "path"));
    assert_eq!(b3_file(&path), small_id, "the file stays after remove");
}

#[test]
fn clean_deletes_orphaned_partials_only() {
    let sb = Sandbox::new();
    let (a, b, id) = slow_pair(&sb);
    let dl = b.start_download(&[&a.addr(), "big.bin"]);
    running_with_bytes(&b, dl);
    let paused = b.cli_ok(&["downloads", "pause", &dl.to_string()]);
    assert_eq!(s(&paused, "state"), "paused");

    let partial = b.downloads.join(".peershare-partial");
    let orphan = "ab".repeat(32);
    std::fs::write(partial.join(format!("{orphan}.part")), vec![7u8; 4096]).unwrap();
    std::fs::write(partial.join(format!("{orphan}.map")), b"old map").unwrap();
    std::fs::write(partial.join("notes.txt"), b"not ours").unwrap();

    let report = b.cli_ok(&["downloads", "clean"]);
    let removed: Vec<String> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        removed,
        [format!("{orphan}.map"), format!("{orphan}.part")],
        "{report}"
    );
    assert_eq!(n(&report, "bytes_freed"), 4096 + 7);
    assert!(
        b.part_path(&id).exists(),
        "the paused download's partial stays"
    );
    assert!(b.map_path(&id).exists());
    assert!(
        partial.join("notes.txt").exists(),
        "unknown files are left alone"
    );

    // The paused download still resumes to the right file after the clean.
    b.cli_ok(&["downloads", "resume", &dl.to_string()]);
    let rec = b.wait_download_end(dl);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert_eq!(b3_file(std::path::Path::new(&s(&rec, "path"))), id);
}

#[test]
fn a_second_get_attaches_to_the_running_download() {
    let sb = Sandbox::new();
    let (a, b, id) = slow_pair(&sb);
    let dl = b.start_download(&[&a.addr(), "big.bin"]);
    let again = b.cli_ok(&["get", &a.addr(), &id, "--no-wait"]);
    assert_eq!(s(&again, "outcome"), "attached", "{again}");
    assert_eq!(again["download"]["id"].as_i64(), Some(dl));

    // A foreground get of the same file follows it to the end.
    let rec = b.cli_ok(&["get", &a.addr(), "big.bin"]);
    assert_eq!(rec["id"].as_i64(), Some(dl), "{rec}");
    assert_eq!(s(&rec, "state"), "done");
    assert_eq!(b.finished_files().len(), 1, "one download, one file");
    let list = b.cli_ok(&["downloads"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

#[test]
fn ctrl_c_on_get_without_a_terminal_cancels() {
    let sb = Sandbox::new();
    let (a, b, id) = slow_pair(&sb);
    let child = b.spawn_client(&["get", &a.addr(), "big.bin"]);
    let dl = wait_until("the download to appear", WAIT, || {
        b.cli_ok(&["downloads"])
            .as_array()
            .and_then(|l| l.first().cloned())
    })["id"]
        .as_i64()
        .unwrap();
    running_with_bytes(&b, dl);

    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("the get process ends");
    assert_eq!(out.status.code(), Some(130), "exit code after Ctrl-C");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON answer: {stdout}"));
    assert_eq!(said["interrupted"], true, "{said}");
    assert_eq!(said["kept"], false, "{said}");
    let d = b.download(dl);
    assert_eq!(s(&d, "state"), "cancelled", "{d}");
    assert!(!b.part_path(&id).exists(), "no partial left");
}

/// `downloads --watch --json` prints the events of a real download: progress that
/// grows, and the final state.
#[test]
fn watch_follows_a_download_through_the_events_stream() {
    let sb = Sandbox::new();
    let (a, b, id) = slow_pair(&sb);
    let mut watcher = b.spawn_client(&["downloads", "--watch"]);
    let lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    // The watcher prints the (empty) list first, once it is subscribed.
    let mut lines = lines.map_while(Result::ok);
    let first = lines.next().expect("the list");
    assert_eq!(first.trim(), "[]", "{first}");

    let dl = b.start_download(&[&a.addr(), "big.bin"]);
    let mut progress = Vec::new();
    let mut states = Vec::new();
    for line in lines.by_ref() {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["type"].as_str().unwrap() {
            "download_progress" => {
                assert_eq!(event["id"].as_i64(), Some(dl), "{event}");
                progress.push(n(&event, "verified_bytes"));
            }
            "download_changed" => {
                let state = s(&event["download"], "state");
                let running = event["download"]["running"] == true;
                states.push(state.clone());
                if state == "done" && !running {
                    assert_eq!(s(&event["download"], "file_id"), id);
                    break;
                }
            }
            other => panic!("unexpected event {other}: {event}"),
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(progress.len() >= 2, "progress events: {progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "verified bytes never go back: {progress:?}"
    );
    assert_eq!(
        states.first().map(String::as_str),
        Some("active"),
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );
}

/// A subscriber that connects to the events stream and never reads does not slow
/// or stop the node: a download completes and the API keeps answering.
#[test]
fn a_subscriber_that_never_reads_does_not_stall_the_node() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("big.bin"), BIG);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    let api = std::fs::read_to_string(b.data_dir.join("api.addr")).unwrap();
    let token = std::fs::read_to_string(b.data_dir.join("api-token")).unwrap();
    // A tiny receive buffer fills at once, so the daemon's writes to it block.
    let mut stuck = connect_with_small_buffer(api.trim());
    write!(
        stuck,
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        api.trim(),
        token.trim()
    )
    .unwrap();
    let mut head = [0u8; 12];
    stuck.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the stream was accepted");

    for round in 0..3 {
        let rec = b.cli_ok(&["get", &a.addr(), "big.bin", "--again"]);
        assert_eq!(s(&rec, "state"), "done", "round {round}: {rec}");
        assert_eq!(b3_file(std::path::Path::new(&s(&rec, "path"))), id);
    }
    drop(stuck);
}

/// A TCP connection whose receive buffer is as small as the system allows.
fn connect_with_small_buffer(addr: &str) -> std::net::TcpStream {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// The download limit holds every download back, and changing it at run time
/// (`limits --download 0`) lets the running download go at once.
#[test]
fn the_download_rate_limit_applies_and_changes_at_run_time() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("slow.bin"), 24 * MIB);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &["--max-download-rate", "4M"]);
    a.wait_shared(1);
    let limits = b.cli_ok(&["limits"]);
    assert_eq!(limits["max_download_rate"], 4 * MIB, "{limits}");
    assert!(limits["max_upload_rate"].is_null(), "{limits}");

    let dl = b.start_download(&[&a.addr(), "slow.bin"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let d = b.download(dl);
    assert_eq!(d["state"], "active", "{d}");
    // At 4 MiB/s about 8 MiB in two seconds; unlimited, loopback would be done.
    assert!(n(&d, "verified_bytes") < 16 * MIB, "the limit holds: {d}");

    let lifted = b.cli_ok(&["limits", "--download", "0", "--upload", "1G"]);
    assert!(lifted["max_download_rate"].is_null(), "{lifted}");
    assert_eq!(lifted["max_upload_rate"], 1 << 30, "{lifted}");
    let end = b.wait_download_end(dl);
    assert_eq!(s(&end, "state"), "done", "{end}");
    assert_eq!(b3_file(std::path::Path::new(&s(&end, "path"))), id);

    // Limits changed at run time are remembered: `up` was given a download
    // limit, which wins again; the upload limit set at run time comes back.
    let mut b = b;
    b.restart();
    let again = b.cli_ok(&["limits"]);
    assert_eq!(again["max_upload_rate"], 1 << 30, "{again}");
    assert_eq!(again["max_download_rate"], 4 * MIB, "{again}");
}

/// One download's own limit holds it back while another download of the
/// same daemon runs free, and `downloads rate N 0` lifts it at once.
#[test]
fn a_download_has_its_own_rate_limit_changeable_while_it_runs() {
    let sb = Sandbox::new();
    let slow_id = write_random(&sb.share_dir("a").join("slow.bin"), 24 * MIB);
    write_random(&sb.share_dir("a").join("free.bin"), 24 * MIB);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(2);
    let slow = b.start_download(&[&a.addr(), "slow.bin", "--max-rate", "2M"]);
    let free = b.start_download(&[&a.addr(), "free.bin"]);
    let free_end = b.wait_download_end(free);
    assert_eq!(s(&free_end, "state"), "done", "{free_end}");
    let d = b.download(slow);
    assert_eq!(d["max_rate"], 2 * MIB, "{d}");
    assert_eq!(
        d["state"], "active",
        "still held back when the other is done: {d}"
    );
    assert!(n(&d, "verified_bytes") < 20 * MIB, "the limit holds: {d}");

    let lifted = b.cli_ok(&["downloads", "rate", &slow.to_string(), "0"]);
    assert!(lifted["max_rate"].is_null(), "{lifted}");
    let end = b.wait_download_end(slow);
    assert_eq!(s(&end, "state"), "done", "{end}");
    assert_eq!(b3_file(std::path::Path::new(&s(&end, "path"))), slow_id);
}

/// `get --sequential` fetches pieces in file order: paused half-way, the
/// verified pieces are exactly the first ones (a preview can play them).
#[test]
fn a_sequential_download_has_its_first_pieces_first() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("film.mkv"), 24 * MIB);
    let a = Daemon::start(&sb, "a", &["--max-upload-rate", "4M"]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    let dl = b.start_download(&[&a.addr(), "film.mkv", "--sequential"]);
    b.wait_download(dl, "to have 4 MiB", |d| n(d, "verified_bytes") >= 4 * MIB);
    let paused = b.cli_ok(&["downloads", "pause", &dl.to_string()]);
    assert_eq!(paused["sequential"], true, "{paused}");
    let map = std::fs::read(b.map_path(&id)).expect("the piece map of a paused download");
    // Header: magic (8), id (32), size (8), piece length (8); then a bit per piece.
    let bits = &map[56..];
    let have: Vec<bool> = (0..24).map(|i| bits[i / 8] & (1 << (i % 8)) != 0).collect();
    let count = have.iter().filter(|h| **h).count();
    assert!(count >= 4, "{have:?}");
    assert!(
        have[..count].iter().all(|h| *h),
        "the verified pieces are the first {count}: {have:?}"
    );
    b.cli_ok(&["downloads", "resume", &dl.to_string()]);
    let end = b.wait_download_end(dl);
    assert_eq!(s(&end, "state"), "done", "{end}");
    assert_eq!(b3_file(std::path::Path::new(&s(&end, "path"))), id);
}
