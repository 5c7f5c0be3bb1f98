//! `peershare shell` through a real pseudo-terminal, against real daemons:
//! the numbered menu (log in with a hidden password, search, download),
//! typed commands with clap's errors and Tab completion, Ctrl-C stopping a
//! long `get` without leaving the shell, notices of messages and requests
//! arriving at the prompt, and a shell with no daemon to talk to.

mod support;

use std::ffi::OsStr;
use std::path::Path;

use rexpect::session::{spawn_with_options, Options, PtySession};
use serde_json::Value;
use support::*;

/// The shell's prompt.
const PROMPT: &str = "peershare> ";
/// Longest wait for one thing the shell should print (the machine may be slow).
const EXPECT_MS: u64 = 30_000;

/// A `peershare shell` on a pseudo-terminal, with everything it printed so far.
struct Shell {
    session: PtySession,
    transcript: String,
}

impl Shell {
    /// A shell pointed at daemon `d` with `--data-dir`, as `run_client` points commands.
    fn open(d: &Daemon) -> Self {
        Self::open_with(&["--data-dir".as_ref(), d.data_dir.as_os_str()])
    }

    /// A shell with these global options.
    fn open_with(globals: &[&OsStr]) -> Self {
        let mut command = std::process::Command::new(BIN);
        command
            .args(globals)
            .arg("shell")
            .env_remove("PEERSHARE_API")
            .env_remove("PEERSHARE_DATA_DIR")
            .env_remove("PEERSHARE_INDEX")
            .env("NO_COLOR", "1")
            .env("TERM", "xterm");
        let options = Options::new()
            .timeout_ms(Some(EXPECT_MS))
            .strip_ansi_escape_codes(true);
        let session = spawn_with_options(command, options).expect("start peershare shell on a pty");
        let mut shell = Self {
            session,
            transcript: String::new(),
        };
        shell.expect("8) quit");
        shell
    }

    /// Waits until the shell prints `text`; returns what came before it.
    fn expect(&mut self, text: &str) -> String {
        match self.session.exp_string(text) {
            Ok(before) => {
                self.transcript += &before;
                self.transcript += text;
                before
            }
            Err(e) => panic!(
                "the shell did not print {text:?}: {e}\n----- the shell's output so far -----\n{}",
                self.transcript
            ),
        }
    }

    /// Waits until the shell prints something matching `regex`; returns the match.
    fn expect_regex(&mut self, regex: &str) -> String {
        match self.session.exp_regex(regex) {
            Ok((before, matched)) => {
                self.transcript += &before;
                self.transcript += &matched;
                matched
            }
            Err(e) => panic!(
                "the shell did not print /{regex}/: {e}\n----- the shell's output so far -----\n{}",
                self.transcript
            ),
        }
    }

    /// Types `text` and presses Enter.
    fn line(&mut self, text: &str) {
        self.keys(&format!("{text}\r"));
    }

    /// Types `keys` as they are.
    fn keys(&mut self, keys: &str) {
        self.session.send(keys).expect("type into the shell");
        self.session.flush().expect("flush the typing");
    }

    /// Presses Ctrl-C.
    fn ctrl_c(&mut self) {
        self.session.send_control('c').expect("press Ctrl-C");
    }

    /// Waits for the notices task to have subscribed to the daemon's events, then for the prompt.
    fn wait_connected(&mut self) {
        self.expect("[daemon] connected");
        self.expect(PROMPT);
    }

