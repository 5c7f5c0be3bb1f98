//! LAN discovery with nothing configured: three hosts in network namespaces
//! on one bridge (made and removed by the test, nothing leaves them), daemons
//! with no index and no bootstrap peer, finding each other by mDNS only, then
//! searching and downloading. Needs root (CI runs as root) and iproute2.

mod support;

use std::process::Command;

use support::{
    can_make_namespaces, s, same_bytes, wait_until, write_random, Daemon, Sandbox, MIB, WAIT,
};

/// A bridge and hosts on it; everything is deleted on drop, even after a failure.
struct Lan {
    bridge: String,
    hosts: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    /// `count` hosts named after this process, addresses 10.77.N.1.. on one bridge.
    fn new(count: usize) -> Self {
        // Unique per LAN, so tests in this process build theirs side by side.
        static LANS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = LANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = (std::process::id() % 10_000) * 10 + nth % 10;
        let mut lan = Self {
            bridge: format!("psbr{tag}"),
            hosts: Vec::new(),
        };
        ip(&["link", "add", &lan.bridge, "type", "bridge"]);
        ip(&["link", "set", &lan.bridge, "up"]);
        let subnet = (tag % 25) * 10 + nth % 10;
        for i in 1..=count {
            let host = format!("ps{tag}h{i}");
            let veth = format!("ps{tag}v{i}");
            ip(&["netns", "add", &host]);
            lan.hosts.push(host.clone());
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &host,
            ]);
            ip(&["link", "set", &veth, "master", &lan.bridge]);
            ip(&["link", "set", &veth, "up"]);
            let addr = format!("10.77.{subnet}.{i}/24");
            ip(&["-n", &host, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &host, "link", "set", "eth0", "up"]);
            ip(&["-n", &host, "link", "set", "lo", "up"]);
            ip(&["-n", &host, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
        }
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", host]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

#[test]
fn daemons_on_a_lan_find_each_other_by_mdns_and_download() {
    if !can_make_namespaces() {
        return;
    }
    let lan = Lan::new(3);
    let sandbox = Sandbox::new();
    let song = sandbox.share_dir("a").join("lan song.mp3");
    write_random(&song, MIB + 5);
    // Daemons stop (in the sandbox's drop order) before the namespaces go.
    let hosts: Vec<Option<&str>> = lan.hosts.iter().map(|h| Some(h.as_str())).collect();
    let a = Daemon::start_in(&sandbox, "a", hosts[0], &["--no-index"]);
    let b = Daemon::start_in(&sandbox, "b", hosts[1], &["--no-index"]);
    let c = Daemon::start_in(&sandbox, "c", hosts[2], &["--no-index"]);
    a.wait_shared(1);
    let a_id = a.peer_id();

    let found = wait_until("c to find a's song through the LAN", WAIT, || {
        let v = c.cli_ok(&["search", "song"]);
        (v["results"].as_array().map(Vec::len) == Some(1)).then_some(v)
    });
    let holder = &found["results"][0]["sources"][0];
    assert_eq!(s(holder, "peer_id"), a_id);
    assert_eq!(holder["found_by"], serde_json::json!(["lan"]), "{found}");

    let got = c.cli_ok(&["get", "lan song.mp3"]);
    assert_eq!(got["state"], "done", "{got}");
    assert!(same_bytes(&song, &c.downloads.join("lan song.mp3")));

    let peers = b.cli_ok(&["peers"]);
    let via_mdns = peers["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter(|p| {
            p["found_by"]
                .as_array()
                .is_some_and(|f| f.contains(&serde_json::Value::from("mdns")))
        })
        .count();
    assert!(via_mdns >= 1, "b found peers by mDNS: {peers}");
    drop((a, b, c));
}

/// A second `up` on a LAN where an index already runs says so, and how to
/// join it, instead of silently starting a second network.
#[test]
fn a_second_index_on_the_lan_is_pointed_out_with_the_way_to_join_the_first() {
    if !can_make_namespaces() {
        return;
    }
    let lan = Lan::new(2);
    let sandbox = Sandbox::new();
    let embedded = ["--index-listen", "0.0.0.0:1099"];
    let first = Daemon::start_in(&sandbox, "first", Some(&lan.hosts[0]), &embedded);
    let second = Daemon::start_in(&sandbox, "second", Some(&lan.hosts[1]), &embedded);
    let first_ip = lan_ip(&first);
    let advice = format!("restart with `peershare up --index http://{first_ip}:1099`");
    wait_until(
        "the second daemon to point out the first index",
        WAIT,
        || second.log_text().contains(&advice).then_some(()),
    );
    let log = second.log_text();
    assert!(
        log.contains(&format!(
            "another peershare index runs on this LAN at http://{first_ip}:1099"
        )),
        "{log}"
    );
    assert_eq!(log.matches(&advice).count(), 1, "said once: {log}");

    // A daemon that joined the first index (and runs none) is not warned.
    let joined = Daemon::start_in(
        &sandbox,
        "joined",
        Some(&lan.hosts[1]),
        &["--index", &format!("http://{first_ip}:1099")],
    );
    let first_id = first.peer_id();
    wait_until(
        "the joined daemon to meet the first on the LAN",
        WAIT,
        || {
            let peers = joined.cli_ok(&["peers"]);
            let met = peers["peers"].as_array().expect("peers").iter().any(|p| {
                s(p, "peer_id") == first_id
                    && p["connected"] == true
                    && p["found_by"]
                        .as_array()
                        .is_some_and(|f| f.contains(&serde_json::Value::from("mdns")))
            });
            met.then_some(())
        },
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let log = joined.log_text();
    assert!(!log.contains("another peershare index"), "{log}");
    drop((first, second, joined));
}

/// The LAN address `d` is reachable at (10.77.…).
fn lan_ip(d: &Daemon) -> String {
    let status = d.status();
    status["addrs"]
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(|a| a.as_str())
        .find_map(|a| {
            a.strip_prefix("/ip4/10.77.")
                .map(|rest| format!("10.77.{}", rest.split('/').next().unwrap()))
        })
        .unwrap_or_else(|| panic!("no LAN address in {status}"))
}
