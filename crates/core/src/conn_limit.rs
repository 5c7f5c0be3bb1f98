//! Connection limits for the HTTP servers (the index, the daemon's local API
//! and web UI): a [`Limited`] wrapper around any `axum::serve::Listener`
//! that caps open connections in total and per client address, and closes a
//! connection on which nothing was read or written for a while.
//!
//! axum's server has no timeouts of its own, so without this a few thousand
//! idle sockets (or a slowloris sending a header byte now and then) use up
//! the process's file descriptors and every other listener stops.
//!
//! - Each admitted connection holds a permit for its address; the permit is
//!   dropped with the connection. A connection over a cap is accepted and
//!   closed at once (a rate-limited warning says so).
//! - [`Guarded`] closes the connection (a `TimedOut` error to the server)
//!   when no byte has moved for [`ConnLimits::idle_timeout`], or, before
//!   the first byte of the first request, for the shorter
//!   [`ConnLimits::first_byte_timeout`]. Any read or write counts as
//!   progress, so long streams with periodic writes (server-sent events
//!   and their keep-alive comments) are never cut.
//! - [`raise_fd_limit`] raises the soft `RLIMIT_NOFILE` to the hard limit
//!   once, and [`ConnLimits::budgeted`] gives each listener a share of it, so
//!   one listener cannot starve the others.
//!
//! Tests (and operators) lower the limits with environment variables:
//! [`ENV_MAX_CONNECTIONS`], [`ENV_MAX_PER_IP`], [`ENV_IDLE_TIMEOUT_MS`] and
//! [`ENV_FIRST_BYTE_TIMEOUT_MS`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Overrides [`ConnLimits::max_total`].
pub const ENV_MAX_CONNECTIONS: &str = "PEERSHARE_MAX_CONNECTIONS";
/// Overrides [`ConnLimits::max_per_ip`].
pub const ENV_MAX_PER_IP: &str = "PEERSHARE_MAX_CONNECTIONS_PER_IP";
/// Overrides [`ConnLimits::idle_timeout`] (milliseconds).
pub const ENV_IDLE_TIMEOUT_MS: &str = "PEERSHARE_IDLE_TIMEOUT_MS";
/// Overrides [`ConnLimits::first_byte_timeout`] (milliseconds).
pub const ENV_FIRST_BYTE_TIMEOUT_MS: &str = "PEERSHARE_FIRST_BYTE_TIMEOUT_MS";

/// Default idle timeout once a request has started.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a new connection has to send its first byte.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a repeated warning (accept errors, refused connections) is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The caps and timeouts of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most.
    pub max_total: usize,
    /// Open connections from one address (one IPv6 /64) at most.
    pub max_per_ip: usize,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// A new connection that sends nothing for this long is closed.
    pub first_byte_timeout: Duration,
}

impl ConnLimits {
    /// Limits for a listener entitled to `1/divisor` of the process's file
    /// descriptors (after [`raise_fd_limit`]), with environment overrides.
    pub fn budgeted(divisor: u64) -> Self {
        let fds = raise_fd_limit();
        let total = (fds / divisor.max(1)).clamp(16, 16_384) as usize;
        Self {
            max_total: total,
            max_per_ip: (total / 4).max(8),
            idle_timeout: IDLE_TIMEOUT,
            first_byte_timeout: FIRST_BYTE_TIMEOUT,
        }
        .with_env()
    }

