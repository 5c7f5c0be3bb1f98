//! The README's first run, pasted as one block: it must work as written and
//! end in a download. The block runs in a network namespace of its own (a
//! fresh loopback, so the default ports are free and mDNS stays inside),
//! with a sandbox as HOME, and the daemons it starts in the background are
//! stopped by the script itself when it ends. Needs root (CI runs as root).

mod support;

use std::process::Command;

use support::{can_make_namespaces, Sandbox};

/// The first `sh` block after the "First run" heading of the README.
fn first_run_block() -> String {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("## First run")
        .nth(1)
        .expect("the README has a \"First run\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block in the First run section");
    block.to_string()
}

/// A network namespace with only its loopback up; deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new() -> Self {
        let name = format!("psreadme{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().expect("run ip");
            assert!(ok.success(), "ip {}", args.join(" "));
        };
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn the_readme_first_run_works_pasted_as_one_block_and_ends_in_a_download() {
    if !can_make_namespaces() {
        return;
    }
    let block = first_run_block();
    assert!(block.contains("peershare up"), "{block}");
    // The test built the binary already; a nested cargo build is not its business.
    let steps: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("cargo build"))
        .collect();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_peershare"))
        .parent()
        .expect("the binary's folder");
    let script = format!(
        "set -e\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\nexport PATH=\"{}:$PATH\"\n{}\n",
        bin_dir.display(),
        steps.join("\n")
    );
    let home = Sandbox::new();
    let ns = Namespace::new();
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "bash", "-c", &script])
        .current_dir(workspace)
        .env("HOME", home.dir("home"))
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PEERSHARE_DATA_DIR")
        .env_remove("PEERSHARE_API")
        .env_remove("PEERSHARE_INDEX")
        .env("NO_COLOR", "1")
        .output()
        .expect("run the README block");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let told = format!("script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "the block failed: {told}");
    assert!(
        stdout.contains("joined the index"),
        "register waits for the join: {told}"
    );
    assert!(
        stdout.contains("already here"),
        "alice's own file is not copied: {told}"
    );
    assert!(
        stdout.trim_end().ends_with("hello from alice"),
        "the block ends in bob's copy of alice's file: {told}"
    );
    drop(ns);
}
