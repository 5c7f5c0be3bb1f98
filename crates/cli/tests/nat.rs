//! Peers behind home routers, in a small internet of network namespaces
//! (made and removed by the test; nothing leaves them): a public segment
//! holding a daemon that runs the index and relays, and home networks each
//! behind a router that masquerades (nftables) and drops what nobody inside
//! asked for. The peers find each other through the index, reach each other
//! through the relay, hole-punch a direct connection and move the file on it.
//! Needs root (CI runs as root), iproute2 and nftables (`.ci/run` installs it).
//!
//! The public segment uses 60.1.0.0/24, an address range that looks public on
//! purpose: AutoNAT and the choice of relays trust only public addresses.

mod support;

use std::process::Command;

use support::{
    can_make_namespaces, run_client, s, same_bytes, wait_until, write_random, Daemon, Sandbox, MIB,
};

const WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// How a home router maps and filters.
#[derive(Clone, Copy)]
enum Router {
    /// Keeps the source port for every destination (endpoint-independent
    /// mapping) and drops unsolicited packets: hole punching works through it.
    PortPreserving,
    /// A new random source port per destination ("symmetric"): hole punching fails.
    Symmetric,
    /// Port-preserving, and runs a UPnP IGD (miniupnpd) on its LAN side that
    /// maps ports on request.
    Upnp,
    /// The same, mapping ports by PCP (and NAT-PMP) only.
    Pcp,
    /// The same, by NAT-PMP only: PCP's questions are dropped unanswered.
    NatPmp,
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    run("ip", args);
}

fn nft(ns: &str, rule: &str) {
    run("ip", &["netns", "exec", ns, "nft", rule]);
}

/// The namespaces of one small internet, and the router daemons in them;
/// all ended (by PID) and deleted on drop, even after a failure.
struct Internet {
    tag: String,
    namespaces: Vec<String>,
    igds: Vec<std::process::Child>,
    folder: tempfile::TempDir,
}

