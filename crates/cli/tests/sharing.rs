//! Shares at run time, through the real binary and a real index: folders
//! added and removed without a restart (and remembered across one), and
//! `offline` / `online`, which withdraw and offer every file at once.

mod support;

use support::*;

/// The names `search WORDS` finds for `d`.
fn found(d: &Daemon, words: &str) -> Vec<String> {
    let v = d.cli_ok(&["search", words]);
    let mut names: Vec<String> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|hit| hit["names"].as_array().cloned().unwrap_or_default())
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn folders(d: &Daemon) -> Vec<String> {
    d.status()["shares"]
        .as_array()
        .expect("shares in status")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn folders_added_and_removed_at_run_time_reach_other_peers_and_persist() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("old notes.txt"), 1000);
    let extra = sb.dir("extra");
    write_random(&extra.join("lecture 7.pdf"), 3 * MIB);
    let (_index, mut a, b) = alice_and_bob(&sb, &[], 1);
    assert!(found(&b, "lecture").is_empty());

    let added = a.cli_ok(&["shares", "add", extra.to_str().unwrap()]);
    assert_eq!(added["shared_files"], 2, "{added}");
    let extra_canon = std::fs::canonicalize(&extra).unwrap();
    assert!(folders(&a).contains(&extra_canon.display().to_string()));
    wait_until("bob to find the added folder's file", WAIT, || {
        (found(&b, "lecture") == ["lecture 7.pdf"]).then_some(())
    });
    let got = b.cli_ok(&["get", "lecture 7.pdf"]);
    assert_eq!(s(&got, "state"), "done", "{got}");
    assert!(same_bytes(
        &extra.join("lecture 7.pdf"),
        std::path::Path::new(&s(&got, "path"))
    ));

    // Refused: the same folder twice, a missing folder, the data folder.
    let out = a.run(&["shares", "add", extra.to_str().unwrap()]);
    assert!(out.error_message().unwrap().contains("already shared"));
    let out = a.run(&["shares", "add", sb.dir("nope").join("x").to_str().unwrap()]);
    assert!(!out.ok, "a missing folder is refused");
    let out = a.run(&["shares", "add", a.data_dir.to_str().unwrap()]);
    let msg = out.error_message().expect("refused");
    assert!(msg.contains("data folder"), "{msg}");

    // Removed: withdrawn from the index at once, and still removed after a restart.
    let removed = a.cli_ok(&["shares", "remove", extra.to_str().unwrap()]);
    assert_eq!(removed["shared_files"], 1, "{removed}");
    wait_until(
        "the removed folder's file to leave alice's listing",
        WAIT,
        || {
            let hits = b.cli_ok(&["search", "lecture"]);
            let from_alice = hits["results"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|h| h["sources"].as_array().cloned().unwrap_or_default())
                .any(|src| src["user"] == "alice");
            (!from_alice).then_some(())
        },
    );
    a.restart();
    a.wait_shared(1);
    assert!(!folders(&a).contains(&extra_canon.display().to_string()));

    // Added again: it stays shared after a restart.
    a.cli_ok(&["shares", "add", extra.to_str().unwrap()]);
    a.restart();
    a.wait_shared(2);
    assert!(folders(&a).contains(&extra_canon.display().to_string()));
}

