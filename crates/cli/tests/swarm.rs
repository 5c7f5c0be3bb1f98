//! Swarming against real daemons: one download takes pieces from every
//! holder at once, and survives holders that die, hang or lie. Sharers are
//! rate-limited so a download lasts long enough for every source to join.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::*;

/// Each sharer's upload limit: four of them fill a download four times faster than one.
const SHARER_RATE: &str = "8M";

/// An index and `names` daemons sharing `file` (the same bytes each), all
/// joined, plus a downloader "dl" joined too.
fn holders(
    sb: &Sandbox,
    names: &[&str],
    file: &str,
    len: u64,
) -> (IndexProcess, Vec<Daemon>, Daemon, String) {
    let index = IndexProcess::start(sb, &[]);
    let first = sb.share_dir(names[0]).join(file);
    let id = write_random(&first, len);
    let mut sharers = Vec::new();
    for name in names {
        let path = sb.share_dir(name).join(file);
        if path != first {
            std::fs::copy(&first, &path).expect("copy the shared file");
        }
        let d = Daemon::start(
            sb,
            name,
            &[
                "--index",
                &index.url,
                "--max-upload-rate",
                SHARER_RATE,
                "--no-watch",
            ],
        );
        d.register(name);
        d.wait_joined();
        d.wait_shared(1);
        sharers.push(d);
    }
    let dl = Daemon::start(sb, "dl", &["--index", &index.url]);
    dl.register("downloader");
    dl.wait_joined();
    (index, sharers, dl, id)
}

