//! The sharing side under a hostile or failing disk: a shared folder that
//! cannot be read for a while (a disk unmounted), a shared file swapped
//! for a link to a private file, and links inside a share that the folder
//! watcher must not follow.

mod support;

use std::path::Path;

use support::*;

fn problems(d: &Daemon) -> Vec<serde_json::Value> {
    d.status()["share_problems"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A shared folder that disappears (its disk unmounted) is a problem shown in
/// `status`, not an empty folder: its files stay shared; when it comes back,
/// `status` is clean again with no rescan asked for.
#[test]
fn an_unreadable_share_root_keeps_its_files_shared_and_shows_in_status() {
    let sb = Sandbox::new();
    let share = sb.share_dir("a");
    let one = write_random(&share.join("one.bin"), 100_000);
    write_random(&share.join("sub/two.bin"), 200_000);
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(2);
    assert!(problems(&a).is_empty(), "{}", a.status());
    let addr = a.addr();

    let away = sb.path().join("a/unmounted");
    std::fs::rename(&share, &away).unwrap();
    let report = a.cli_ok(&["rescan"]);
    assert_eq!(report["shared_files"], 2, "{report}");
    let status = a.status();
    assert_eq!(status["shared_files"], 2, "{status}");
    let found = problems(&a);
    assert_eq!(found.len(), 1, "{status}");
    assert_eq!(found[0]["folder"], share.display().to_string(), "{status}");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot read"),
        "{status}"
    );
    assert_eq!(b.browse(&addr).len(), 2, "still offered to other peers");
    assert!(a.log_text().contains("cannot read a shared folder"));

    std::fs::rename(&away, &share).unwrap();
    wait_until("the folder's problem to clear", WAIT, || {
        problems(&a).is_empty().then_some(())
    });
    assert_eq!(a.status()["shared_files"], 2);
    let rec = b.cli_ok(&["get", &addr, "one.bin"]);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    assert_eq!(b3_file(&b.downloads.join("one.bin")), one);
}

/// Makes `path` a link to `target`, after giving `target` the mtime of `path`
/// (the two already have the same size).
fn swap_for_link(path: &Path, target: &Path) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(target)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
    let seen = std::fs::metadata(path).unwrap();
    assert_eq!(
        seen.modified().unwrap(),
        mtime,
        "same mtime through the link"
    );
}

fn assert_not_served(getter: &Daemon, addr: &str, id: &str, private: &Path) {
    let out = getter.run(&["get", addr, id]);
    assert!(!out.ok, "get must fail: {}", out.stdout);
    // Either a failed download, or the source no longer lists the file at all
    // (it rescanned after refusing someone else).
    let rec = out.json();
    let error = rec["error"].as_str().unwrap_or_default().to_string();
    if rec.get("state").is_some() {
        assert_eq!(s(&rec, "state"), "failed", "{rec}");
    }
    assert!(
        !error.contains("does not match its hash"),
        "the sharer sent bytes of the link's target: {error}"
    );
    assert!(
        error.contains("no longer")
            || error.contains("changed")
            || error.contains("not found")
            || error.contains("no file"),
        "the error says the file is not shared as it was: {rec}"
    );
    for name in getter.finished_files() {
        assert!(
            !same_bytes(&getter.downloads.join(&name), private),
            "the private file was delivered as {name}"
        );
    }
}

/// A shared file (and a downloaded, hence shared, file) swapped for a link to
/// a private file of the same size and mtime is never served: not one byte
/// of the private file leaves the sharer.
#[test]
fn a_shared_file_swapped_for_a_link_to_a_private_file_is_not_served() {
    let sb = Sandbox::new();
    let path = sb.share_dir("a").join("public.bin");
    let id = write_random(&path, 3 * MIB);
    let private = sb.dir("private").join("secret.bin");
    write_random(&private, 3 * MIB);
    let a = Daemon::start(&sb, "a", &["--no-watch"]);
    let b = Daemon::start(&sb, "b", &["--no-watch"]);
    let c = Daemon::start(&sb, "c", &["--source-patience", "2"]);
    let d = Daemon::start(&sb, "d", &["--source-patience", "2"]);
    a.wait_shared(1);
    let (a_addr, b_addr) = (a.addr(), b.addr());

    let rec = b.cli_ok(&["get", &a_addr, &id]);
    assert_eq!(s(&rec, "state"), "done", "{rec}");
    let downloaded = b.downloads.join("public.bin");
    assert_eq!(b3_file(&downloaded), id);
    b.wait_shared(1);

    // The sharer's own file, and the downloader's copy (shared since it
    // finished), both swapped before anyone asks again.
    swap_for_link(&path, &private);
    let private_b = sb.dir("private").join("secret-b.bin");
    write_random(&private_b, 3 * MIB);
    swap_for_link(&downloaded, &private_b);
    assert_not_served(&c, &a_addr, &id, &private);
    assert_not_served(&d, &b_addr, &id, &private_b);
    for (getter, secret) in [(&c, &private), (&d, &private_b)] {
        for name in getter.finished_files() {
            assert!(!same_bytes(&getter.downloads.join(&name), secret));
        }
    }
    assert!(a.log_text().contains("changed since it was hashed"));
    assert!(b.log_text().contains("changed since it was hashed"));
}

/// How many inotify watches process `pid` holds, from its descriptors' fdinfo.
fn inotify_watches(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("list the daemon's descriptors");
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
        })
        .map(|fd| {
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            let text = std::fs::read_to_string(info).unwrap_or_default();
            text.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

fn rescans(d: &Daemon) -> usize {
    d.log_text().matches("share rescanned").count()
}

/// Links inside a share, to a big tree outside it and to `/`, are not
/// watched: the daemon holds a watch per folder of the share only, a write
/// behind a link causes no rescan, and a file copied into the share is
/// still picked up by the watcher.
#[test]
fn the_watcher_never_follows_links_out_of_the_share() {
    let sb = Sandbox::new();
    let share = sb.share_dir("a");
    write_random(&share.join("first.bin"), 1000);
    let outside = sb.dir("outside");
    for i in 0..400 {
        std::fs::create_dir_all(outside.join(format!("d{i}/e"))).unwrap();
    }
    std::os::unix::fs::symlink(&outside, share.join("big tree")).unwrap();
    std::os::unix::fs::symlink("/", share.join("everything")).unwrap();
    std::fs::create_dir(share.join("sub")).unwrap();

    let a = Daemon::start(&sb, "a", &[]);
    a.wait_shared(1);
    let watches = inotify_watches(a.pid());
    // The share and its one subfolder (and the partial folder of downloads):
    // nowhere near the 801 folders behind the links, let alone all of `/`.
    assert!(
        (1..10).contains(&watches),
        "the daemon holds {watches} inotify watches"
    );

    // Let the start-up scan settle into its log line before counting.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = rescans(&a);
    write_random(&outside.join("d7/e/outside.bin"), 1000);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        rescans(&a),
        before,
        "a write behind a link is not a change of the share"
    );

    write_random(&share.join("sub/new.bin"), 1000);
    a.wait_shared(2);
    assert_eq!(a.status()["shared_files"], 2, "links add no files");
}
