//! A plain `up` that finds the index port taken joins the index there only
//! if it proves it was started from this data folder (it knows the instance
//! secret kept there); anything else holding the port is refused loudly, so
//! the person's password is never sent to it.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use support::{free_port, run_refusing, Daemon, Sandbox, BIN};

/// Answers every connection like an index would, proof included (a wrong one).
fn fake_index(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = format!(
                r#"{{"proof":"{}","name":"peershare-index"}}"#,
                "ab".repeat(32)
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn up_refuses_an_index_port_held_by_something_else() {
    let sb = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    fake_index(listener);
    let data = sb.dir("a");
    std::fs::create_dir_all(&data).unwrap();
    let out = run_refusing(
        Command::new(BIN)
            .args(["up", "--no-mdns", "--api", "127.0.0.1:0"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--index-listen", &addr.to_string(), "--data-dir"])
            .arg(&data)
            .arg("--downloads")
            .arg(sb.dir("downloads")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needed in [
        addr.to_string().as_str(),
        "will not send your password",
        &format!("--index http://{addr}"),
        "--index-listen",
        "--no-index",
    ] {
        assert!(stderr.contains(needed), "{needed:?} missing from: {stderr}");
    }
}

#[test]
fn a_second_up_joins_the_index_its_data_folder_started() {
    let sb = Sandbox::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let first = Daemon::start(&sb, "first", &["--index-listen", &listen]);
    // The second daemon shares the first one's index folder (as two `up`s
    // with the default data folder do).
    let second_data = sb.dir("second").join("data");
    std::fs::create_dir_all(&second_data).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(first.data_dir.join("index"), second_data.join("index")).unwrap();
    let second = Daemon::start(&sb, "second", &["--index-listen", &listen]);
    let url = format!("http://{listen}");
    assert_eq!(first.index_status()["url"], url.as_str());
    assert_eq!(second.index_status()["url"], url.as_str());
    assert!(
        second
            .log_text()
            .contains("joining it instead of starting one"),
        "{}",
        second.log_text()
    );
    second.register("bob");
    second.wait_joined();
}