impl Internet {
    /// A public segment (`wan` bridge, hub at 60.1.0.1) and one home per router kind.
    fn new(homes: &[Router]) -> Self {
        // Unique per internet, so the tests of this process build theirs side by side.
        static NETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = NETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("n{}x{nth}", std::process::id() % 100_000);
        let mut net = Self {
            tag,
            namespaces: Vec::new(),
            igds: Vec::new(),
            folder: tempfile::tempdir().expect("a folder for the routers"),
        };
        let wan = net.host("wan");
        ip(&["-n", &wan, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &wan, "link", "set", "br0", "up"]);
        let hub = net.host("hub");
        net.plug_into_wan(&hub, "eth0", "60.1.0.1/24");
        for (i, kind) in homes.iter().enumerate() {
            let n = i + 1;
            let router = net.host(&format!("r{n}"));
            let home = net.host(&format!("h{n}"));
            net.plug_into_wan(&router, "wan", &format!("60.1.0.{}/24", 10 + n));
            ip(&[
                "-n", &router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0",
                "netns", &home,
            ]);
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("192.168.{n}.1/24"),
                "dev",
                "lan",
            ]);
            ip(&["-n", &router, "link", "set", "lan", "up"]);
            ip(&[
                "-n",
                &home,
                "addr",
                "add",
                &format!("192.168.{n}.2/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &home, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &home,
                "route",
                "add",
                "default",
                "via",
                &format!("192.168.{n}.1"),
            ]);
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &router,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
            );
            masquerade(&router, *kind);
            if let Router::Upnp | Router::Pcp | Router::NatPmp = kind {
                let igd = net.start_igd(&router, n, *kind);
                net.igds.push(igd);
            }
        }
        net
    }

    /// Starts miniupnpd in `router` (home `n`), mapping ports for its LAN
    /// by UPnP IGD or by NAT-PMP, as `kind` says.
    fn start_igd(&self, router: &str, n: usize, kind: Router) -> std::process::Child {
        let (upnp, natpmp) = match kind {
            Router::Pcp | Router::NatPmp => ("no", "yes"),
            _ => ("yes", "no"),
        };
        if let Router::NatPmp = kind {
            // miniupnpd answers both; a PCP question (version 2, the first
            // byte after the UDP header) goes unanswered here.
            nft(
                router,
                "add rule ip filter input iifname lan udp dport 5351 @th,64,8 2 drop",
            );
        }
        for rule in [
            "add table inet upnp",
            "add chain inet upnp forward { type filter hook forward priority 0 ; }",
            "add chain inet upnp forward_upnp",
            "add rule inet upnp forward jump forward_upnp",
            "add chain inet upnp prerouting { type nat hook prerouting priority -100 ; }",
            "add chain inet upnp prerouting_upnp",
            "add rule inet upnp prerouting jump prerouting_upnp",
            "add chain inet upnp postrouting { type nat hook postrouting priority 100 ; }",
            "add chain inet upnp postrouting_upnp",
            "add rule inet upnp postrouting jump postrouting_upnp",
        ] {
            nft(router, rule);
        }
        let dir = self.folder.path();
        let config = dir.join(format!("miniupnpd{n}.conf"));
        std::fs::write(
            &config,
            format!(
                "ext_ifname=wan\nlistening_ip=lan\nhttp_port=0\nenable_upnp={upnp}\n\
                 enable_natpmp={natpmp}\nsecure_mode=yes\nsystem_uptime=yes\n\
                 uuid=3d3cec3a-8cf0-11e0-98ee-00100000000{n}\n\
                 upnp_table_name=upnp\nupnp_nat_table_name=upnp\n\
                 upnp_forward_chain=forward_upnp\nupnp_nat_chain=prerouting_upnp\n\
                 upnp_nat_postrouting_chain=postrouting_upnp\n\
                 allow 1024-65535 192.168.{n}.0/24 1024-65535\n\
                 deny 0-65535 0.0.0.0/0 0-65535\n"
            ),
        )
        .expect("write the miniupnpd configuration");
        let log = std::fs::File::create(dir.join(format!("miniupnpd{n}.log"))).expect("log");
        Command::new("ip")
            .args(["netns", "exec", router, "miniupnpd", "-d", "-f"])
            .arg(&config)
            .arg("-P")
            .arg(dir.join(format!("miniupnpd{n}.pid")))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start miniupnpd")
    }

    /// The port mappings (DNAT rules) the mapping router of home `n` holds now.
    fn mappings(&self, n: usize) -> usize {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("r{n}"))])
            .args(["nft", "list", "chain", "inet", "upnp", "prerouting_upnp"])
            .output()
            .expect("list the mappings");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("dnat"))
            .count()
    }

    /// A new namespace named after this test, with `lo` up.
    fn host(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.tag);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// Connects `ns` to the public bridge through interface `dev` at `addr`.
    fn plug_into_wan(&self, ns: &str, dev: &str, addr: &str) {
        let wan = format!("{}wan", self.tag);
        let port = format!("p{}", self.namespaces.len());
        ip(&[
            "-n", &wan, "link", "add", &port, "type", "veth", "peer", "name", dev, "netns", ns,
        ]);
        ip(&["-n", &wan, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &wan, "link", "set", &port, "up"]);
        ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }

    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.tag)
    }
}

