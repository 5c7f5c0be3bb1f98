//! Browsing and downloading between two real daemons: names, sizes, ids,
//! exact bytes, piece-boundary sizes, name collisions and identity.

mod support;

use support::*;

/// B browses A: names (subfolders as "sub/name"), sizes and ids are exact.
#[test]
fn browse_lists_exact_names_sizes_and_ids() {
    let sb = Sandbox::new();
    let share = sb.share_dir("a");
    std::fs::write(share.join("notes.txt"), b"hello peers\n").unwrap();
    // The id must be what b3sum prints for the file, computed independently here.
    let notes_id = blake3::hash(b"hello peers\n").to_hex().to_string();
    let expected = vec![
        ("top.bin", write_random(&share.join("top.bin"), 1000), 1000),
        ("notes.txt", notes_id, 12),
        (
            "sub/inner.dat",
            write_random(&share.join("sub/inner.dat"), 70_000),
            70_000,
        ),
        (
            "sub/deeper/leaf.bin",
            write_random(&share.join("sub/deeper/leaf.bin"), 3 * MIB + 5),
            3 * MIB + 5,
        ),
    ];

    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(expected.len() as u64);
    let out = b.cli_ok(&["browse", &a.addr()]);
    assert_eq!(
        s(&out, "peer"),
        a.peer_id(),
        "browse names the peer it asked"
    );
    let files = out["files"].as_array().expect("files").clone();
    assert_eq!(
        files.len(),
        expected.len(),
        "browse lists every file once: {files:?}"
    );
    for (name, id, size) in &expected {
        let e = entry(&files, name);
        assert_eq!(n(e, "size"), *size, "size of {name}");
        assert_eq!(s(e, "id"), *id, "id of {name}");
        assert_eq!(s(e, "id").len(), 64);
    }
}

/// Downloads by name and by id across piece boundaries and a 64 MiB file;
/// a second download of the same file gets "name (1).ext" and leaves the first alone.
#[test]
fn get_by_name_and_id_exact_bytes_and_no_overwrite() {
    let sb = Sandbox::new();
    let share = sb.share_dir("a");
    let sizes: [(&str, u64); 6] = [
        ("zero.bin", 0),
        ("one.bin", 1),
        ("below.bin", MIB - 1),
        ("exact.bin", MIB),
        ("above.bin", MIB + 1),
        ("big.bin", 64 * MIB),
    ];
    let mut ids = Vec::new();
    for (name, size) in sizes {
        ids.push(write_random(&share.join(name), size));
    }
    let a = Daemon::start(&sb, "a", &[]);
    let b = Daemon::start(&sb, "b", &[]);
    a.wait_shared(sizes.len() as u64);
    let addr = a.addr();
    let files = b.browse(&addr);
    for ((name, size), id) in sizes.iter().zip(&ids) {
        let e = entry(&files, name);
        assert_eq!(s(e, "id"), *id, "browse id of {name}");
        assert_eq!(n(e, "size"), *size, "browse size of {name}");
    }

    for ((name, size), id) in sizes.iter().zip(&ids) {
        let source = a.share_dir.join(name);
        let names_before = b.finished_files().len();

        // First by name.
        let rec = b.cli_ok(&["get", &addr, name]);
        assert_eq!(s(&rec, "state"), "done", "{rec}");
        assert_eq!(s(&rec, "file_id"), *id);
        assert_eq!(n(&rec, "size"), *size);
        assert_eq!(n(&rec, "verified_bytes"), *size);
        let first = b.downloads.join(name);
        assert_eq!(
            std::fs::canonicalize(s(&rec, "path")).unwrap(),
            std::fs::canonicalize(&first).unwrap(),
            "first download lands under its own name"
        );
        assert_eq!(b3_file(&first), *id, "hash of {name}");
        assert!(same_bytes(&first, &source), "bytes of {name}");
        let first_mtime = std::fs::metadata(&first).unwrap().modified().unwrap();

        // Again by id: the file is here already, so nothing is copied...
        let here = b.cli_ok(&["get", &addr, id]);
        assert_eq!(s(&here, "outcome"), "already_here", "{here}");
        assert_eq!(
            std::fs::canonicalize(s(&here, "path")).unwrap(),
            std::fs::canonicalize(&first).unwrap(),
            "the answer says where the file is"
        );
        assert_eq!(b.finished_files().len(), names_before + 1, "no copy made");

        // ...unless asked with --again: then it gets a fresh name.
        let rec2 = b.cli_ok(&["get", &addr, id, "--again"]);
        assert_eq!(s(&rec2, "state"), "done", "{rec2}");
        assert_ne!(rec2["id"], rec["id"], "a second download is a new record");
        let (stem, ext) = name.rsplit_once('.').unwrap();
        let second = b.downloads.join(format!("{stem} (1).{ext}"));
        assert_eq!(
            std::fs::canonicalize(s(&rec2, "path")).unwrap(),
            std::fs::canonicalize(&second).unwrap(),
            "second download of {name} gets a \"(1)\" name"
        );
        assert_eq!(b3_file(&second), *id, "hash of second {name}");
        assert!(same_bytes(&second, &source), "bytes of second {name}");

        // The first file is untouched.
        assert!(same_bytes(&first, &source), "first {name} still intact");
        assert_eq!(
            std::fs::metadata(&first).unwrap().modified().unwrap(),
            first_mtime,
            "first {name} was not rewritten"
        );
    }

    // Nothing else appeared, and no partial files are left behind.
    let mut want = std::collections::BTreeSet::new();
    for (name, _) in sizes {
        let (stem, ext) = name.rsplit_once('.').unwrap();
        want.insert(name.to_string());
        want.insert(format!("{stem} (1).{ext}"));
    }
    assert_eq!(b.finished_files(), want);
    let partial = b.downloads.join(".peershare-partial");
    if partial.exists() {
        let left: Vec<_> = list_dir(&partial)
            .into_iter()
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(
            left.is_empty(),
            "partial files left after success: {left:?}"
        );
    }
}

/// A restarted daemon keeps its peer id (and its address still names it).
#[test]
fn restart_keeps_peer_id() {
    let sb = Sandbox::new();
    let mut a = Daemon::start(&sb, "a", &[]);
    let before = a.peer_id();
    assert!(before.starts_with("12D3KooW"), "ed25519 peer id: {before}");

    a.stop();
    a.restart();
    assert_eq!(a.peer_id(), before, "peer id after a clean stop and start");
    assert!(a.addr().ends_with(&format!("/p2p/{before}")));

    a.kill9();
    a.restart();
    assert_eq!(a.peer_id(), before, "peer id after kill -9 and start");

    // A different data folder is a different peer.
    let b = Daemon::start(&sb, "b", &[]);
    assert_ne!(b.peer_id(), before);
}
