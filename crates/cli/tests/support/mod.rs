//! Test harness for the end-to-end tests: real `peershare` daemons in their
//! own temporary folders, talking over real sockets on 127.0.0.1, driven
//! through the real command-line client.
//!
//! Deadlines here only stop a hung test; no assertion depends on timing.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::RngCore;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_peershare");

/// 1 MiB.
pub const MIB: u64 = 1 << 20;

/// How long a daemon may take to come up.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a single client command may run before the test is declared hung.
const CLI_DEADLINE: Duration = Duration::from_secs(120);
/// Default deadline for [`wait_until`] loops in tests.
pub const WAIT: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub fn wait_until<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= end {
            panic!("gave up after {deadline:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A temporary folder holding every daemon's folders and logs for one test.
pub struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    /// A fresh, empty sandbox.
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("peershare-e2e-")
            .tempdir()
            .expect("a temporary folder");
        Self { root }
    }

    /// The sandbox's root folder.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The folder daemon `name` shares, created if needed: fill it before
    /// [`Daemon::start`] so the daemon's first scan sees the final files.
    pub fn share_dir(&self, name: &str) -> PathBuf {
        self.dir(&format!("{name}/share"))
    }

    /// A folder inside the sandbox, created if needed.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.path().join(rel);
        std::fs::create_dir_all(&p).expect("create a sandbox folder");
        p
    }
}

/// The outcome of one client command.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status was zero.
    pub ok: bool,
    /// Every JSON line printed on stdout, in order.
    pub values: Vec<Value>,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
}

impl CliOutput {
    /// The first JSON value printed (`Null` if none).
    pub fn json(&self) -> Value {
        self.values.first().cloned().unwrap_or(Value::Null)
    }

    /// The error message the CLI printed (`{"error": "..."}`), if any.
    pub fn error_message(&self) -> Option<String> {
        self.values
            .iter()
            .rev()
            .filter(|v| v.as_object().is_some_and(|o| o.len() == 1))
            .find_map(|v| v["error"].as_str().map(str::to_string))
    }
}

/// Runs the client with `args` (no implicit options), bounded by [`CLI_DEADLINE`].
pub fn run_client(args: &[&std::ffi::OsStr]) -> CliOutput {
    run_client_with_input(args, None)
}

/// Runs the client with `args`, writing `input` to its standard input.
pub fn run_client_with_input(args: &[&std::ffi::OsStr], input: Option<&str>) -> CliOutput {
    run_client_in(None, args, input)
}

/// The binary, run inside network namespace `netns` when given.
/// Whether the tests run as root (network namespaces need it; CI runs as root).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether a test that needs network namespaces can run; says why not when it cannot.
pub fn can_make_namespaces() -> bool {
    let root = is_root();
    if !root {
        eprintln!("skipped: network namespaces need root (CI runs as root)");
    }
    root
}

fn peershare(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, BIN]);
            cmd
        }
        None => Command::new(BIN),
    }
}

/// Runs the client (inside `netns` when given) with `args` and `input` on its standard input.
pub fn run_client_in(
    netns: Option<&str>,
    args: &[&std::ffi::OsStr],
    input: Option<&str>,
) -> CliOutput {
    let mut child = peershare(netns)
        .args(args)
        .env_remove("PEERSHARE_API")
        .env_remove("PEERSHARE_DATA_DIR")
        .env_remove("PEERSHARE_INDEX")
        .env("NO_COLOR", "1")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the peershare client");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .expect("write the client's input");
    }
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + CLI_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("client command {args:?} still running after {CLI_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_thread.join().expect("stdout reader");
    let stderr = err_thread.join().expect("stderr reader");
    let values = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    CliOutput {
        ok: status.success(),
        values,
        stdout,
        stderr,
    }
}

/// One `peershare up` process and its folders.
pub struct Daemon {
    /// A short name for messages ("a", "b").
    pub name: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// The shared folder (`--share`).
    pub share_dir: PathBuf,
    /// `--downloads`.
    pub downloads: PathBuf,
    /// Where the daemon's stderr goes (appended over restarts).
    pub log: PathBuf,
    extra: Vec<String>,
    netns: Option<String>,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon named `name` in `sandbox/name/{data,share,downloads}` with extra `up` options.
    pub fn start(sandbox: &Sandbox, name: &str, extra: &[&str]) -> Self {
        Self::start_in(sandbox, name, None, extra)
    }