/// Masquerades the home behind `router` and drops whatever arrives from the
/// outside unasked, for the router itself and for the home alike.
fn masquerade(router: &str, kind: Router) {
    nft(router, "add table ip nat");
    nft(
        router,
        "add chain ip nat post { type nat hook postrouting priority 100 ; }",
    );
    let rule = match kind {
        Router::PortPreserving | Router::Upnp | Router::Pcp | Router::NatPmp => {
            "add rule ip nat post oifname wan masquerade"
        }
        Router::Symmetric => "add rule ip nat post oifname wan masquerade random",
    };
    nft(router, rule);
    nft(router, "add table ip filter");
    for hook in ["input", "forward"] {
        nft(
            router,
            &format!("add chain ip filter {hook} {{ type filter hook {hook} priority 0 ; }}"),
        );
        nft(
            router,
            &format!("add rule ip filter {hook} iifname wan ct state established,related accept"),
        );
        // What a port mapping lets in.
        nft(
            router,
            &format!("add rule ip filter {hook} iifname wan ct status dnat accept"),
        );
        nft(
            router,
            &format!("add rule ip filter {hook} iifname wan drop"),
        );
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        for igd in &mut self.igds {
            let _ = igd.kill();
            let _ = igd.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn have_nft() -> bool {
    Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The hub (index + relay) and a joined daemon in each home, files shared by h1.
fn hub_and_homes(
    sandbox: &Sandbox,
    net: &Internet,
    homes: usize,
    hub_extra: &[&str],
) -> (Daemon, Vec<Daemon>) {
    hub_and_homes_with(sandbox, net, homes, (hub_extra, &[]))
}

/// The same, with options for the hub and for every home.
fn hub_and_homes_with(
    sandbox: &Sandbox,
    net: &Internet,
    homes: usize,
    (hub_extra, home_extra): (&[&str], &[&str]),
) -> (Daemon, Vec<Daemon>) {
    let hub_ns = net.ns("hub");
    let hub_args = [
        &["--index-listen", "0.0.0.0:1099", "--no-mdns"][..],
        hub_extra,
    ]
    .concat();
    let hub = Daemon::start_in(sandbox, "hub", Some(&hub_ns), &hub_args);
    hub.register("hub");
    hub.wait_joined();
    let index = "http://60.1.0.1:1099";
    let mut daemons = Vec::new();
    for n in 1..=homes {
        let ns = net.ns(&format!("h{n}"));
        let name = format!("h{n}");
        // A download whose one source failed fails after 3 s, not a minute.
        let args = [
            &["--index", index, "--no-mdns", "--source-patience", "3"][..],
            home_extra,
        ]
        .concat();
        let d = Daemon::start_in(sandbox, &name, Some(&ns), &args);
        d.register(&name);
        d.wait_joined();
        daemons.push(d);
    }
    (hub, daemons)
}

/// Waits until `d` holds a slot on a relay, and returns its status.
fn wait_relayed(d: &Daemon) -> serde_json::Value {
    wait_until("a peer behind a router to hold a relay slot", WAIT, || {
        let status = d.status();
        let reach = &status["reachability"];
        (reach["nat"] == "private"
            && reach["relayed_addrs"]
                .as_array()
                .is_some_and(|a| !a.is_empty()))
        .then_some(status)
    })
}

/// Waits until `d`'s search for `words` names `holder` with a relayed address.
fn wait_search_through_relay(d: &Daemon, words: &str, holder: &str) {
    let hit = wait_until("the file to be found with a relayed address", WAIT, || {
        let v = d.cli_ok(&["search", words]);
        let hit = v["results"].as_array()?.first()?.clone();
        let addrs = hit["sources"][0]["addrs"].to_string();
        addrs.contains("p2p-circuit").then_some(hit)
    });
    assert_eq!(s(&hit["sources"][0], "peer_id"), holder, "{hit}");
    let doubled = format!("{holder}/p2p/{holder}");
    assert!(
        !hit.to_string().contains(&doubled),
        "an address names its peer once: {hit}"
    );
}

#[test]
fn peers_behind_port_preserving_routers_hole_punch_and_download_directly() {
    if !routers_available() {
        return;
    }
    let net = Internet::new(&[Router::PortPreserving, Router::PortPreserving]);
    let sandbox = Sandbox::new();
    let film = sandbox.share_dir("h1").join("home movie.mkv");
    write_random(&film, 24 * MIB + 11);
    let (hub, homes) = hub_and_homes(&sandbox, &net, 2, &[]);
    let (h1, h2) = (&homes[0], &homes[1]);
    h1.wait_shared(1);

    let h1_status = wait_relayed(h1);
    let relayed = h1_status["reachability"]["relayed_addrs"][0]
        .as_str()
        .expect("a relayed address")
        .to_string();
    assert!(
        relayed.contains(&hub.peer_id()) && relayed.contains("/p2p-circuit"),
        "h1 is relayed by the hub: {relayed}"
    );
    let hub_reach = hub.status()["reachability"].clone();
    assert!(
        hub_reach["relay_service"]["reservations"].as_u64() >= Some(1),
        "the hub counts h1's slot: {hub_reach}"
    );
    wait_relayed(h2);

    wait_search_through_relay(h2, "home movie", &h1.peer_id());

    let h1_seen = download_hole_punched(h2, h1, &film, "/ip4/60.1.0.11/tcp/");
    assert_eq!(h1_seen["path"], "hole_punched", "{h1_seen}");
    drop((hub, homes));
}

/// `to` downloads `file` from `from`, and the data comes on a data
/// connection that got through both routers (a dial-back); `to` is
/// connected to `from` at an address starting with `remote_at` (its
/// router's). Returns what `to` knows of `from`.
fn download_hole_punched(
    to: &Daemon,
    from: &Daemon,
    file: &std::path::Path,
    remote_at: &str,
) -> serde_json::Value {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    let id = to.start_download(&[name]);
    let done = to.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(file, &to.downloads.join(name)));
    let path = done["peers"][0]["path"].clone();
    assert_eq!(path["connection"], "hole_punched", "{done}");
    assert_eq!(path["channel"], "tcp", "{done}");
    assert!(path["relay"].is_null(), "{done}");
    let seen = to
        .known_peer(&from.peer_id())
        .expect("the downloader knows the sharer");
    assert_ne!(seen["path"], "relayed", "{seen}");
    let remote = s(&seen, "remote_addr");
    assert!(
        remote.starts_with(remote_at),
        "the connection goes to the sharer's router itself: {seen}"
    );
    seen
}

/// The same over QUIC: homes that listen on QUIC only hole-punch a QUIC
/// connection (UDP through both routers), and the file's data connection
/// is dialled back on TCP as on any other connection.
#[test]
fn peers_behind_routers_hole_punch_over_quic() {
    if !routers_available() {
        return;
    }
    let net = Internet::new(&[Router::PortPreserving, Router::PortPreserving]);
    let sandbox = Sandbox::new();
    let song = sandbox.share_dir("h1").join("quic song.flac");
    write_random(&song, 12 * MIB + 5);
    let tcp = ["--listen", "/ip4/0.0.0.0/tcp/0"];
    let quic = ["--listen", "/ip4/0.0.0.0/udp/0/quic-v1"];
    let hub_listens = [&tcp[..], &quic[..]].concat();
    let (hub, homes) = hub_and_homes_with(&sandbox, &net, 2, (&hub_listens, &quic));
    let (h1, h2) = (&homes[0], &homes[1]);
    h1.wait_shared(1);
    let relayed = wait_relayed(h1)["reachability"]["relayed_addrs"].to_string();
    assert!(
        relayed.contains("/quic-v1/"),
        "h1 is relayed over QUIC: {relayed}"
    );
    wait_relayed(h2);
    wait_search_through_relay(h2, "quic song", &h1.peer_id());

    let h1_seen = download_hole_punched(h2, h1, &song, "/ip4/60.1.0.11/udp/");
    assert_eq!(h1_seen["path"], "hole_punched", "{h1_seen}");
    assert!(
        s(&h1_seen, "remote_addr").contains("/quic-v1"),
        "a QUIC connection: {h1_seen}"
    );
    drop((hub, homes));
}

/// A public peer downloads from one behind a router, on the connection the
/// latter opened to it: the data port cannot be reached from outside, so
/// the sharer connects back from it at the downloader's asking, and the
/// data travels on the data connection, not on a stream. Both ends say so.
#[test]
fn a_sharer_behind_a_router_connects_back_for_the_data() {
    if !routers_available() {
        return;
    }
    let net = Internet::new(&[Router::PortPreserving]);
    let sandbox = Sandbox::new();
    let talk = sandbox.share_dir("h1").join("long talk.ogg");
    write_random(&talk, 16 * MIB + 7);
    // Slow enough to see the upload while it runs.
    let (hub, homes) = hub_and_homes(&sandbox, &net, 1, &["--max-download-rate", "6M"]);
    let h1 = &homes[0];
    h1.wait_shared(1);
    wait_until("the hub to find h1's talk", WAIT, || {
        let v = hub.cli_ok(&["search", "long talk"]);
        v["results"].as_array()?.first().cloned()
    });

    let id = hub.start_download(&["long talk.ogg"]);
    let upload = wait_until("h1 to list the hub's upload", WAIT, || {
        h1.cli_ok(&["uploads"]).as_array()?.first().cloned()
    });
    assert_eq!(upload["path"]["connection"], "hole_punched", "{upload}");
    let done = hub.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(&talk, &hub.downloads.join("long talk.ogg")));
    let path = done["peers"][0]["path"].clone();
    assert_eq!(path["connection"], "hole_punched", "{done}");
    assert_eq!(path["channel"], "tcp", "{done}");
    drop((hub, homes));
}

/// Homes behind routers of `kinds`, h1 sharing "far away.mkv" of `size`
/// bytes and h2 finding it at h1's relayed address. Drop the daemons
/// before the internet.
fn far_away_film(
    sandbox: &Sandbox,
    (kinds, hub_extra): ([Router; 2], &[&str]),
    size: u64,
) -> (Internet, Daemon, Vec<Daemon>, std::path::PathBuf) {
    let net = Internet::new(&kinds);
    let film = sandbox.share_dir("h1").join("far away.mkv");
    write_random(&film, size);
    let (hub, homes) = hub_and_homes(sandbox, &net, 2, hub_extra);
    homes[0].wait_shared(1);
    wait_relayed(&homes[0]);
    wait_search_through_relay(&homes[1], "far away", &homes[0].peer_id());
    (net, hub, homes, film)
}

/// Two homes whose routers both change ports for every destination.
const BOTH_SYMMETRIC: [Router; 2] = [Router::Symmetric, Router::Symmetric];

/// A router that keeps ports facing one that changes them: hole punching
/// of the libp2p connection fails and it stays relayed, but the data
/// connection is punched (both ends try many ports at once and one pair
/// meets), with a relay that carries no bulk data. Both ends say so.
fn punched_through(kinds: [Router; 2]) {
    let sandbox = Sandbox::new();
    let (_net, hub, homes, film) = far_away_film(&sandbox, (kinds, &[]), 8 * MIB + 3);
    let (h1, h2) = (&homes[0], &homes[1]);
    for (home, ip) in [(h1, "60.1.0.11"), (h2, "60.1.0.12")] {
        let status = home.status();
        assert_eq!(status["reachability"]["seen_as"], ip, "{status}");
    }
    let id = h2.start_download(&["far away.mkv"]);
    let done = h2.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(&film, &h2.downloads.join("far away.mkv")));
    let path = done["peers"][0]["path"].clone();
    assert_eq!(path["connection"], "hole_punched", "{done}");
    assert_eq!(path["channel"], "tcp", "{done}");
    assert!(path["relay"].is_null(), "{done}");
    let seen = h2.known_peer(&h1.peer_id()).expect("h2 knows h1");
    assert_eq!(
        seen["path"], "relayed",
        "the libp2p connection stays relayed: {seen}"
    );
    drop((hub, homes));
}

#[test]
fn a_sharer_behind_a_port_keeping_router_punches_through_to_a_symmetric_one() {
    if routers_available() {
        punched_through([Router::PortPreserving, Router::Symmetric]);
    }
}

#[test]
fn a_sharer_behind_a_symmetric_router_punches_through_to_a_port_keeping_one() {
    if routers_available() {
        punched_through([Router::Symmetric, Router::PortPreserving]);
    }
}

/// A downloader behind a router that changes ports cannot be connected
/// back to (the sharer would knock on a port that router never opened), so
/// facing a sharer whose libp2p port is mapped but whose data port is not,
/// it punches the data connection on the direct libp2p connection instead
/// of waiting for a dial-back and falling back to a stream.
#[test]
fn a_downloader_behind_a_symmetric_router_punches_to_a_mapped_sharer() {
    if !mapping_routers_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let (net, hub, homes, status) = {
        let net = Internet::new(&[Router::Upnp, Router::Symmetric]);
        write_random(
            &sandbox.share_dir("h1").join("mapped film.mkv"),
            8 * MIB + 5,
        );
        let (hub, homes) = hub_and_homes(&sandbox, &net, 2, &[]);
        homes[0].wait_shared(1);
        let status = wait_until("h1 to map its port and be found public", WAIT, || {
            let status = homes[0].status();
            let reach = &status["reachability"];
            (reach["port_mapping"] == "mapped" && reach["nat"] == "public").then_some(status)
        });
        (net, hub, homes, status)
    };
    let (h1, h2) = (&homes[0], &homes[1]);
    let film = sandbox.share_dir("h1").join("mapped film.mkv");
    assert!(
        status["reachability"]["public_addrs"]
            .to_string()
            .contains("/ip4/60.1.0.11/tcp/"),
        "{status}"
    );
    let path = download_from_mapped_home(h2, h1, &film);
    assert_eq!(path["connection"], "hole_punched", "{path}");
    let reach = h2.status()["reachability"].clone();
    assert_eq!(reach["mapping"], "changes", "h2 knows its router: {reach}");
    drop((hub, homes, net));
}

/// Whether this machine can build the namespaces and routers (root, iproute2, nftables).
fn routers_available() -> bool {
    let available = can_make_namespaces() && have_nft();
    if !available {
        eprintln!("skipped: needs root, iproute2 and nftables");
    }
    available
}

/// Both routers pick a new port for every destination, so neither hole
/// punching nor a punch of the data connection can work, and only the
/// relay joins the two homes. A relay with
/// small circuits (the default) does not carry the file: the download fails
/// at once with the reason, rather than stalling.
#[test]
fn behind_a_symmetric_router_a_small_relay_refuses_the_data_with_a_reason() {
    if !routers_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let (_net, hub, homes, _film) = far_away_film(&sandbox, (BOTH_SYMMETRIC, &[]), 4 * MIB);
    let h2 = &homes[1];
    let id = h2.start_download(&["far away.mkv"]);
    let ended = h2.wait_download_end(id);
    assert_ne!(s(&ended, "state"), "done", "{ended}");
    let note = ended["peers"][0]["note"].to_string();
    assert!(
        note.contains(&hub.peer_id()) && note.contains("relay") && note.contains("bulk"),
        "the source's note names the relay and what would help: {ended}"
    );
    assert!(!h2.downloads.join("far away.mkv").exists());
    drop((hub, homes));
}

/// A relay that allows bulk circuits only up to a size its operator chose
/// does not carry a larger file either, and the reason says its limit.
#[test]
fn behind_a_symmetric_router_a_bulk_relay_with_a_limit_refuses_a_larger_file() {
    if !routers_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let limited = ["--relay-bulk", "--relay-bulk-limit", "1M"];
    let (_net, hub, homes, _film) = far_away_film(&sandbox, (BOTH_SYMMETRIC, &limited), 3 * MIB);
    let h2 = &homes[1];
    let id = h2.start_download(&["far away.mkv"]);
    let ended = h2.wait_download_end(id);
    assert_ne!(s(&ended, "state"), "done", "{ended}");
    let note = ended["peers"][0]["note"].to_string();
    assert!(
        note.contains(&hub.peer_id()) && note.contains("at most 1048576 bytes"),
        "the note names the relay and its limit: {ended}"
    );
    drop((hub, homes));
}

/// The same homes, with a relay that allows bulk circuits: the file comes
/// through the relay, and both ends say so.
#[test]
fn behind_a_symmetric_router_a_bulk_relay_carries_the_data() {
    if !routers_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let (_net, hub, homes, film) =
        far_away_film(&sandbox, (BOTH_SYMMETRIC, &["--relay-bulk"]), 6 * MIB + 5);
    let h2 = &homes[1];
    let id = h2.start_download(&["far away.mkv"]);
    let done = h2.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(&film, &h2.downloads.join("far away.mkv")));
    let path = done["peers"][0]["path"].clone();
    assert_eq!(path["connection"], "relayed", "{done}");
    assert_eq!(path["channel"], "stream", "{done}");
    assert_eq!(path["relay"], hub.peer_id().as_str(), "{done}");
    drop((hub, homes));
}