    /// Leaves with `quit` and waits for the process to end.
    fn quit(mut self) -> String {
        self.line("quit");
        self.expect("bye");
        let rest = self.session.exp_eof().unwrap_or_default();
        self.transcript + &rest
    }
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Menu 1 logs in with a password that never shows; menu 2 searches, lists
/// numbered results and downloads the chosen one with `get`'s progress;
/// menus 5 and 4 list the downloads and a user's files.
#[test]
fn the_menu_logs_in_searches_and_downloads_the_chosen_file() {
    let sb = Sandbox::new();
    let original = sb.share_dir("a").join("ocean waves.flac");
    write_random(&original, 3 * MIB + 1234);
    write_random(&sb.share_dir("a").join("notes.txt"), 100);
    let (_index, a, b) = alice_and_bob(&sb, &[], 2);
    b.cli_ok(&["logout"]);
    wait_until("the index to list alice's files", WAIT, || {
        let found = a.cli_ok(&["search", "ocean"]);
        (found["results"].as_array().map_or(0, Vec::len) == 1).then_some(())
    });

    let mut shell = Shell::open(&b);
    shell.wait_connected();
    shell.line("1");
    shell.expect("user name: ");
    shell.line("bob");
    shell.expect("password for bob: ");
    shell.line("correct horse battery");
    shell.expect("logged in as bob");
    shell.expect(PROMPT);

    shell.line("2");
    shell.expect("search for: ");
    shell.line("ocean");
    shell.expect("1) ocean waves.flac");
    shell.expect("from alice");
    shell.expect("download which? (number, Enter for none): ");
    shell.line("7");
    shell.expect("type a number from 1 to 1");
    shell.line("1");
    shell.expect("saved ocean waves.flac");
    shell.expect(PROMPT);

    // Menu 5 lists the downloads; menu 4 lists a user's files and offers them.
    shell.line("5");
    shell.expect("done");
    shell.expect("ocean waves.flac");
    shell.expect("downloads --watch");
    shell.line("4");
    shell.expect("user name (or a peer id or address): ");
    shell.line("alice");
    shell.expect("notes.txt");
    shell.expect("download which? (number, Enter for none): ");
    shell.line("");
    shell.expect(PROMPT);
    let transcript = shell.quit();

    let downloaded = b.downloads.join("ocean waves.flac");
    assert!(
        bytes(&downloaded) == bytes(&original),
        "the download differs from alice's file"
    );
    assert!(
        !transcript.contains("correct horse"),
        "the password showed on the screen:\n{transcript}"
    );
    let history = std::fs::read_to_string(b.data_dir.join("shell-history")).unwrap_or_default();
    assert!(
        !history.contains("correct horse") && !history.contains("ocean"),
        "answers and passwords stay out of the history: {history}"
    );
}

/// A typed command prints what the binary prints; a bad one prints clap's
/// error and the shell answers the next; `up` is refused; Tab completes;
/// lines are kept in the history file.
#[test]
fn typed_commands_run_and_a_bad_one_leaves_the_shell_answering() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("notes.txt"), 1000);
    let a = Daemon::start(&sb, "a", &[]);
    a.wait_shared(1);
    let peer = a.peer_id();

    let mut shell = Shell::open(&a);
    shell.wait_connected();
    shell.line("status");
    shell.expect(&format!("peer {peer}"));
    shell.expect("sharing 1 files");
    shell.expect(PROMPT);

    shell.line("serch notes");
    shell.expect("unrecognized subcommand 'serch'");
    shell.line("search notes --mode fuzzy");
    shell.expect("invalid value 'fuzzy'");
    shell.line("up --share /tmp");
    shell.expect("cannot run inside the shell");
    shell.line("downloads cancel 99");
    shell.expect("error: ");

    // Still answering, with --json given on the line.
    shell.line("status --json");
    shell.expect(&format!("\"peer_id\":\"{peer}\""));
    shell.expect(PROMPT);
    // Tab completes `stat` to `status`.
    shell.keys("stat\t");
    shell.keys("\r");
    shell.expect(&format!("peer {peer}"));
    shell.line("completions bash");
    shell.expect("_peershare()");
    shell.expect(PROMPT);
    shell.line("help");
    shell.expect("Usage:");
    shell.expect("menu, ?");
    shell.quit();

    let history = std::fs::read_to_string(a.data_dir.join("shell-history")).expect("a history");
    for line in ["status --json", "serch notes", "help"] {
        assert!(history.lines().any(|l| l == line), "{line:?} in {history}");
    }
}