    /// Starts a daemon inside network namespace `netns` (when given), listening on
    /// all its interfaces with LAN discovery on; without one, like [`Daemon::start`].
    pub fn start_in(sandbox: &Sandbox, name: &str, netns: Option<&str>, extra: &[&str]) -> Self {
        let base = sandbox.dir(name);
        let data_dir = base.join("data");
        let share_dir = sandbox.share_dir(name);
        let downloads = base.join("downloads");
        for d in [&data_dir, &share_dir, &downloads] {
            std::fs::create_dir_all(d).expect("create daemon folders");
        }
        let log = sandbox.dir("logs").join(format!("{name}.log"));
        let mut d = Self {
            name: name.to_string(),
            data_dir,
            share_dir,
            downloads,
            log,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns: netns.map(str::to_string),
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "daemon {} is already running",
            self.name
        );
        // A stale address from an earlier run must not be mistaken for the new one.
        let addr_file = self.data_dir.join("api.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the daemon log");
        let mut cmd = peershare(self.netns.as_deref());
        cmd.arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--share")
            .arg(&self.share_dir)
            .arg("--downloads")
            .arg(&self.downloads)
            .args(["--api", "127.0.0.1:0"]);
        if self.extra.iter().any(|a| a == "--listen") {
            // The test says where to listen.
        } else if self.netns.is_some() {
            cmd.args(["--listen", "/ip4/0.0.0.0/tcp/0"]);
        } else {
            // Multicast never leaves a test: LAN discovery is tested in network namespaces only.
            cmd.args(["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"]);
        }
        cmd.args(&self.extra)
            .args(self.index_default())
            .env_remove("PEERSHARE_API")
            .env_remove("PEERSHARE_DATA_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("spawn peershare up"));

        let end = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "daemon {} exited during start ({status}); log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            let addr_ready = std::fs::read_to_string(&addr_file)
                .is_ok_and(|s| s.trim().parse::<std::net::SocketAddr>().is_ok());
            if addr_ready && self.cli(&["status"]).0 {
                return;
            }
            if Instant::now() >= end {
                panic!(
                    "daemon {} did not come up within {START_DEADLINE:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `--no-index` unless the test chose an index: tests never touch port 1099.
    fn index_default(&self) -> Option<&'static str> {
        let chose = self
            .extra
            .iter()
            .any(|a| a == "--index" || a == "--index-listen" || a == "--no-index");
        (!chose).then_some("--no-index")
    }

    /// Runs a client command against this daemon with `--data-dir` and `--json`.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        self.run_with_input(args, None)
    }

    /// Runs a client command that must succeed, without `--json`; returns what it printed.
    pub fn text(&self, args: &[&str]) -> String {
        let mut all: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), self.data_dir.as_os_str()];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        let out = run_client_in(self.netns.as_deref(), &all, None);
        assert!(
            out.ok,
            "`peershare {}` failed: {}",
            args.join(" "),
            out.stderr
        );
        out.stdout
    }