/// A router that maps ports on request (UPnP IGD): the peer behind it maps
/// its port, is found public and is reached directly, with no relay and no
/// hole punching; when it stops, the mapping goes.
#[test]
fn a_peer_behind_a_upnp_router_maps_its_port_and_is_reached_directly() {
    if !mapping_routers_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let (net, hub, homes, status) = mapped_home(&sandbox, Router::Upnp, "mapped song.flac");
    let reach = &status["reachability"];
    assert_eq!(
        reach["mapped_by"],
        serde_json::json!(["upnp_igd"]),
        "{reach}"
    );
    assert!(net.mappings(1) >= 1, "the router holds the mapping");
    // Only the libp2p port is mapped: the data connection is made by a dial-back.
    let song = sandbox.share_dir("h1").join("mapped song.flac");
    let path = download_from_mapped_home(&hub, &homes[0], &song);
    assert_ne!(path["connection"], "relayed", "{path}");
    stop_and_see_mappings_go(&net, hub, homes);
}

/// A router that maps ports by PCP: the peer behind it maps its libp2p
/// port and its data port, is found public, and a public peer reaches both
/// directly (the data connection needs no dial-back); status names the
/// protocol; when the peer stops, the mappings go.
#[test]
fn a_peer_behind_a_pcp_router_maps_its_ports_and_is_reached_directly() {
    if mapping_routers_available() {
        mapped_by_port_control(Router::Pcp, ("pcp", "PCP"));
    }
}

