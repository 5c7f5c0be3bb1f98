//! How a transfer's data travels, against real daemons on loopback: the
//! direct data connection when the sharer's data port can be reached, and a
//! data stream on the libp2p connection when it cannot (its data listener
//! sits on an address the downloader does not use, as a NAT or a firewall
//! would leave it). Both ends say which path they took.

mod support;

use support::*;

/// The path a download's one source took, from the download's record.
fn source_path(download: &serde_json::Value) -> serde_json::Value {
    download["peers"][0]["path"].clone()
}

#[test]
fn a_reachable_data_port_carries_the_data_directly() {
    let sb = Sandbox::new();
    let file = sb.share_dir("a").join("direct.bin");
    write_random(&file, 3 * MIB + 17);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);

    let id = b.start_download(&[&a.addr(), "direct.bin"]);
    let done = b.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(&file, &b.downloads.join("direct.bin")));
    let path = source_path(&b.download(id));
    assert_eq!(path["channel"], "tcp", "{path}");
    assert_eq!(path["connection"], "direct", "{path}");
}

#[test]
fn an_unreachable_data_port_falls_back_to_a_stream_and_says_so() {
    let sb = Sandbox::new();
    let file = sb.share_dir("a").join("behind a wall.bin");
    write_random(&file, 9 * MIB + 3);
    // The libp2p connection is made at 127.0.0.1; the data port listens on
    // 127.0.0.2 only, so a data connection to 127.0.0.1 is refused.
    let a = Daemon::start(
        &sb,
        "a",
        &["--data-listen", "127.0.0.2:0", "--max-upload-rate", "12M"],
    );
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);

    let id = b.start_download(&[&a.addr(), "behind a wall.bin"]);
    let upload = wait_until("a to list b's upload", WAIT, || {
        let list = a.cli_ok(&["uploads"]);
        list.as_array()?.first().cloned()
    });
    assert_eq!(upload["path"]["channel"], "stream", "{upload}");
    assert_eq!(upload["path"]["connection"], "direct", "{upload}");
    assert_eq!(s(&upload, "peer"), b.peer_id());

    let done = b.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(&file, &b.downloads.join("behind a wall.bin")));
    let path = source_path(&b.download(id));
    assert_eq!(path["channel"], "stream", "{path}");
    assert_eq!(path["connection"], "direct", "{path}");
    assert!(path["relay"].is_null(), "{path}");

    let a_seen = b.known_peer(&a.peer_id()).expect("b knows a");
    assert_eq!(a_seen["path"], "direct", "{a_seen}");
}

/// `status` tells the NAT state, the port mapping and the relay service, as configured.
#[test]
fn status_shows_reachability_and_the_relay_service() {
    let sb = Sandbox::new();
    let relay = [
        "--relay-bulk",
        "--relay-bulk-limit",
        "1G",
        "--relay-slots",
        "7",
        "--relay-circuits",
        "3",
    ];
    let a = Daemon::start(&sb, "a", &[&["--no-port-mapping"][..], &relay].concat());
    let b = Daemon::start(&sb, "b", &["--no-relay-service"]);
    let a_reach = a.status()["reachability"].clone();
    assert_eq!(a_reach["port_mapping"], "off", "{a_reach}");
    assert_eq!(a_reach["relay_service"]["enabled"], true, "{a_reach}");
    assert_eq!(a_reach["relay_service"]["bulk"], true, "{a_reach}");
    assert_eq!(a_reach["relay_service"]["max_reservations"], 7, "{a_reach}");
    assert_eq!(a_reach["relay_service"]["max_circuits"], 3, "{a_reach}");
    let a_text = run_client(&[
        "--data-dir".as_ref(),
        a.data_dir.as_os_str(),
        "status".as_ref(),
    ])
    .stdout;
    assert!(
        a_text.contains(
            "relay service on (bulk circuits allowed): 0 of 7 slots held, 0 of 3 circuits open"
        ),
        "{a_text}"
    );
    // Nothing on loopback can tell a peer it is public: AutoNAT trusts only public addresses.
    assert_eq!(a_reach["nat"], "unknown", "{a_reach}");
    let b_reach = b.status()["reachability"].clone();
    assert_eq!(b_reach["relay_service"]["enabled"], false, "{b_reach}");
    assert_ne!(b_reach["port_mapping"], "off", "{b_reach}");
    let text = run_client(&[
        "--data-dir".as_ref(),
        b.data_dir.as_os_str(),
        "status".as_ref(),
    ]);
    assert!(text.stdout.contains("relay service off"), "{}", text.stdout);
    assert!(
        text.stdout.contains("reachability: not known yet"),
        "{}",
        text.stdout
    );

    let bad = run_client(&[
        "up".as_ref(),
        "--relay-bulk".as_ref(),
        "--relay-bulk-limit".as_ref(),
        "lots".as_ref(),
    ]);
    assert!(!bad.ok);
    assert!(
        bad.stderr
            .contains("--relay-bulk-limit \"lots\" is not a size"),
        "{}",
        bad.stderr
    );
}