/// Ctrl-C during a `get` that waits for a slow download returns to the
/// prompt; the download goes on in the daemon, and the same shell says so.
#[test]
fn ctrl_c_stops_waiting_for_a_download_but_not_the_download() {
    let sb = Sandbox::new();
    write_random(&sb.share_dir("a").join("big.bin"), 32 * MIB);
    let a = Daemon::start(&sb, "a", &["--max-upload-rate", "1M"]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(1);
    let addr = a.addr();

    let mut shell = Shell::open(&b);
    shell.wait_connected();
    shell.line(&format!("get {addr} big.bin"));
    let running = wait_until("the download to move", WAIT, || {
        let list = b.cli_ok(&["downloads"]);
        list.as_array()
            .and_then(|l| l.first().cloned())
            .filter(|d| n(d, "verified_bytes") > 0)
    });
    let id = n(&running, "id");
    shell.ctrl_c();
    shell.expect("interrupted");
    shell.expect(&format!("download {id} (big.bin) goes on in the daemon"));
    shell.expect(PROMPT);

    shell.line("downloads");
    shell.expect("active");
    shell.expect("big.bin");
    shell.expect(PROMPT);
    let d = b.download(id as i64);
    assert_eq!(d["state"], "active", "{d}");
    assert_eq!(d["running"], true, "{d}");
    shell.quit();
}

/// While the shell sits at the prompt, a message and a download request
/// (policy ask) are printed as they arrive, and the request is answered
/// there; menu 7 opens the chat and sends the answer typed in it.
#[test]
fn messages_and_requests_show_up_at_the_prompt() {
    let sb = Sandbox::new();
    let gift = sb.share_dir("a").join("gift.bin");
    write_random(&gift, 2 * MIB);
    let (_index, a, b) = alice_and_bob(&sb, &["--policy", "ask"], 1);

    let mut shell = Shell::open(&a);
    shell.wait_connected();
    let sent = b.cli_ok(&["msg", "alice", "hello from bob"]);
    assert_eq!(sent["message"]["state"], "delivered", "{sent}");
    shell.expect("[message] bob: hello from bob");

    let mut get = b.spawn_client(&["get", &a.addr(), "gift.bin"]);
    // Asked by peer address, so no index vouches for a name: the peer id stands for bob.
    let notice = shell.expect_regex(r"\[request \d+\] \S+ wants gift\.bin");
    let id: u64 = notice
        .trim_start_matches("[request ")
        .split(']')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request number in {notice:?}"));
    shell.line(&format!("accept {id}"));
    shell.expect(&format!("request {id} accepted"));
    shell.expect(PROMPT);

    let done = wait_until("bob's get to end", WAIT, || get.try_wait().ok().flatten());
    assert!(done.success(), "bob's get failed");
    assert!(bytes(&b.downloads.join("gift.bin")) == bytes(&gift));

    // Menu 7 opens the chat with its history, and a typed line answers bob.
    shell.line("7");
    shell.expect("1) bob");
    shell.expect("open which?");
    shell.line("1");
    shell.expect("bob: hello from bob");
    shell.expect("to bob: ");
    shell.line("thanks, got it");
    shell.expect("to bob, sealed for");
    shell.expect("to bob: ");
    shell.line("");
    shell.expect(PROMPT);
    shell.quit();
    wait_until("bob to read alice's answer", WAIT, || {
        let chat = b.cli_ok(&["chat", "alice"]);
        let texts: Vec<Value> = chat.as_array()?.iter().map(|m| m["text"].clone()).collect();
        texts.contains(&Value::from("thanks, got it")).then_some(())
    });
}

/// With no daemon, the shell starts anyway, says how to start one, and each
/// command gives the usual error without ending the shell; once the daemon
/// runs, commands and notices work, and they come back after it restarts.
#[test]
fn the_shell_waits_for_its_daemon_and_follows_it_across_a_restart() {
    let sb = Sandbox::new();
    // The folder the daemon will use, before it runs.
    let data_dir = sb.dir("a/data");
    let mut shell = Shell::open_with(&["--data-dir".as_ref(), data_dir.as_os_str()]);
    shell.expect("[daemon] none answers yet");
    shell.expect("start one in another terminal with `peershare up`");
    shell.line("status");
    shell.expect("error: cannot read the API token");
    shell.expect(PROMPT);

    let mut a = Daemon::start(&sb, "a", &[]);
    let peer = a.peer_id();
    shell.expect("[daemon] connected");
    shell.line("status");
    shell.expect(&format!("peer {peer}"));
    shell.expect(PROMPT);

    a.kill9();
    shell.expect("[daemon] it stopped answering");
    a.restart();
    shell.expect("[daemon] back");
    shell.line("status");
    shell.expect(&format!("peer {peer}"));
    shell.expect(PROMPT);
    shell.quit();
}