/// The same with a router that speaks NAT-PMP only (PCP goes unanswered).
#[test]
fn a_peer_behind_a_nat_pmp_router_maps_its_ports_and_is_reached_directly() {
    if mapping_routers_available() {
        mapped_by_port_control(Router::NatPmp, ("nat_pmp", "NAT-PMP"));
    }
}

/// A home behind a `kind` router maps both ports by the protocol `(named,
/// shown)`, and the hub downloads from it directly on both.
fn mapped_by_port_control(kind: Router, (named, shown): (&str, &str)) {
    let sandbox = Sandbox::new();
    let (net, hub, homes, status) = mapped_home(&sandbox, kind, "mapped clip.mp4");
    let reach = &status["reachability"];
    assert_eq!(reach["mapped_by"], serde_json::json!([named]), "{reach}");
    let port = status["addrs"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find_map(|a| a.as_str()?.strip_prefix("/ip4/192.168.1.2/tcp/"))
        })
        .and_then(|rest| rest.split('/').next())
        .expect("h1 listens on its LAN address")
        .to_string();
    assert!(
        reach["public_addrs"]
            .to_string()
            .contains(&format!("/ip4/60.1.0.11/tcp/{port}")),
        "the same port outside: {reach}"
    );
    assert_eq!(net.mappings(1), 2, "the libp2p port and the data port");
    let text = homes[0].text(&["status"]);
    assert!(
        text.contains(&format!("port mapping: mapped by {shown}")),
        "{text}"
    );
    assert!(text.contains("seen from outside as 60.1.0.11"), "{text}");
    let clip = sandbox.share_dir("h1").join("mapped clip.mp4");
    let path = download_from_mapped_home(&hub, &homes[0], &clip);
    assert_eq!(
        path["connection"], "direct",
        "the data port is mapped: {path}"
    );
    stop_and_see_mappings_go(&net, hub, homes);
}