/// Pieces each source sent, as the download's record shows them (`peers`).
fn pieces_by_source(download: &serde_json::Value) -> HashMap<String, u64> {
    download["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("no peers in {download}"))
        .iter()
        .map(|p| (s(p, "peer_id"), n(p, "pieces")))
        .collect()
}

/// The entry of source `peer` in the download's record.
fn source_entry(download: &serde_json::Value, peer: &str) -> serde_json::Value {
    download["peers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["peer_id"] == peer).cloned())
        .unwrap_or_else(|| panic!("{peer} is not among the sources of {download}"))
}

#[test]
fn one_download_takes_pieces_from_all_four_holders() {
    let sb = Sandbox::new();
    let (_index, sharers, dl, id) = holders(&sb, &["s1", "s2", "s3", "s4"], "film.mkv", 32 * MIB);
    let got = dl.cli_ok(&["get", "film.mkv"]);
    assert_eq!(s(&got, "state"), "done", "{got}");
    let path = std::path::PathBuf::from(s(&got, "path"));
    assert_eq!(b3_file(&path), id, "the file verifies");
    let record = dl.download(got["id"].as_i64().expect("download number"));
    let served = pieces_by_source(&record);
    for sharer in &sharers {
        let entry = source_entry(&record, &sharer.peer_id());
        assert_eq!(
            entry["user"], sharer.name,
            "each source named by its user: {entry}"
        );
        assert!(
            ["named", "search"].contains(&s(&entry, "found_by").as_str()),
            "the holders came from get's search: {entry}"
        );
        let n = served.get(&sharer.peer_id()).copied().unwrap_or(0);
        assert!(
            n > 0,
            "{} served no piece: {served:?}\n{}",
            sharer.name,
            dl.log_text()
        );
    }
    // The endgame may ask a second holder for the last pieces; the first copy wins.
    let total = served.values().sum::<u64>();
    assert!(
        (32..32 + 8).contains(&total),
        "each piece once, save the endgame: {served:?}\n{}",
        dl.log_text()
    );
}

#[test]
fn a_killed_and_a_frozen_holder_do_not_stop_the_download() {
    let sb = Sandbox::new();
    let len = 48 * MIB;
    let (_index, mut sharers, dl, id) = holders(&sb, &["s1", "s2", "s3"], "big.iso", len);
    let download = dl.start_download(&["big.iso"]);
    wait_until("the download to take pieces from its sources", WAIT, || {
        let d = dl.download(download);
        assert_ne!(d["state"], "failed", "{d}");
        (n(&d, "verified_bytes") >= 8 * MIB).then_some(())
    });
    let cut = Instant::now();
    sharers[0].kill9();
    sharers[1].freeze(true);
    let end = dl.wait_download_end(download);
    let took = cut.elapsed();
    sharers[1].freeze(false);
    assert_eq!(s(&end, "state"), "done", "{end}");
    assert_eq!(b3_file(std::path::Path::new(&s(&end, "path"))), id);
    // The rest (at most 40 MiB) comes from the last holder at 8 MiB/s, after
    // the frozen one is given up (5 s of silence): far from a minute.
    assert!(
        took < Duration::from_secs(45),
        "the download needed {took:?} after losing two holders"
    );
}

#[test]
fn a_holder_that_sends_corrupt_pieces_is_dropped_and_named() {
    let sb = Sandbox::new();
    let len = 24 * MIB;
    let (_index, sharers, dl, id) = holders(&sb, &["honest", "liar"], "talk.mp4", len);
    // The liar's copy changes after it was hashed; size and mtime stay.
    let path = sharers[1].share_dir.join("talk.mp4");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for piece in 0..24u64 {
            f.write_all_at(b"not what was hashed", piece * MIB + 100)
                .unwrap();
        }
        f.sync_all().unwrap();
        f.set_modified(mtime).unwrap();
    }
    let got = dl.cli_ok(&["get", "talk.mp4"]);
    assert_eq!(s(&got, "state"), "done", "{got}");
    assert_eq!(
        b3_file(std::path::Path::new(&s(&got, "path"))),
        id,
        "only verified pieces count"
    );
    let log = dl.log_text();
    let liar = sharers[1].peer_id();
    assert!(
        log.lines()
            .any(|l| l.contains("dropping a source") && l.contains(&liar) && l.contains("corrupt")),
        "the liar is named in the log:\n{log}"
    );
    let record = dl.download(got["id"].as_i64().expect("download number"));
    let entry = source_entry(&record, &liar);
    assert_eq!(entry["phase"], "dropped", "{record}");
    assert!(s(&entry, "note").contains("corrupt"), "{entry}");
    let honest = source_entry(&record, &sharers[0].peer_id());
    assert!(n(&honest, "pieces") > 0, "{record}");
}

#[test]
fn downloaders_that_start_together_trade_pieces() {
    let sb = Sandbox::new();
    let pieces = 32;
    let (index, seeds, first, id) = holders(&sb, &["seed"], "season.mkv", pieces * MIB);
    let seed = &seeds[0];
    let mut downloaders = vec![first];
    for name in ["dl2", "dl3"] {
        let d = Daemon::start(&sb, name, &["--index", &index.url]);
        d.register(name);
        d.wait_joined();
        downloaders.push(d);
    }
    let started: Vec<i64> = downloaders
        .iter()
        .map(|d| d.start_download(&["season.mkv"]))
        .collect();
    let downloader_ids: Vec<String> = downloaders.iter().map(|d| d.peer_id()).collect();
    let mut from_seed = 0;
    let mut from_downloaders = 0;
    for (d, download) in downloaders.iter().zip(&started) {
        let end = d.wait_download_end(*download);
        assert_eq!(s(&end, "state"), "done", "{}: {end}", d.name);
        assert_eq!(b3_file(std::path::Path::new(&s(&end, "path"))), id);
        for (peer, n) in pieces_by_source(&end) {
            if peer == seed.peer_id() {
                from_seed += n;
            } else if downloader_ids.contains(&peer) {
                from_downloaders += n;
                let found = s(&source_entry(&end, &peer), "found_by");
                assert!(
                    ["hint", "asked"].contains(&found.as_str()),
                    "another downloader is found through the swarm, not the index: {found}"
                );
            }
        }
    }
    // Alone, each downloader would take every piece from the seed.
    assert!(
        from_downloaders > 0,
        "no piece moved between downloaders ({from_seed} came from the seed)"
    );
    let logs: String = downloaders
        .iter()
        .map(|d| format!("--- {} ({})\n{}", d.name, d.peer_id(), d.log_text()))
        .collect();
    assert!(
        from_seed < 2 * pieces,
        "the seed sent {from_seed} pieces for 3 × {pieces}: the downloaders barely helped each other\n{logs}"
    );
}
