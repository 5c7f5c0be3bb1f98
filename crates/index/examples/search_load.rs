//! The search load of bench/index.sh: many keep-alive HTTP/1.1 clients
//! searching a live index for a while, each from its own loopback address
//! and with its own token, as many people searching at once would. Not a
//! test. It runs on one thread, so on a 2-core machine the index keeps the
//! other core (the Python generator it replaces used a whole core at 10,000
//! searches/s, half of what it measured).
//!
//! Usage: `search_load PLAN_JSON`, where the plan is `{"targets": [[host,
//! port], ...], "tokens": [...], "paths": [...], "clients": N, "duration":
//! s, "grace": s, "max_requests": N}`. Client i connects from 127.0.x.y
//! (the i+2nd address) to `targets[i % len]` as `tokens[i % len]` and sends
//! `paths[i]`, `paths[i + clients]`, …; a 503 is counted as shed and the
//! client waits 1–2 s (as `Retry-After: 1` asks). Prints one JSON object:
//! answered searches `n`, `rps`, `errors`, `shed`, `unfinished` (still
//! running `grace` s after the end, then dropped), `p50` and `p99` (s).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Deserialize)]
struct Plan {
    targets: Vec<(String, u16)>,
    tokens: Vec<String>,
    paths: Vec<String>,
    clients: usize,
    duration: f64,
    grace: f64,
    max_requests: u64,
}

/// What every client adds to.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    errors: AtomicU64,
    shed: AtomicU64,
    /// Seconds each answered search took, kept even for clients that do
    /// not finish in time.
    latencies: Mutex<Vec<f64>>,
}

/// Client i's own loopback address, the same as the Python generator's.
fn client_source(i: usize) -> IpAddr {
    let n = i + 2;
    IpAddr::V4(Ipv4Addr::new(127, 0, (n / 250) as u8, (n % 250 + 1) as u8))
}

/// One keep-alive connection and its read buffer.
struct Conn {
    from: IpAddr,
    to: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let mut last = None;
            for attempt in 0..50u64 {
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(self.from, 0))?;
                match socket.connect(self.to).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        self.stream = Some(stream);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
            }
            if self.stream.is_none() {
                return Err(last.unwrap_or_else(|| std::io::Error::other("cannot connect")));
            }
        }
        Ok(())
    }

    /// Sends `request` and reads the answer's status and body length.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.open().await?;
        let Self {
            stream: open, buf, ..
        } = self;
        let stream = open.as_mut().expect("opened above");
        buf.clear();
        stream.write_all(request).await?;
        let mut chunk = [0u8; 16384];
        let head_end = loop {
            if let Some(at) = find(buf, b"\r\n\r\n") {
                break at + 4;
            }
            let got = stream.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..got]);
        };
        let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status line"))?;
        let mut length = None;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if key == "content-length" {
                length = value.parse::<usize>().ok();
            } else if key == "transfer-encoding" {
                return Err(std::io::Error::other("the index answered chunked"));
            } else if key == "connection" && value.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
        let length = length.ok_or_else(|| std::io::Error::other("no content-length"))?;
        let mut have = buf.len() - head_end;
        while have < length {
            let got = stream.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            have += got;
        }
        if close {
            *open = None;
        }
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A tiny generator for the retry jitter (no need for more).
fn jitter(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

async fn client(
    i: usize,
    plan: Arc<Plan>,
    requests: Arc<Vec<Vec<u8>>>,
    tally: Arc<Tally>,
    deadline: Instant,
) {
    let (host, port) = &plan.targets[i % plan.targets.len()];
    let to = SocketAddr::new(host.parse().expect("targets are IP addresses"), *port);
    let mut conn = Conn {
        from: client_source(i),
        to,
        stream: None,
        buf: Vec::with_capacity(1 << 16),
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
    let mut k = i;
    while Instant::now() < deadline
        && tally.sent.fetch_add(1, Ordering::Relaxed) < plan.max_requests
    {
        let request = &requests[(k % plan.paths.len()) * plan.tokens.len() + i % plan.tokens.len()];
        k += plan.clients;
        let start = Instant::now();
        match conn.exchange(request).await {
            Ok(200) => {
                let took = start.elapsed().as_secs_f64();
                tally.latencies.lock().expect("one thread").push(took);
            }
            Ok(503) => {
                tally.shed.fetch_add(1, Ordering::Relaxed);
                let wait = 1.0 + jitter(&mut rng);
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
            Ok(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                conn.stream = None;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: search_load PLAN_JSON")?;
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    if plan.targets.is_empty() || plan.tokens.is_empty() || plan.paths.is_empty() {
        return Err("the plan needs targets, tokens and paths".into());
    }
    // Every (path, token) request written once, path-major.
    let requests: Vec<Vec<u8>> = plan
        .paths
        .iter()
        .flat_map(|p| {
            let (host, port) = &plan.targets[0];
            plan.tokens.iter().map(move |t| {
                format!(
                    "GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {t}\r\n\r\n"
                )
                .into_bytes()
            })
        })
        .collect();
    let plan = Arc::new(plan);
    let requests = Arc::new(requests);
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(plan.duration);
    let tasks: Vec<_> = (0..plan.clients)
        .map(|i| {
            tokio::spawn(client(
                i,
                plan.clone(),
                requests.clone(),
                tally.clone(),
                deadline,
            ))
        })
        .collect();
    let give_up = deadline + Duration::from_secs_f64(plan.grace);
    let mut unfinished = 0;
    for task in tasks {
        if !matches!(
            tokio::time::timeout_at(give_up.into(), task).await,
            Ok(Ok(()))
        ) {
            unfinished += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *tally.latencies.lock().expect("one thread"));
    latencies.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "n": latencies.len(),
        "rps": latencies.len() as f64 / elapsed,
        "errors": tally.errors.load(Ordering::Relaxed),
        "shed": tally.shed.load(Ordering::Relaxed),
        "unfinished": unfinished,
        "p50": percentile(&latencies, 50.0),
        "p99": percentile(&latencies, 99.0),
        "max_wait": plan.duration + plan.grace,
    });
    println!("{report}");
    Ok(())
}