/// Whether this machine can build routers that map ports (root, iproute2, nftables, miniupnpd).
fn mapping_routers_available() -> bool {
    let available = can_make_namespaces() && have_nft() && have_miniupnpd();
    if !available {
        eprintln!("skipped: needs root, iproute2, nftables and miniupnpd");
    }
    available
}

/// One home behind a router of `kind` that maps ports, sharing `name`;
/// waits until its ports are mapped and it is found public (at its
/// router's address, with no relay). Returns h1's status.
fn mapped_home(
    sandbox: &Sandbox,
    kind: Router,
    name: &str,
) -> (Internet, Daemon, Vec<Daemon>, serde_json::Value) {
    let net = Internet::new(&[kind]);
    write_random(&sandbox.share_dir("h1").join(name), 5 * MIB + 1);
    let (hub, homes) = hub_and_homes(sandbox, &net, 1, &[]);
    let h1 = &homes[0];
    h1.wait_shared(1);
    let status = wait_until("h1 to map its ports and be found public", WAIT, || {
        let status = h1.status();
        let reach = &status["reachability"];
        (reach["port_mapping"] == "mapped" && reach["nat"] == "public").then_some(status)
    });
    let reach = &status["reachability"];
    assert!(
        reach["public_addrs"]
            .to_string()
            .contains("/ip4/60.1.0.11/tcp/"),
        "the mapped address is the router's: {reach}"
    );
    assert_eq!(reach["relayed_addrs"], serde_json::json!([]), "{reach}");
    (net, hub, homes, status)
}

