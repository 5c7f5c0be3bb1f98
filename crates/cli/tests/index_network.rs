//! Peers and an index, all real: a `peershare index` process (or the index
//! embedded in `peershare up`), daemons that register, join, publish,
//! search, browse users and download by name, and what happens when a
//! daemon dies or the index restarts.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{s, same_bytes, wait_until, write_random, Daemon, IndexProcess, Sandbox, MIB, WAIT};

/// The users holding each result of a search, as "file name → users".
fn holders(search: &Value) -> Vec<(String, BTreeSet<String>)> {
    search["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|hit| {
            let name = hit["names"][0].as_str().unwrap_or_default().to_string();
            let users = hit["sources"]
                .as_array()
                .expect("sources")
                .iter()
                .map(|src| {
                    src["user"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| s(src, "peer_id"))
                })
                .collect();
            (name, users)
        })
        .collect()
}

fn users_of(search: &Value) -> BTreeSet<String> {
    holders(search).into_iter().flat_map(|(_, u)| u).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Names of the online users in `users --json`.
fn online_users(d: &Daemon) -> BTreeSet<String> {
    d.cli_ok(&["users"])["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["online"] == true)
        .map(|u| s(u, "name"))
        .collect()
}

#[test]
fn three_users_search_browse_download_by_name_and_drop_out_when_dead() {
    let sandbox = Sandbox::new();
    let index = IndexProcess::start(
        &sandbox,
        &[
            "--heartbeat",
            "1",
            "--peer-timeout",
            "3",
            "--admin",
            "alice",
        ],
    );
    let aula1 = sandbox.share_dir("a").join("aula 1.mp4");
    write_random(&aula1, 3 * MIB + 17);
    write_random(&sandbox.share_dir("a").join("notes/aula plan.txt"), 1000);
    write_random(&sandbox.share_dir("b").join("aula 2.mp4"), MIB);
    write_random(&sandbox.share_dir("c").join("carol.txt"), 10);
    let joined = ["--index", index.url.as_str()];
    let a = Daemon::start(&sandbox, "a", &joined);
    let mut b = Daemon::start(&sandbox, "b", &joined);
    let c = Daemon::start(&sandbox, "c", &joined);
    for (d, user) in [(&a, "alice"), (&b, "bob"), (&c, "carol")] {
        assert_eq!(d.index_status()["state"], "logged_out");
        d.register(user);
    }
    for d in [&a, &b, &c] {
        d.wait_joined();
    }

    // Search by a word finds files of two users.
    let found = wait_until("carol to find alice's and bob's aula files", WAIT, || {
        let v = c.cli_ok(&["search", "aula"]);
        (holders(&v).len() == 3).then_some(v)
    });
    assert_eq!(users_of(&found), set(&["alice", "bob"]));
    let names: BTreeSet<String> = holders(&found).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        set(&["aula 1.mp4", "aula 2.mp4", "notes/aula plan.txt"])
    );
    let big_mp4 = c.cli_ok(&["search", "aula", "--ext", "mp4", "--min-size", "2M"]);
    assert_eq!(
        holders(&big_mp4),
        vec![("aula 1.mp4".to_string(), set(&["alice"]))]
    );

    // Index users form one DHT: the index handed out peers to enter it through.
    let a_id = a.peer_id();
    let peers = c.cli_ok(&["peers"]);
    let from_index = peers["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .any(|p| p["peer_id"] == a_id.as_str() && p["found_by"].to_string().contains("index"));
    assert!(from_index, "{peers}");

    // Users and browsing a user's files.
    assert_eq!(online_users(&c), set(&["alice", "bob", "carol"]));
    let listed = c.cli_ok(&["browse", "alice"]);
    let alice_files: BTreeSet<String> = listed["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| s(f, "name"))
        .collect();
    assert_eq!(alice_files, set(&["aula 1.mp4", "notes/aula plan.txt"]));

    // get NAME: found through the index, fetched from alice, and carol becomes a source.
    let got = c.cli_ok(&["get", "aula 1.mp4"]);
    assert_eq!(got["state"], "done", "{got}");
    assert!(same_bytes(&aula1, &c.downloads.join("aula 1.mp4")));
    wait_until("carol to be listed as a source of aula 1.mp4", WAIT, || {
        let v = a.cli_ok(&["search", "aula 1.mp4", "--mode", "exact"]);
        (holders(&v) == vec![("aula 1.mp4".to_string(), set(&["alice", "carol"]))]).then_some(())
    });
    assert_eq!(
        c.status()["shared_files"],
        2,
        "the download is shared beside carol's own file"
    );

    // The audit log is for admins only, and shows the announced download.
    let audit = a.cli_ok(&["audit", "--limit", "500"]);
    let announced = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["action"] == "download_announced" && e["user"] == "carol");
    assert!(announced, "carol's download is in the audit log: {audit}");
    let refused = b.run(&["audit"]);
    assert!(!refused.ok);
    assert!(refused
        .error_message()
        .unwrap_or_default()
        .contains("admin"));

    // A daemon killed with -9 drops out of results once its heartbeats stop.
    b.kill9();
    wait_until("bob to drop out of search results", WAIT, || {
        let v = c.cli_ok(&["search", "aula"]);
        (!users_of(&v).contains("bob")).then_some(())
    });
    assert_eq!(online_users(&c), set(&["alice", "carol"]));
    drop(index);
}

#[test]
fn daemons_keep_working_while_the_index_is_down_and_rejoin_when_it_returns() {
    let sandbox = Sandbox::new();
    let mut index = IndexProcess::start(&sandbox, &["--heartbeat", "1", "--peer-timeout", "5"]);
    let film = sandbox.share_dir("a").join("film.mkv");
    write_random(&film, 2 * MIB);
    let joined = ["--index", index.url.as_str()];
    let a = Daemon::start(&sandbox, "a", &joined);
    let b = Daemon::start(&sandbox, "b", &joined);
    a.register("alice");
    b.register("bob");
    a.wait_joined();
    b.wait_joined();

    index.kill9();
    wait_until("alice's daemon to notice the index is gone", WAIT, || {
        let st = a.index_status();
        (st["state"] == "unreachable").then_some(st)
    });
    // Search, browse and get go on through the DHT the index introduced them to.
    let a_id = a.peer_id();
    let search = wait_until("bob to find film.mkv through the DHT", WAIT, || {
        let v = b.cli_ok(&["search", "film"]);
        (holders(&v) == vec![("film.mkv".to_string(), set(&[&a_id]))]).then_some(v)
    });
    assert_eq!(search["origins"]["index"]["ok"], false);
    let message = s(&search["origins"]["index"], "error");
    assert!(message.contains("unreachable"), "{message}");
    assert_eq!(
        search["results"][0]["sources"][0]["found_by"],
        serde_json::json!(["dht"])
    );

    let alice = b.cli_ok(&["browse", "alice"]);
    assert_eq!(alice["origin"], "dht", "{alice}");
    assert!(s(&alice, "index_error").contains("unreachable"), "{alice}");
    assert_eq!(alice["files"][0]["name"], "film.mkv", "{alice}");
    assert_eq!(s(&alice["files"][0], "peer_id"), a_id);
    let (known, _) = b.cli(&["browse", "nobody"]);
    assert!(!known, "a name nobody announces is not found");
    let by_id = b.cli_ok(&["browse", &a_id]);
    assert_eq!(by_id["files"][0]["name"], "film.mkv", "{by_id}");

    let got = b.cli_ok(&["get", "film.mkv"]);
    assert_eq!(got["state"], "done", "{got}");
    assert!(same_bytes(&film, &b.downloads.join("film.mkv")));

    // Nobody does anything: both daemons rejoin the restarted index with their
    // saved sessions, and bob's download (made while it was down) is announced.
    index.restart();
    a.wait_joined();
    b.wait_joined();
    wait_until("film.mkv to be listed with both sources", WAIT, || {
        let v = b.cli_ok(&["search", "film"]);
        (holders(&v) == vec![("film.mkv".to_string(), set(&["alice", "bob"]))]).then_some(())
    });
}

#[test]
fn the_embedded_index_is_joined_by_others_and_sessions_end_on_logout() {
    let sandbox = Sandbox::new();
    write_random(&sandbox.share_dir("a").join("song.flac"), 5000);
    // A name no index takes (a control character) is shared but not listed, and breaks nothing.
    write_random(&sandbox.share_dir("a").join("line\nbreak.txt"), 10);
    let a = Daemon::start(
        &sandbox,
        "a",
        &["--index-listen", "127.0.0.1:0", "--heartbeat", "1"],
    );
    let url = s(&a.index_status(), "url");
    let b = Daemon::start(&sandbox, "b", &["--index", &url]);
    let lonely = Daemon::start(&sandbox, "lonely", &["--no-index"]);

    a.register("alice");
    b.register("bob");
    a.wait_joined();
    b.wait_joined();
    wait_until("bob to find alice's song", WAIT, || {
        let v = b.cli_ok(&["search", "song"]);
        (holders(&v) == vec![("song.flac".to_string(), set(&["alice"]))]).then_some(())
    });
    assert_eq!(a.status()["shared_files"], 2);
    assert_eq!(a.index_status()["published_files"], 1);

    // A wrong password and a taken name are refused with what to do.
    let wrong = b.run_with_input(&["login", "alice", "--password-stdin"], Some("nope\n"));
    assert!(!wrong.ok);
    assert!(
        wrong
            .error_message()
            .unwrap_or_default()
            .contains("wrong user name or password"),
        "{:?}",
        wrong.error_message()
    );
    let taken = b.run_with_input(&["register", "alice", "--password-stdin"], Some("x\n"));
    assert!(!taken.ok);
    assert_eq!(
        s(&b.index_status(), "user"),
        "bob",
        "bob is still logged in"
    );

    // Logout leaves at once; the next command needs a login again.
    b.cli_ok(&["logout"]);
    assert_eq!(b.index_status()["state"], "logged_out");
    wait_until("bob to be offline", WAIT, || {
        (!online_users(&a).contains("bob")).then_some(())
    });
    let after = b.cli_ok(&["search", "song"]);
    assert!(s(&after["origins"]["index"], "error").contains("peershare login"));
    let back = b.run_with_input(
        &["login", "bob", "--password-stdin"],
        Some("correct horse battery\n"),
    );
    assert!(back.ok, "{}", back.stderr);
    b.wait_joined();

    // A daemon without an index (and no DHT peers) searches only the DHT and says so.
    let none = lonely.cli_ok(&["search", "song"]);
    assert!(none["origins"].get("index").is_none(), "{none}");
    assert_eq!(none["origins"]["dht"]["ok"], true);
    assert_eq!(none["results"].as_array().map(Vec::len), Some(0));
    let login = lonely.run_with_input(&["login", "x", "--password-stdin"], Some("y\n"));
    assert!(login
        .error_message()
        .unwrap_or_default()
        .contains("--no-index"));
    let get = lonely.run(&["get", "song.flac"]);
    assert!(!get.ok);
    assert!(get
        .error_message()
        .unwrap_or_default()
        .contains("no other peer shares"));
    assert!(lonely.index_status().is_null());
}

#[test]
fn daemons_join_an_https_index_they_trust_and_refuse_one_they_do_not() {
    let sandbox = Sandbox::new();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let tls = sandbox.dir("tls");
    let (cert, key) = (tls.join("index.crt"), tls.join("index.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let index = IndexProcess::start(&sandbox, &["--tls-cert", cert, "--tls-key", key]);
    assert!(index.url.starts_with("https://"), "{}", index.url);

    write_random(&sandbox.share_dir("a").join("secret plans.txt"), 100);
    let a = Daemon::start(&sandbox, "a", &["--index", &index.url, "--index-ca", cert]);
    a.register("alice");
    a.wait_joined();
    let found = a.cli_ok(&["search", "plans"]);
    assert_eq!(found["origins"]["index"]["ok"], true, "{found}");

    // Without the certificate the daemon refuses to send a password, and says why.
    let b = Daemon::start(&sandbox, "b", &["--index", &index.url]);
    let refused = b.run_with_input(&["register", "bob", "--password-stdin"], Some("pw\n"));
    assert!(!refused.ok);
    let message = refused.error_message().unwrap_or_default();
    assert!(
        message.contains("unreachable") && message.contains("certificate"),
        "{message}"
    );
}

/// The sharer sees who asks and who downloads by user name: `requests` under
/// `--policy ask`, then `uploads` while the transfer runs.
#[test]
fn the_sharer_sees_user_names_in_requests_and_uploads() {
    let sandbox = Sandbox::new();
    write_random(&sandbox.share_dir("a").join("film.mkv"), 24 * MIB);
    let extra = ["--policy", "ask", "--max-upload-rate", "4M"];
    let (_index, a, b) = support::alice_and_bob(&sandbox, &extra, 1);

    let dl = b.start_download(&[&a.addr(), "film.mkv"]);
    let request = wait_until("alice to see bob's request", WAIT, || {
        a.cli_ok(&["requests"]).as_array()?.first().cloned()
    });
    assert_eq!(s(&request, "user"), "bob", "{request}");
    assert_eq!(s(&request, "peer"), b.peer_id());
    a.cli_ok(&["accept", &request["id"].to_string()]);

    let upload = wait_until("alice to list bob's upload", WAIT, || {
        let list = a.cli_ok(&["uploads"]);
        list.as_array()?
            .first()
            .filter(|u| u["sent_bytes"].as_u64() > Some(0))
            .cloned()
    });
    assert_eq!(s(&upload, "user"), "bob", "{upload}");
    assert_eq!(s(&upload, "name"), "film.mkv");
    assert_eq!(upload["size"].as_u64(), Some(24 * MIB));

    let rec = b.wait_download_end(dl);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    let after = wait_until("the upload to leave the list", WAIT, || {
        let list = a.cli_ok(&["uploads"]);
        list.as_array()?.is_empty().then_some(list)
    });
    assert_eq!(after.as_array().map(Vec::len), Some(0));
}

/// A frozen index (it holds its port and answers nothing) does not hold a
/// search: the answer comes from the DHT and says the index was not heard.
#[test]
fn a_frozen_index_does_not_hold_a_search() {
    let sandbox = Sandbox::new();
    let index = IndexProcess::start(&sandbox, &[]);
    write_random(&sandbox.share_dir("a").join("radio show.ogg"), 1000);
    let joined = ["--index", index.url.as_str()];
    let a = Daemon::start(&sandbox, "a", &joined);
    a.register("alice");
    a.wait_joined();
    index.freeze(true);
    let out = a.run(&["search", "radio"]);
    index.freeze(false);
    assert!(out.ok, "{}", out.stderr);
    let v = out.json();
    let error = v["origins"]["index"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not answer within"), "{v}");
    assert_eq!(v["origins"]["dht"]["ok"], true, "{v}");
}