    /// Like [`Daemon::run`], with `input` on the client's standard input.
    pub fn run_with_input(&self, args: &[&str], input: Option<&str>) -> CliOutput {
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "--data-dir".as_ref(),
            self.data_dir.as_os_str(),
            "--json".as_ref(),
        ];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        run_client_in(self.netns.as_deref(), &all, input)
    }

    /// Registers `name` on the daemon's index (password on stdin); the daemon then joins.
    pub fn register(&self, name: &str) {
        let out = self.run_with_input(
            &["register", name, "--password-stdin"],
            Some("correct horse battery\n"),
        );
        assert!(
            out.ok,
            "register {name} on {} failed: {} {}",
            self.name, out.stdout, out.stderr
        );
    }

    /// The `index` part of `status --json`.
    pub fn index_status(&self) -> Value {
        self.status()["index"].clone()
    }

    /// Waits until the daemon is online in its index.
    pub fn wait_joined(&self) {
        wait_until(&format!("{} to join the index", self.name), WAIT, || {
            (self.index_status()["state"] == "joined").then_some(())
        })
    }

    /// Runs a client command; returns (exit ok, first JSON value printed).
    pub fn cli(&self, args: &[&str]) -> (bool, Value) {
        let out = self.run(args);
        (out.ok, out.json())
    }

    /// Runs a client command that must succeed; returns its JSON.
    pub fn cli_ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.ok,
            "`peershare {}` on {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.name,
            out.stdout,
            out.stderr
        );
        out.json()
    }

    /// `status --json`.
    pub fn status(&self) -> Value {
        self.cli_ok(&["status"])
    }

    /// This peer's first full address (ending in /p2p/ID).
    pub fn addr(&self) -> String {
        let s = self.status();
        let addr = s["addrs"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no address in status of {}: {s}", self.name))
            .to_string();
        assert!(addr.contains("/p2p/"), "address without /p2p/: {addr}");
        addr
    }

    /// This peer's id.
    pub fn peer_id(&self) -> String {
        self.status()["peer_id"]
            .as_str()
            .expect("peer_id in status")
            .to_string()
    }

    /// This daemon's `peers` entry for `peer_id`, if it knows that peer.
    pub fn known_peer(&self, peer_id: &str) -> Option<Value> {
        let peers = self.cli_ok(&["peers"]);
        peers["peers"]
            .as_array()?
            .iter()
            .find(|p| p["peer_id"] == peer_id)
            .cloned()
    }

    /// Waits until the background scan shows exactly `n` shared files.
    pub fn wait_shared(&self, n: u64) {
        wait_until(&format!("{} to share {n} files", self.name), WAIT, || {
            (self.status()["shared_files"].as_u64() == Some(n)).then_some(())
        })
    }

    /// `browse ADDR`: the files another peer shares.
    pub fn browse(&self, addr: &str) -> Vec<Value> {
        let v = self.cli_ok(&["browse", addr]);
        v["files"].as_array().cloned().expect("files in browse")
    }

    /// The download record with local number `id`, from `downloads --json`.
    pub fn download(&self, id: i64) -> Value {
        let list = self.cli_ok(&["downloads"]);
        list.as_array()
            .expect("downloads is a list")
            .iter()
            .find(|d| d["id"].as_i64() == Some(id))
            .cloned()
            .unwrap_or_else(|| panic!("no download {id} on {}: {list}", self.name))
    }

    /// Waits until download `id` is neither active nor queued and no task runs it; returns the record.
    pub fn wait_download_end(&self, id: i64) -> Value {
        self.wait_download(id, "to end", |d| {
            d["state"] != "active" && d["state"] != "queued" && d["running"] == false
        })
    }

    /// Waits until download `id` satisfies `done`; returns the record.
    pub fn wait_download(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        wait_until(
            &format!("download {id} on {} {what}", self.name),
            WAIT,
            || {
                let d = self.download(id);
                done(&d).then_some(d)
            },
        )
    }

    /// `get ARGS --no-wait`: starts a download that must start; returns its number.
    pub fn start_download(&self, args: &[&str]) -> i64 {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.push("--no-wait");
        let answer = self.cli_ok(&all);
        assert_eq!(answer["outcome"], "started", "{answer}");
        answer["download"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no download number in {answer}"))
    }

    /// Starts a client command in the background (stdin empty, stdout piped, `--json`).
    pub fn spawn_client(&self, args: &[&str]) -> Child {
        let mut json = vec!["--json"];
        json.extend_from_slice(args);
        self.spawn_person_client(&json)
    }

    /// Starts `peershare ARGS` against this daemon as a person runs it
    /// (no `--json`), with its output captured.
    #[allow(dead_code)]
    pub fn spawn_person_client(&self, args: &[&str]) -> Child {
        captured(
            peershare(self.netns.as_deref())
                .arg("--data-dir")
                .arg(&self.data_dir)
                .args(args),
        )
        .spawn()
        .expect("spawn a peershare client")
    }

    /// The partial file of a download of `file_id`.
    pub fn part_path(&self, file_id: &str) -> PathBuf {
        self.downloads
            .join(".peershare-partial")
            .join(format!("{file_id}.part"))
    }

    /// The piece map beside the partial file.
    pub fn map_path(&self, file_id: &str) -> PathBuf {
        self.downloads
            .join(".peershare-partial")
            .join(format!("{file_id}.map"))
    }

    /// The names of the finished files in the downloads folder (the partial folder excluded).
    pub fn finished_files(&self) -> BTreeSet<String> {
        list_dir(&self.downloads)
            .into_iter()
            .filter(|n| n != ".peershare-partial")
            .collect()
    }

    /// True while the process runs.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Kills the daemon with SIGKILL (its own process only) and reaps it.
    pub fn kill9(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Freezes (SIGSTOP, `true`) or thaws (SIGCONT) the daemon: it keeps its
    /// sockets open and answers nothing, like a machine that hangs.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("daemon running").id();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }

    /// Stops the daemon with SIGTERM (its own pid) and waits for it; SIGKILL if it hangs.
    /// Returns true if it exited on its own, false if it had to be killed.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        let mut exited = true;
        while c.try_wait().ok().flatten().is_none() {
            if Instant::now() >= end {
                let _ = c.kill();
                exited = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.wait();
        exited
    }

    /// Starts the daemon again with the same folders and options (killing it first if running).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- log of daemon {} ({}) -----\n{}\n----- end of log {} -----",
                self.name,
                self.log.display(),
                self.log_text(),
                self.name
            );
        }
    }
}