#[test]
fn offline_makes_the_peer_unreachable_until_online() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("song one.flac"), 2 * MIB);
    let (_index, mut a, b) = alice_and_bob(&sb, &[], 1);
    wait_until("bob to find alice's song", WAIT, || {
        (found(&b, "song") == ["song one.flac"]).then_some(())
    });
    let addr = a.addr();

    let off = a.cli_ok(&["offline"]);
    assert_eq!(off["online"], false, "{off}");
    wait_until("alice to leave the index", WAIT, || {
        (a.index_status()["state"] == "offline").then_some(())
    });
    assert!(
        found(&b, "song").is_empty(),
        "nothing found while alice is offline"
    );
    assert!(b.browse(&addr).is_empty(), "an offline peer lists nothing");
    let out = b.run(&["get", &addr, &id]);
    assert!(!out.ok, "no download from an offline peer: {}", out.stdout);
    assert!(a.status()["sharing_online"] == false);

    // Offline is remembered across a restart.
    a.restart();
    assert_eq!(a.status()["sharing_online"], false);
    assert!(b.browse(&a.addr()).is_empty());

    a.cli_ok(&["online"]);
    a.wait_joined();
    wait_until("bob to find alice's song again", WAIT, || {
        (found(&b, "song") == ["song one.flac"]).then_some(())
    });
    let got = b.cli_ok(&["get", &a.addr(), "song one.flac"]);
    assert_eq!(s(&got, "state"), "done", "{got}");
}

/// Adding a folder pushes its hashing progress and the change of the shared files.
#[test]
fn hashing_a_new_folder_is_pushed_as_events() {
    use std::io::{BufRead, BufReader};
    let sb = Sandbox::new();
    let a = Daemon::start(&sb, "a", &[]);
    let extra = sb.dir("films");
    for n in 0..3 {
        write_random(&extra.join(format!("film {n}.mkv")), 2 * MIB);
    }
    let mut watcher = a.spawn_client(&["events"]);
    let mut said = String::new();
    BufReader::new(watcher.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    a.cli_ok(&["shares", "add", extra.to_str().unwrap()]);
    let mut hashing = Vec::new();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    for line in lines.by_ref() {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["type"].as_str().unwrap() {
            "shares_hashing" => hashing.push(event),
            "shares_changed" => {
                assert_eq!(event["shared_files"], 3, "{event}");
                break;
            }
            _ => {}
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let last = hashing.last().expect("hashing progress events");
    assert_eq!(last["files_total"], 3, "{last}");
    assert_eq!(last["files_done"], 3, "{last}");
    assert_eq!(n(last, "bytes_done"), 6 * MIB);
}

/// Rescans logged by `d` so far.
fn rescans(d: &Daemon) -> usize {
    d.log_text().matches("share rescanned").count()
}

/// The watcher: a file copied into a shared folder is shared without a
/// command, a deleted one leaves, and reading files (an upload) is not a
/// change that causes a rescan.
#[test]
fn the_watcher_shares_new_files_drops_deleted_ones_and_ignores_reads() {
    let sb = Sandbox::new();
    let share = sb.share_dir("a");
    write_random(&share.join("first.txt"), 1000);
    let (_index, a, b) = alice_and_bob(&sb, &[], 1);

    write_random(&share.join("fresh song.mp3"), 2 * MIB);
    a.wait_shared(2);
    wait_until("bob to find the new file", WAIT, || {
        (found(&b, "fresh") == ["fresh song.mp3"]).then_some(())
    });
    // Let the burst of the copy settle into its rescan before counting.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = rescans(&a);
    assert!(before >= 1, "the new file came from a rescan");

    let got = b.cli_ok(&["get", "fresh song.mp3"]);
    assert_eq!(s(&got, "state"), "done", "{got}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(rescans(&a), before, "reading a shared file is not a change");

    std::fs::remove_file(share.join("fresh song.mp3")).unwrap();
    a.wait_shared(1);
    // Bob holds his downloaded copy now; alice must no longer be named a holder.
    let alice = a.peer_id();
    wait_until(
        "alice to leave the holders of the deleted file",
        WAIT,
        || {
            let v = b.cli_ok(&["search", "fresh"]);
            let holders: Vec<String> = v["results"]
                .as_array()
                .expect("results")
                .iter()
                .flat_map(|hit| hit["sources"].as_array().cloned().unwrap_or_default())
                .map(|src| s(&src, "peer_id"))
                .collect();
            (!holders.contains(&alice)).then_some(())
        },
    );
}
