//! No index at all: daemons on loopback join one DHT through a bootstrap
//! peer, find each other's files by name words, download them, and stop
//! finding a file once it is unshared; with fifty daemons, files of the
//! survivors are still found after 30 % die. LAN discovery (mDNS) stays off here;
//! multicast is tested only inside network namespaces.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{s, same_bytes, wait_until, write_random, Daemon, Sandbox, MIB, WAIT};

/// (first name, holder peer ids) of each search result.
fn found(search: &Value) -> Vec<(String, BTreeSet<String>)> {
    search["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|hit| {
            let holders = hit["sources"]
                .as_array()
                .expect("sources")
                .iter()
                .map(|src| s(src, "peer_id"))
                .collect();
            (
                hit["names"][0].as_str().unwrap_or_default().to_string(),
                holders,
            )
        })
        .collect()
}

#[test]
fn three_daemons_find_and_fetch_files_through_the_dht_alone() {
    let sandbox = Sandbox::new();
    let lecture = sandbox.share_dir("b").join("aula 2.mp4");
    write_random(&lecture, 2 * MIB + 3);
    write_random(&sandbox.share_dir("b").join("other.txt"), 10);
    write_random(&sandbox.share_dir("a").join("aula 1.mp4"), 1000);
    let dht = ["--no-index", "--provider-ttl", "30", "--republish", "10"];
    let a = Daemon::start(&sandbox, "a", &dht);
    let first = a.addr();
    let mut joined = dht.to_vec();
    joined.extend(["--bootstrap", first.as_str()]);
    let b = Daemon::start(&sandbox, "b", &joined);
    // c finds its bootstrap peer (and its DHT timings) in config.toml in its data folder.
    let c_data = sandbox.dir("c").join("data");
    std::fs::create_dir_all(&c_data).unwrap();
    std::fs::write(
        c_data.join("config.toml"),
        format!("bootstrap = [\"{first}\"]\nprovider_ttl = 30\nrepublish = 10\n"),
    )
    .unwrap();
    let c = Daemon::start(&sandbox, "c", &["--no-index"]);
    b.wait_shared(2);

    // A word search reaches files of two other daemons, one row per id.
    let b_id = b.peer_id();
    let a_id = a.peer_id();
    let search = wait_until("c to find both aula files through the DHT", WAIT, || {
        let v = c.cli_ok(&["search", "aula"]);
        (found(&v).len() == 2).then_some(v)
    });
    let mut rows = found(&search);
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("aula 1.mp4".to_string(), [a_id.clone()].into()),
            ("aula 2.mp4".to_string(), [b_id.clone()].into()),
        ]
    );
    assert!(search["origins"].get("index").is_none());
    let via = &search["results"][1]["sources"][0]["found_by"];
    assert_eq!(via, &serde_json::json!(["dht"]), "{search}");
    let two_words = c.cli_ok(&["search", "AULA mp4", "--min-size", "1M"]);
    assert_eq!(found(&two_words).len(), 1, "{two_words}");

    // get NAME with no index: found through the DHT and verified.
    let got = c.cli_ok(&["get", "aula 2.mp4"]);
    assert_eq!(got["state"], "done", "{got}");
    assert!(same_bytes(&lecture, &c.downloads.join("aula 2.mp4")));

    // Peers list how they were found.
    let a_entry = c.known_peer(&a_id).expect("the bootstrap peer is known");
    assert!(a_entry["found_by"]
        .as_array()
        .expect("found_by")
        .contains(&Value::from("bootstrap")));

    // Unshared: the file drops out of results (its holder no longer lists it).
    std::fs::remove_file(&lecture).unwrap();
    b.cli_ok(&["rescan"]);
    wait_until("the unshared file to leave b's holders", WAIT, || {
        let v = a.cli_ok(&["search", "aula 2"]);
        let holders: BTreeSet<String> = found(&v)
            .into_iter()
            .filter(|(n, _)| n == "aula 2.mp4")
            .flat_map(|(_, h)| h)
            .collect();
        (!holders.contains(&b_id)).then_some(())
    });
}

/// The holders `searcher` finds for the file of node `i`.
fn holders_of(searcher: &Daemon, i: usize) -> BTreeSet<String> {
    let v = searcher.cli_ok(&["search", &format!("node {i} report")]);
    found(&v)
        .into_iter()
        .filter(|(n, _)| *n == format!("node {i} report.txt"))
        .flat_map(|(_, h)| h)
        .collect()
}

/// Churn: fifty daemons, each joining through one of the first three; once
/// the last finds every file, every third node dies (the three bootstrap
/// nodes among them) and the files of every survivor are still found.
#[test]
fn files_of_survivors_are_still_found_after_30_percent_of_the_nodes_die() {
    const NODES: usize = 50;
    const KILLED: usize = 15;
    let sandbox = Sandbox::new();
    let dht = ["--no-index", "--republish", "5", "--provider-ttl", "600"];
    let mut nodes: Vec<Daemon> = Vec::with_capacity(NODES);
    let mut bootstrap: Vec<String> = Vec::new();
    for i in 0..NODES {
        let name = format!("n{i}");
        write_random(
            &sandbox
                .share_dir(&name)
                .join(format!("node {i} report.txt")),
            100,
        );
        let mut args: Vec<&str> = dht.to_vec();
        // Each node joins through one of the first three, so no single node holds the DHT together.
        if !bootstrap.is_empty() {
            args.extend(["--bootstrap", bootstrap[i % bootstrap.len()].as_str()]);
        }
        let node = Daemon::start(&sandbox, &name, &args);
        if bootstrap.len() < 3 {
            bootstrap.push(node.addr());
        }
        nodes.push(node);
    }
    let ids: Vec<String> = nodes.iter().map(Daemon::peer_id).collect();
    let searcher = NODES - 1;
    for (i, id) in ids.iter().enumerate().take(searcher) {
        wait_until(&format!("node {i}'s file to be found"), WAIT, || {
            holders_of(&nodes[searcher], i).contains(id).then_some(())
        });
    }

    // Kill 30 %: every third node from the start, the bootstrap nodes included.
    let killed: BTreeSet<usize> = (0..NODES).step_by(3).take(KILLED).collect();
    assert!(!killed.contains(&searcher));
    for &i in &killed {
        nodes[i].kill9();
    }
    let mut missing = Vec::new();
    for i in (0..searcher).filter(|i| !killed.contains(i)) {
        if !holders_of(&nodes[searcher], i).contains(&ids[i]) {
            missing.push(i);
        }
    }
    assert!(
        missing.is_empty(),
        "files of live nodes not found after {KILLED} of {NODES} died: {missing:?}"
    );
    // Records still name the dead; search skips them rather than failing or listing them.
    for &i in &killed {
        let holders = holders_of(&nodes[searcher], i);
        assert!(
            holders.is_empty(),
            "node {i} is dead, yet listed as holding its file: {holders:?}"
        );
    }
}