/// Kills a child we started (SIGKILL to its own pid) and reaps it.
fn kill_and_reap(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Runs `peershare` as set up in `cmd` (`up` or `index`) expecting it to refuse to
/// start: its output once it exited by itself; panics if it is still running after 30 s.
#[allow(dead_code)]
pub fn run_refusing(cmd: &mut Command) -> std::process::Output {
    let mut child = captured(cmd).spawn().expect("spawn peershare");
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(
                !out.status.success(),
                "exited successfully instead of refusing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "peershare started instead of refusing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cmd` cut off from the caller: no daemon address or data folder
/// inherited from the environment, no colour, no input, output captured.
fn captured(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("PEERSHARE_API")
        .env_remove("PEERSHARE_DATA_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An index and two daemons joined to it: "a" logged in as alice (its extra
/// `up` options in `a_extra`), "b" as bob; returns once both are joined
/// and a has scanned `a_files` files.
pub fn alice_and_bob(
    sandbox: &Sandbox,
    a_extra: &[&str],
    a_files: u64,
) -> (IndexProcess, Daemon, Daemon) {
    let index = IndexProcess::start(sandbox, &[]);
    let joined = ["--index", index.url.as_str()];
    let a = Daemon::start(sandbox, "a", &[&joined[..], a_extra].concat());
    let b = Daemon::start(sandbox, "b", &joined);
    a.register("alice");
    b.register("bob");
    a.wait_joined();
    b.wait_joined();
    a.wait_shared(a_files);
    (index, a, b)
}

/// One `peershare index` process on a fixed loopback port, so it can come back where it was.
pub struct IndexProcess {
    /// Its data folder.
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl IndexProcess {
    /// Starts an index in `sandbox/index` with extra options (`--heartbeat 1`, `--admin NAME`, …).
    pub fn start(sandbox: &Sandbox, extra: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut index = Self {
            data_dir: sandbox.dir("index"),
            url: format!("http://{addr}"),
            addr,
            log: sandbox.dir("logs").join("index.log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        index.spawn();
        index
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the index log");
        let mut child = Command::new(BIN)
            .args(["index", "--json", "--listen", &self.addr, "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("peershare index starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("the index prints its address");
        let printed: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "the index printed {line:?} ({e}); log:\n{}",
                self.log_text()
            )
        });
        let url = printed["url"].as_str().expect("the index prints its url");
        assert!(url.ends_with(&self.addr), "{url} is not on {}", self.addr);
        // http://, or https:// when the index was given a certificate.
        self.url = url.to_string();
        self.child = Some(child);
    }

    /// Kills the index with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Starts the index again on the same port and data folder.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Freezes (SIGSTOP, `true`) or thaws (SIGCONT) the index process: it
    /// keeps its port but answers nothing while frozen.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("index running").id();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }

    /// The index's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one HTTP request and returns (status, JSON body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("connect to the index");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().expect("a status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Logs in over HTTP: (status, body).
    pub fn login(&self, name: &str, password: &str) -> (u16, Value) {
        let body = serde_json::json!({ "name": name, "password": password }).to_string();
        self.request("POST", "/api/v1/sessions", None, &body)
    }
}

impl Drop for IndexProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- index log -----\n{}\n----- end of index log -----",
                self.log_text()
            );
        }
    }
}

/// The sorted names in a folder (not recursive).
pub fn list_dir(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Every path under `dir`, relative, recursively (folders included).
pub fn list_tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            out.insert(
                p.strip_prefix(base)
                    .expect("under base")
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Writes `len` random bytes to `path` (1 MiB at a time); returns the BLAKE3 hex of them.
pub fn write_random(path: &Path, len: u64) -> String {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent folder");
    }
    let mut file = File::create(path).expect("create a random file");
    let mut hasher = blake3::Hasher::new();
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB) as usize;
        rng.fill_bytes(&mut buf[..n]);
        file.write_all(&buf[..n]).expect("write random bytes");
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    file.sync_all().expect("sync the random file");
    hasher.finalize().to_hex().to_string()
}

/// The BLAKE3 hex of a file's contents (what `b3sum` prints).
pub fn b3_file(path: &Path) -> String {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hasher.finalize().to_hex().to_string()
}

/// True when two files have the same bytes (compared 1 MiB at a time).
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        File::open(a).unwrap_or_else(|e| panic!("open {}: {e}", a.display())),
        File::open(b).unwrap_or_else(|e| panic!("open {}: {e}", b.display())),
    );
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]).expect("read") {
            0 => break,
            n => done += n,
        }
    }
    done
}

/// The browse entry named `name`.
pub fn entry<'a>(files: &'a [Value], name: &str) -> &'a Value {
    files
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name:?} in {files:?}"))
}

/// A string field of a JSON value.
pub fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
        .to_string()
}

/// A number field of a JSON value.
pub fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

/// A libp2p swarm of `identity` on TCP (noise, yamux), as the daemons run
/// it, carrying `behaviour`: a peer that tests drive by hand.
pub fn test_swarm<B: libp2p::swarm::NetworkBehaviour>(
    identity: libp2p::identity::Keypair,
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    use libp2p::{noise, tcp, yamux};
    libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build()
}