    /// These limits with any set environment override applied.
    pub fn with_env(mut self) -> Self {
        fn var(name: &str) -> Option<u64> {
            std::env::var(name).ok()?.trim().parse().ok()
        }
        if let Some(n) = var(ENV_MAX_CONNECTIONS) {
            self.max_total = n.max(1) as usize;
        }
        if let Some(n) = var(ENV_MAX_PER_IP) {
            self.max_per_ip = n.max(1) as usize;
        }
        if let Some(ms) = var(ENV_IDLE_TIMEOUT_MS) {
            self.idle_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = var(ENV_FIRST_BYTE_TIMEOUT_MS) {
            self.first_byte_timeout = Duration::from_millis(ms.max(1));
        }
        self.first_byte_timeout = self.first_byte_timeout.min(self.idle_timeout);
        self
    }
}

/// Raises the soft limit on open files to the hard limit (once per process)
/// and returns the soft limit in force.
pub fn raise_fd_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(raise_fd_limit_now)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
fn raise_fd_limit_now() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let current = lim.rlim_cur;
    // Some systems (macOS) refuse a soft limit above their own ceiling even
    // when the hard limit is "infinity"; try the hard limit, then smaller.
    for wanted in [lim.rlim_max, 1 << 20, 1 << 16, 10_240] {
        if wanted <= current {
            break;
        }
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return wanted as u64;
        }
    }
    current as u64
}

#[cfg(not(unix))]
fn raise_fd_limit_now() -> u64 {
    8192
}

/// Says when a repeated warning should be logged: at most once per period,
/// with the number of times it was held back.
#[derive(Debug)]
pub struct LogEvery {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogEvery {
    /// At most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Call on each occurrence; `Some(n)` means "log now", `n` being how
    /// many occurrences since the last log were not logged.
    pub fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

impl Default for LogEvery {
    fn default() -> Self {
        Self::new(LOG_EVERY)
    }
}

/// " (and N more times in the last 10s)" for a warning logged by [`LogEvery`].
pub fn held_back_note(n: u64, every: Duration) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more times in the last {}s)", every.as_secs().max(1))
    }
}

/// A plain TCP listener whose accept errors (out of file descriptors and the
/// like) are logged at most once per [`LOG_EVERY`] instead of every time.
#[derive(Debug)]
pub struct Tcp {
    inner: TcpListener,
    errors: LogEvery,
}

impl Tcp {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        Self {
            inner,
            errors: LogEvery::default(),
        }
    }

    /// Accepts the next connection, waiting (and logging rarely) on errors.
    pub async fn accept_tcp(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok(accepted) => return accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    if let Some(n) = self.errors.hit() {
                        let at = self.inner.local_addr().ok();
                        tracing::warn!(
                            "cannot accept connections on {at:?}: {e}{}",
                            held_back_note(n, LOG_EVERY)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl Listener for Tcp {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.accept_tcp().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[derive(Debug, Default)]
struct Table {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The key connections are counted under: the address, or its /64 for IPv6
/// (one host usually owns a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// One admitted connection's place in the count; released on drop.
#[derive(Debug)]
pub struct Permit {
    table: Arc<Mutex<Table>>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.total = table.total.saturating_sub(1);
        if let Some(n) = table.per_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                table.per_ip.remove(&self.key);
            }
        }
    }
}

/// A listener that admits connections within [`ConnLimits`] and wraps each
/// in [`Guarded`].
#[derive(Debug)]
pub struct Limited<L> {
    inner: L,
    limits: ConnLimits,
    table: Arc<Mutex<Table>>,
    refused: LogEvery,
}

impl<L> Limited<L> {
    /// Wraps `inner` with `limits`.
    pub fn new(inner: L, limits: ConnLimits) -> Self {
        Self {
            inner,
            limits,
            table: Arc::default(),
            refused: LogEvery::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// A permit for a new connection from `ip`, or why there is none.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, &'static str> {
        let key = client_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.total >= self.limits.max_total {
            return Err("too many open connections");
        }
        let mine = table.per_ip.entry(key).or_insert(0);
        if *mine >= self.limits.max_per_ip {
            return Err("too many open connections from this address");
        }
        *mine += 1;
        table.total += 1;
        Ok(Permit {
            table: self.table.clone(),
            key,
        })
    }

    /// Wraps an admitted connection's IO.
    pub fn guard<T>(&self, io: T, permit: Permit) -> Guarded<T> {
        Guarded::new(io, permit, self.limits)
    }

    fn refuse(&mut self, addr: SocketAddr, why: &str) {
        if let Some(n) = self.refused.hit() {
            tracing::warn!(
                "closing a connection from {addr}: {why} (at most {} in total, {} per address){}",
                self.limits.max_total,
                self.limits.max_per_ip,
                held_back_note(n, LOG_EVERY)
            );
        }
    }
}

impl<L> Listener for Limited<L>
where
    L: Listener<Addr = SocketAddr>,
{
    type Io = Guarded<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            match self.admit(addr.ip()) {
                Ok(permit) => return (self.guard(io, permit), addr),
                Err(why) => {
                    drop(io);
                    self.refuse(addr, why);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that ends with `TimedOut` when no byte moves for too long;
/// it holds its [`Permit`] until dropped.
#[derive(Debug)]
pub struct Guarded<T> {
    io: T,
    _permit: Permit,
    timer: Pin<Box<Sleep>>,
    last_progress: Instant,
    started: bool,
    limits: ConnLimits,
}

impl<T> Guarded<T> {
    fn new(io: T, permit: Permit, limits: ConnLimits) -> Self {
        let now = Instant::now();
        Self {
            io,
            _permit: permit,
            timer: Box::pin(tokio::time::sleep_until(now + limits.first_byte_timeout)),
            last_progress: now,
            started: false,
            limits,
        }
    }

    /// The connection's IO.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    fn deadline(&self) -> Instant {
        let allowed = if self.started {
            self.limits.idle_timeout
        } else {
            self.limits.first_byte_timeout
        };
        self.last_progress + allowed
    }

    fn progress(&mut self) {
        self.started = true;
        self.last_progress = Instant::now();
    }

    /// Called when the IO is not ready: `Ready(Err)` once idle too long.
    /// The timer is moved forward lazily, only when it fires early.
    fn check_idle<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            let deadline = self.deadline();
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if self.deadline() <= Instant::now() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle for too long",
                    )))
                }
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.check_idle(cx),
        }
    }
}

