//! The web UI in a real browser: Debian's Chromium, headless, driven by
//! Playwright (`tests/browser/ui.mjs`) against two real daemons and an
//! index. The script logs in through the printed link, registers, searches,
//! downloads with live progress, pauses, resumes and cancels, accepts a
//! waiting request from the notification, and chats between two browsers;
//! any console error or uncaught exception fails it. Screenshots are kept
//! in `target/tmp/browser-ui/` as artefacts. This file checks the bytes on
//! disk afterwards.
//!
//! Chromium and playwright-core are installed by `tests/browser/setup.sh`
//! when missing (.ci/run runs it first).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use support::{same_bytes, write_random, Daemon, IndexProcess, Sandbox, MIB};

/// Longest the browser script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn install_browser_tools() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        let status = Command::new("bash")
            .arg(browser_dir().join("setup.sh"))
            .status()
            .expect("run tests/browser/setup.sh");
        assert!(status.success(), "tests/browser/setup.sh failed");
    });
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the script needs to know about one daemon.
fn daemon_config(d: &Daemon) -> serde_json::Value {
    let link = d.cli_ok(&["ui", "--print"]);
    serde_json::json!({
        "link": link["url"],
        "base": link["url"].as_str().unwrap().split("/login").next().unwrap(),
        "peer_id": d.peer_id(),
    })
}

/// Runs `tests/browser/<script>` with `config`; panics with its output if it fails.
fn run_script(script: &str, config: &serde_json::Value) {
    let mut child = Command::new("node")
        .arg(browser_dir().join(script))
        .env("PEERSHARE_UI_TEST", config.to_string())
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (installed by tests/browser/setup.sh)");
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "the browser script {script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
fn a_person_uses_the_web_ui_from_login_to_chat() {
    install_browser_tools();
    let sandbox = Sandbox::new();
    let index = IndexProcess::start(&sandbox, &[]);
    let joined = ["--index", index.url.as_str()];
    // Alice asks about every request and sends at 8 MiB/s, so a download is slow enough to pause.
    let alice_flags = [&joined[..], &["--policy", "ask", "--max-upload-rate", "8M"]].concat();
    let alice = Daemon::start(&sandbox, "a", &alice_flags);
    let bob = Daemon::start(&sandbox, "b", &joined);
    write_random(&alice.share_dir.join("song.flac"), 6 * MIB);
    write_random(&alice.share_dir.join("film.mkv"), 96 * MIB);
    alice.register("alice");
    alice.wait_joined();
    alice.wait_shared(2);

    let config = serde_json::json!({
        "alice": daemon_config(&alice),
        "bob": daemon_config(&bob),
        "artefacts": artefacts(),
        "chromium": "/usr/bin/chromium",
    });
    run_script("ui.mjs", &config);

    let got = bob.downloads.join("song.flac");
    assert!(
        same_bytes(&got, &alice.share_dir.join("song.flac")),
        "the download through the web UI is not byte-exact"
    );
    let downloads = bob.cli_ok(&["downloads"]);
    let film = downloads
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == "film.mkv"))
        .unwrap_or_else(|| panic!("the film download is listed: {downloads}"));
    assert_eq!(
        film["state"], "cancelled",
        "cancelled in the browser: {film}"
    );
    assert!(!bob.downloads.join("film.mkv").exists());
}
