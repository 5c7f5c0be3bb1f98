//! Hardening of the HTTP servers against connection floods: idle sockets
//! and slowloris clients are capped per address and closed after the idle
//! timeout, and a normal client is still served meanwhile. The limits are
//! lowered for the test with the `PEERSHARE_*` environment variables.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, Sandbox, BIN};

struct Index {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_index(sandbox: &Sandbox) -> Index {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "index",
            "--json",
            "--listen",
            &addr.to_string(),
            "--data-dir",
        ])
        .arg(sandbox.dir("index"))
        .env("NO_COLOR", "1")
        .env("PEERSHARE_MAX_CONNECTIONS", "100")
        .env("PEERSHARE_MAX_CONNECTIONS_PER_IP", "10")
        .env("PEERSHARE_IDLE_TIMEOUT_MS", "1500")
        .env("PEERSHARE_FIRST_BYTE_TIMEOUT_MS", "1500")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("peershare index starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .expect("the index prints its address");
    assert!(line.contains(&addr.to_string()), "{line}");
    Index { child, addr }
}

/// A connection from `source` (another loopback address) to `to`.
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).expect("bind a loopback source");
    socket.connect(&to.into()).expect("connect");
    socket.into()
}

/// A complete request from 127.0.0.1 answers 200 within a few seconds.
fn normal_request(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/openapi.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("an answer in time");
    response[9..12].parse().unwrap()
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error page before closing is fine
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slowloris_connections_are_capped_and_closed() {
    let sandbox = Sandbox::new();
    let index = start_index(&sandbox);
    let addr = index.addr;

    // Far more idle connections (and slowloris ones sending half a header)
    // from other addresses than the index admits.
    let mut idle: Vec<TcpStream> = (0..60)
        .map(|i| connect_from(&format!("127.0.0.{}", 2 + i % 3), addr))
        .collect();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect_from("127.0.0.9", addr);
            s.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHo")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // A normal client is still served at once.
    let started = Instant::now();
    assert_eq!(normal_request(addr), 200);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The slowloris keeps trickling bytes, yet is closed: the per-address
    // cap closes the excess at once, the rest once idle.
    for s in slow.iter_mut() {
        let _ = s.write_all(b"s");
    }
    let end = Instant::now() + Duration::from_secs(10);
    for s in idle.iter_mut().chain(slow.iter_mut()) {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            closed_within(s, left.max(Duration::from_millis(10))),
            "an idle connection was still open after the timeout"
        );
    }
    assert_eq!(normal_request(addr), 200);
}
