//! A database truncated to zero bytes or overwritten is refused with a clear
//! message naming the file and what to do; it is never replaced by an empty
//! one (the index's accounts, the peer's downloads and shares).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{free_port, run_refusing, Sandbox, BIN};

fn index(data: &Path) -> Output {
    run_refusing(
        Command::new(BIN)
            .args(["index", "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(data),
    )
}

fn peer(sb: &Sandbox, data: &Path) -> Output {
    run_refusing(
        Command::new(BIN)
            .args(["up", "--no-index", "--no-mdns", "--api", "127.0.0.1:0"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
            .arg(data)
            .arg("--downloads")
            .arg(sb.dir("downloads")),
    )
}

fn assert_refused(out: &Output, file: &Path, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {stderr}");
    let name = file.display().to_string();
    assert!(stderr.contains(&name), "the error names {name}: {stderr}");
    assert_eq!(
        stderr.matches(&name).count(),
        1,
        "the file is named once: {stderr}"
    );
    assert!(stderr.contains(what), "the error says {what:?}: {stderr}");
    assert!(
        stderr.contains("backup"),
        "the error says what to do: {stderr}"
    );
}

#[test]
fn index_refuses_an_empty_or_garbage_database() {
    let sb = Sandbox::new();
    let data = sb.dir("index");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("index.db");

    std::fs::write(&db, b"").unwrap();
    assert_refused(&index(&data), &db, "empty (0 bytes)");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left untouched");

    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    assert_refused(&index(&data), &db, "not a SQLite database");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 8192]);
}

#[test]
fn peer_refuses_an_empty_or_garbage_database() {
    let sb = Sandbox::new();
    let data = sb.dir("peer");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("peer.db");

    std::fs::write(&db, b"").unwrap();
    assert_refused(&peer(&sb, &data), &db, "empty (0 bytes)");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left untouched");

    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    assert_refused(&peer(&sb, &data), &db, "not a SQLite database");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 8192]);
}