/// `downloader` finds `name` at h1's mapped address and downloads it over
/// a direct libp2p connection, the data on TCP; returns the data's path.
fn download_from_mapped_home(
    downloader: &Daemon,
    h1: &Daemon,
    file: &std::path::Path,
) -> serde_json::Value {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    let words = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let hit = wait_until(
        "the downloader to find h1's file at its mapped address",
        WAIT,
        || {
            let v = downloader.cli_ok(&["search", words]);
            let hit = v["results"].as_array()?.first()?.clone();
            let addrs = hit["sources"][0]["addrs"].to_string();
            addrs.contains("/ip4/60.1.0.11/").then_some(hit)
        },
    );
    assert_eq!(s(&hit["sources"][0], "peer_id"), h1.peer_id(), "{hit}");
    let id = downloader.start_download(&[name]);
    let done = downloader.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(file, &downloader.downloads.join(name)));
    let h1_seen = downloader
        .known_peer(&h1.peer_id())
        .expect("the downloader knows h1");
    assert_eq!(h1_seen["path"], "direct", "{h1_seen}");
    let path = done["peers"][0]["path"].clone();
    assert_eq!(path["channel"], "tcp", "{done}");
    assert!(path["relay"].is_null(), "{done}");
    path
}

/// Stops h1 and waits for its router to drop every mapping.
fn stop_and_see_mappings_go(net: &Internet, hub: Daemon, mut homes: Vec<Daemon>) {
    homes[0].stop();
    wait_until("the router to drop the mappings", WAIT, || {
        (net.mappings(1) == 0).then_some(())
    });
    drop((hub, homes));
}

