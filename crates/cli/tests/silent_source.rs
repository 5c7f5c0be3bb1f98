//! Sources that accept and then never answer (issue 13, item 5), with real
//! daemons frozen by SIGSTOP: a frozen holder must not hold a download that
//! another holder can serve, and a download whose only source froze waits
//! with a reason (queued, retried with a growing pause) and completes once
//! the source thaws.

mod support;

use std::path::Path;
use std::time::Instant;

use support::*;

/// Thaws a daemon frozen by the test when it goes out of scope, panic or
/// not (the daemon's own guard kills it afterwards).
struct Frozen<'a>(&'a Daemon);

impl<'a> Frozen<'a> {
    fn freeze(daemon: &'a Daemon) -> Self {
        daemon.freeze(true);
        Self(daemon)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.freeze(false);
    }
}

/// A client process the test started, killed (by its own pid) if the test ends early.
struct Client(Option<std::process::Child>);

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A joined sharer, limited to `rate` upload when given (so a download from it lasts a while).
fn sharer(sb: &Sandbox, name: &str, index: &IndexProcess, rate: Option<&str>) -> Daemon {
    let mut extra = vec!["--index", &index.url, "--no-watch"];
    if let Some(rate) = rate {
        extra.extend(["--max-upload-rate", rate]);
    }
    let d = Daemon::start(sb, name, &extra);
    d.register(name);
    d.wait_joined();
    d.wait_shared(1);
    d
}

/// Alice and carol hold the same file; bob uses one source at a time, so a
/// source that keeps him waiting for an answer blocks the other unless the
/// download notices. Alice asks her person (`--policy ask`) and holds bob's
/// request; then her process freezes, so no answer (not even her
/// ask-timeout's rejection) ever comes. Bob must finish from carol within
/// the usual test deadline, not after the request's own timeout.
#[test]
fn a_frozen_holder_does_not_hold_a_download_another_holder_can_serve() {
    let sb = Sandbox::new();
    let index = IndexProcess::start(&sb, &[]);
    let first = sb.share_dir("alice").join("song.flac");
    let id = write_random(&first, 8 * MIB);
    std::fs::copy(&first, sb.share_dir("carol").join("song.flac")).expect("copy");
    let alice = {
        let d = Daemon::start(
            &sb,
            "alice",
            &["--index", &index.url, "--no-watch", "--policy", "ask"],
        );
        d.register("alice");
        d.wait_joined();
        d.wait_shared(1);
        d
    };
    let carol = sharer(&sb, "carol", &index, None);
    let bob = Daemon::start(&sb, "bob", &["--index", &index.url, "--max-sources", "1"]);
    bob.register("bob");
    bob.wait_joined();

    let dl = bob.start_download(&[&alice.addr(), "song.flac"]);
    wait_until("alice to hold bob's request for her person", WAIT, || {
        let held = alice.cli_ok(&["requests"]);
        (held.as_array().map(Vec::len) == Some(1)).then_some(())
    });
    let frozen = Frozen::freeze(&alice);
    let froze_at = Instant::now();
    // wait_download_end gives up (and fails the test) after WAIT = 90 s.
    let end = bob.wait_download_end(dl);
    let took = froze_at.elapsed();
    drop(frozen);
    assert_eq!(s(&end, "state"), "done", "{end}\n{}", bob.log_text());
    assert!(
        same_bytes(Path::new(&s(&end, "path")), &first),
        "byte-exact"
    );
    assert_eq!(b3_file(Path::new(&s(&end, "path"))), id);
    let peers = end["peers"].as_array().expect("peers in the record");
    let from = |peer: &str| {
        peers
            .iter()
            .find(|p| p["peer_id"] == peer)
            .unwrap_or_else(|| panic!("{peer} not among the sources: {end}"))
    };
    assert!(
        n(from(&carol.peer_id()), "pieces") > 0,
        "carol served the file: {end}"
    );
    eprintln!("the download finished {took:?} after alice froze");
}

/// Bob's only source, alice, freezes in the middle of the transfer. Bob's
/// download does not fail and does not sit silently: it is queued with a
/// reason naming the silence (and `peershare get` prints it), it keeps
/// asking with a growing pause, and once alice thaws it completes byte-exact.
#[test]
fn a_lone_frozen_source_is_waited_for_with_a_reason_and_the_download_completes() {
    let sb = Sandbox::new();
    let index = IndexProcess::start(&sb, &[]);
    let path = sb.share_dir("alice").join("film.mkv");
    let id = write_random(&path, 8 * MIB);
    let alice = sharer(&sb, "alice", &index, Some("1M"));
    let bob = Daemon::start(&sb, "bob", &["--index", &index.url]);
    bob.register("bob");
    bob.wait_joined();

    // `get` as a person runs it (no --json): it follows the download and
    // says on stderr why it waits.
    let mut get = Client(Some(bob.spawn_person_client(&[
        "get",
        &alice.addr(),
        "film.mkv",
    ])));
    let dl = wait_until("the download to appear", WAIT, || {
        let list = bob.cli_ok(&["downloads"]);
        list.as_array()
            .and_then(|l| l.first())
            .and_then(|d| d["id"].as_i64())
    });
    bob.wait_download(dl, "to take a first piece", |d| {
        assert_ne!(d["state"], "failed", "{d}");
        n(d, "verified_bytes") >= MIB
    });

    let frozen = Frozen::freeze(&alice);
    let waiting = bob.wait_download(dl, "to say why it waits", |d| {
        assert_ne!(
            d["state"], "failed",
            "a frozen source must not fail the download: {d}"
        );
        assert_ne!(d["state"], "done", "finished from a frozen source? {d}");
        let queued = d["state"] == "queued" && s(d, "error").contains("stopped answering");
        let silent = d["peers"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["phase"] == "silent"));
        queued || silent
    });
    eprintln!("while alice is frozen: {waiting}");
    drop(frozen);

    let end = bob.wait_download_end(dl);
    assert_eq!(s(&end, "state"), "done", "{end}\n{}", bob.log_text());
    assert!(same_bytes(Path::new(&s(&end, "path")), &path), "byte-exact");
    assert_eq!(b3_file(Path::new(&s(&end, "path"))), id);

    let child = get.0.as_mut().expect("get runs");
    let out = wait_until("get to exit", WAIT, || child.try_wait().expect("try_wait"));
    let output = get
        .0
        .take()
        .expect("get ran")
        .wait_with_output()
        .expect("get's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        out.success(),
        "get ends well once the file is here: {stderr}"
    );
    assert!(
        stderr.contains("waits:") && stderr.contains("stopped answering"),
        "get printed why the download waited: {stderr}"
    );
}