impl<T> Guarded<T> {
    /// Counts a write that moved bytes as progress; a write that must wait
    /// is where an idle connection is found.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_idle(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.check_idle(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Pending => this.check_idle(cx),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(total: usize, per_ip: usize, idle_ms: u64) -> ConnLimits {
        ConnLimits {
            max_total: total,
            max_per_ip: per_ip,
            idle_timeout: Duration::from_millis(idle_ms),
            first_byte_timeout: Duration::from_millis(idle_ms),
        }
    }

    #[test]
    fn permits_count_per_address_and_in_total_and_are_released() {
        let l = Limited::new((), limits(3, 2, 1000));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.admit(a).unwrap();
        let _p2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_err(), "third from one address");
        let _p3 = l.admit(b).unwrap();
        assert!(l.admit("10.0.0.3".parse().unwrap()).is_err(), "over total");
        drop(p1);
        assert!(l.admit(a).is_ok());
        // One IPv6 /64 counts as one client.
        let l = Limited::new((), limits(10, 1, 1000));
        let _p = l.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(l.admit("2001:db8::2".parse().unwrap()).is_err());
        assert!(l.admit("2001:db8:0:1::2".parse().unwrap()).is_ok());
    }

    #[test]
    fn log_every_holds_back_and_counts() {
        let mut log = LogEvery::new(Duration::from_secs(3600));
        assert_eq!(log.hit(), Some(0));
        assert_eq!(log.hit(), None);
        assert_eq!(log.hit(), None);
        log.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(log.hit(), Some(2));
    }

    #[tokio::test]
    async fn idle_connections_end_and_busy_ones_do_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let l = Limited::new((), limits(2, 2, 300));
        let permit = l.admit("127.0.0.1".parse().unwrap()).unwrap();
        let mut guarded = l.guard(a, permit);
        assert_eq!(l.open_connections(), 1);
        // Progress every 100 ms keeps it open well past the timeout.
        let writer = tokio::spawn(async move {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                b.write_all(b"x").await.unwrap();
            }
            b
        });
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            got += guarded.read(&mut buf).await.unwrap();
        }
        let _b = writer.await.unwrap();
        let started = std::time::Instant::now();
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(250));
        drop(guarded);
        assert_eq!(l.open_connections(), 0);
    }
}
