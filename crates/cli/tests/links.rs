//! Getting a file by its id or by a `peershare:` link, and the errors that
//! show which forms `get` and `browse` accept.

mod support;

use support::*;

#[test]
fn get_by_id_finds_holders_through_the_index() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("talk.webm"), 3 * MIB);
    let (_index, _a, b) = alice_and_bob(&sb, &[], 1);

    let got = b.cli_ok(&["get", &id]);
    assert_eq!(s(&got, "state"), "done", "{got}");
    assert_eq!(b3_file(std::path::Path::new(&s(&got, "path"))), id);

    let unknown = "ab".repeat(32);
    let out = b.run(&["get", &unknown]);
    assert!(!out.ok);
    let msg = out.error_message().unwrap();
    assert!(msg.contains("no other peer is known to share"), "{msg}");
}

#[test]
fn get_by_id_finds_holders_through_the_dht() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("talk.webm"), MIB + 5);
    let a = Daemon::start(&sb, "a", &["--no-index"]);
    let b = Daemon::start(&sb, "b", &["--no-index", "--bootstrap", &a.addr()]);
    a.wait_shared(1);
    let got = wait_until("b to find the file's holder in the DHT", WAIT, || {
        let out = b.run(&["get", &id]);
        out.ok.then(|| out.json())
    });
    assert_eq!(s(&got, "state"), "done", "{got}");
    assert_eq!(b3_file(std::path::Path::new(&s(&got, "path"))), id);
}

#[test]
fn a_link_with_addresses_reaches_the_sharer_with_nothing_else() {
    let sb = Sandbox::new();
    let id = write_random(&sb.share_dir("a").join("notes & plans?.txt"), 200_000);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);

    let bare = a.cli_ok(&["link", &id]);
    assert_eq!(s(&bare, "name"), "notes & plans?.txt");
    assert!(!s(&bare, "uri").contains("src="), "{bare}");
    let path = a.share_dir.join("notes & plans?.txt");
    let link = a.cli_ok(&["link", path.to_str().unwrap(), "--with-addrs"]);
    let uri = s(&link, "uri");
    assert!(
        uri.starts_with("peershare:b3/") && uri.contains("src="),
        "{uri}"
    );
    assert_eq!(s(&link, "file_id"), id);

    let got = b.cli_ok(&["get", &uri]);
    assert_eq!(s(&got, "state"), "done", "{got}");
    assert!(same_bytes(&path, std::path::Path::new(&s(&got, "path"))));

    // The same link again: the file is here, nothing is copied.
    let again = b.cli_ok(&["get", &uri]);
    assert_eq!(s(&again, "outcome"), "already_here", "{again}");

    let out = b.run(&["get", "peershare:b3/not-an-id"]);
    assert!(
        out.error_message().unwrap().contains("damaged"),
        "{}",
        out.stdout
    );
    let out = a.run(&["link", "no such file.txt"]);
    assert!(out.error_message().unwrap().contains("no shared file"));
}

#[test]
fn addresses_without_a_peer_id_are_refused_with_the_accepted_forms() {
    let sb = Sandbox::new();
    let b = Daemon::start(&sb, "b", &[]);
    for args in [
        vec!["get", "127.0.0.1:1100", "x.txt"],
        vec!["get", "/ip4/127.0.0.1/tcp/1100", "x.txt"],
        vec!["browse", "/ip4/127.0.0.1/tcp/1100"],
        vec!["browse", "127.0.0.1:1100"],
    ] {
        let out = b.run(&args);
        assert!(!out.ok, "{args:?}");
        let msg = out.error_message().unwrap();
        assert!(msg.contains("/p2p/12D3KooW"), "{args:?}: {msg}");
    }
}