fn have_miniupnpd() -> bool {
    Command::new("miniupnpd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// With no index at all: the homes enter the DHT through the hub, find its
/// relay there, announce their relayed addresses in their records, and the
/// download is found through the DHT and hole-punched as with an index.
#[test]
fn with_no_index_the_dht_brings_peers_behind_routers_together() {
    if !routers_available() {
        return;
    }
    let net = Internet::new(&[Router::PortPreserving, Router::PortPreserving]);
    let sandbox = Sandbox::new();
    let film = sandbox.share_dir("h1").join("no index film.mkv");
    write_random(&film, 12 * MIB + 7);
    let dht = ["--no-index", "--no-mdns", "--source-patience", "3"];
    let hub = Daemon::start_in(&sandbox, "hub", Some(&net.ns("hub")), &dht);
    let status = hub.status();
    let bootstrap = status["addrs"]
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.starts_with("/ip4/60.1.0.1/"))
        .expect("the hub's public address")
        .to_string();
    let joined = [&dht[..], &["--bootstrap", bootstrap.as_str()]].concat();
    let h1 = Daemon::start_in(&sandbox, "h1", Some(&net.ns("h1")), &joined);
    let h2 = Daemon::start_in(&sandbox, "h2", Some(&net.ns("h2")), &joined);
    h1.wait_shared(1);
    let relayed = wait_relayed(&h1)["reachability"]["relayed_addrs"].to_string();
    assert!(relayed.contains(&hub.peer_id()), "{relayed}");

    let hit = wait_until("h2 to find the film through the DHT", WAIT, || {
        let v = h2.cli_ok(&["search", "no index film"]);
        v["results"].as_array()?.first().cloned()
    });
    assert_eq!(s(&hit["sources"][0], "peer_id"), h1.peer_id(), "{hit}");
    assert_eq!(hit["sources"][0]["found_by"], serde_json::json!(["dht"]));

    let id = h2.start_download(&["no index film.mkv"]);
    let done = h2.wait_download_end(id);
    assert_eq!(s(&done, "state"), "done", "{done}");
    assert!(same_bytes(&film, &h2.downloads.join("no index film.mkv")));
    assert_eq!(
        done["peers"][0]["path"]["connection"], "hole_punched",
        "{done}"
    );
    drop((hub, h1, h2));
}

/// `--relay ADDR` takes a slot on that relay whatever AutoNAT says (here on
/// loopback, where AutoNAT never decides), and `status` shows the relayed address.
#[test]
fn a_named_relay_holds_a_slot_whatever_autonat_says() {
    let sandbox = Sandbox::new();
    let relay = Daemon::start(&sandbox, "relay", &[]);
    let named = relay.addr();
    let b = Daemon::start(&sandbox, "b", &["--relay", named.as_str()]);
    let status = wait_until("b to hold a slot on the named relay", WAIT, || {
        let status = b.status();
        let held = status["reachability"]["relayed_addrs"].to_string();
        held.contains(&relay.peer_id()).then_some(status)
    });
    assert_eq!(status["reachability"]["nat"], "unknown", "{status}");
    let addrs = status["addrs"].to_string();
    assert!(
        addrs.contains("/p2p-circuit/p2p/"),
        "status lists it: {addrs}"
    );
    let service = wait_until("the relay to count the slot", WAIT, || {
        let service = relay.status()["reachability"]["relay_service"].clone();
        (service["reservations"] == 1).then_some(service)
    });
    assert_eq!(service["enabled"], true, "{service}");

    let refused = run_client(&[
        "up".as_ref(),
        "--relay".as_ref(),
        "/ip4/127.0.0.1/tcp/1".as_ref(),
        "--no-index".as_ref(),
        "--data-dir".as_ref(),
        sandbox.dir("c").as_os_str(),
    ]);
    assert!(!refused.ok, "a relay without its peer id is refused");
    let message = &refused.stderr;
    assert!(
        message.contains("--relay") && message.contains("/p2p/"),
        "{message}"
    );
}
