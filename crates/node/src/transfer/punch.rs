//! A data connection through a router that gives every destination a new
//! port (a "symmetric" NAT), facing one that keeps its port but lets in
//! only replies: both ends open many connections at once towards each
//! other, and one pair meets, by the birthday paradox.
//!
//! Each end, towards the other's public IP:
//! - **fans out**: [`FAN`] connections from fresh ports to the other's
//!   fixed port. Behind a router that changes ports, each leaves from a new
//!   random port, which then lets in replies from that fixed port;
//! - **sprays**: connections from its own fixed port to random ports, a
//!   batch every [`SPRAY_EVERY`], each given up after [`SPRAY_HOLD`].
//!   Behind a router that keeps ports, each leaves from the fixed port and
//!   opens the router to replies from the port it went to.
//!
//! When a spray reaches a port the other side's fan holds open, the two
//! connection attempts meet (a TCP simultaneous open, as for a dial-back in
//! [`super::data_channel::connect_from`]). With 256 ports fanned among
//! 64,512 and 512 sprays a second, a meeting comes after half a second on
//! average, and fails to come within 4 s once in 3,000 tries.
//!
//! It holds at most [`FAN`] sockets plus one [`SPRAY_HOLD`]'s worth of
//! sprays, stops at the first connection, when its patience runs out or
//! when told to give up, and leaves no socket behind. Whether to punch at
//! all, and towards whom, is for [`super::upload`] and [`super::download`]
//! to decide.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::data_channel::{new_socket, port_sharing_socket};

/// Connections fanned out from fresh ports to the other end's fixed port.
pub const FAN: usize = 256;
/// Sprayed connections started at each [`SPRAY_EVERY`].
const SPRAY_BATCH: usize = 32;
/// How often a batch of sprays starts (512 a second).
const SPRAY_EVERY: Duration = Duration::from_millis(62);
/// How long one spray waits for an answer: under the kernel's first
/// retransmission (1 s), so that each costs one packet.
const SPRAY_HOLD: Duration = Duration::from_millis(900);
/// The ports routers hand out for connections from unprivileged ports.
const PORTS: RangeInclusive<u16> = 1024..=65535;

/// Punches made for others running at once, at most.
const PUNCHES_AT_ONCE: usize = 2;
/// Punches made for others started in any minute, at most.
const PUNCHES_PER_MINUTE: usize = 6;

/// What a sharer spends on punches asked by downloaders. Each sends a few
/// thousand connection attempts to an IP the asker names and nobody can
/// check (the two are joined only through a relay), so a peer holding
/// tickets must not be able to aim a flood through this one: a few at
/// once, and a few a minute.
#[derive(Clone, Default)]
pub struct PunchBudget(Arc<Mutex<BudgetState>>);

#[derive(Default)]
struct BudgetState {
    running: usize,
    started: VecDeque<Instant>,
}

/// One punch's place in the budget; dropping it ends the punch's share.
pub struct PunchPermit(PunchBudget);

impl PunchBudget {
    /// A place for one more punch, unless too many run or ran this minute.
    pub fn take(&self) -> Option<PunchPermit> {
        let mut state = self.0.lock().expect("punch budget lock");
        let now = Instant::now();
        while state
            .started
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            state.started.pop_front();
        }
        if state.running >= PUNCHES_AT_ONCE || state.started.len() >= PUNCHES_PER_MINUTE {
            return None;
        }
        state.running += 1;
        state.started.push_back(now);
        Some(PunchPermit(self.clone()))
    }
}

impl Drop for PunchPermit {
    fn drop(&mut self) {
        let mut state = self.0 .0.lock().expect("punch budget lock");
        state.running = state.running.saturating_sub(1);
    }
}

/// Where the two ends meet.
#[derive(Debug, Clone, Copy)]
pub struct Rendezvous {
    /// This end's fixed local address (the data port, or a fresh port the other end was told).
    pub local: SocketAddr,
    /// The other end's public IP.
    pub ip: IpAddr,
    /// The other end's fixed port.
    pub port: u16,
}

/// Fans out and sprays towards the other end until a connection forms,
/// `patience` runs out or `give_up` says so.
pub async fn punch(
    rendezvous: Rendezvous,
    patience: Duration,
    give_up: impl Fn() -> bool,
) -> std::io::Result<TcpStream> {
    let mut first = None;
    let take = |tcp| {
        first = Some(tcp);
        Flow::Done
    };
    let ended = punch_each(rendezvous, patience, give_up, take).await;
    first.ok_or(ended)
}

/// What to do after a connection formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Stop punching.
    Done,
    /// Keep punching until patience runs out or `give_up` says so.
    More,
}

/// Fans out and sprays towards the other end, handing each connection
/// that forms to `formed`, until it says [`Flow::Done`], `patience` runs
/// out or `give_up` says so; returns why it stopped.
///
/// More than one pair may meet at once (two sprays of one batch can each
/// find a fanned port), and each end may see another first: the side that
/// serves takes every one (with [`Flow::More`]), so that whichever the
/// other side keeps has someone at its far end.
pub async fn punch_each(
    rendezvous: Rendezvous,
    patience: Duration,
    give_up: impl Fn() -> bool,
    mut formed: impl FnMut(TcpStream) -> Flow,
) -> std::io::Error {
    let deadline = tokio::time::Instant::now() + patience;
    let mut attempts = JoinSet::new();
    fan_out(&mut attempts, rendezvous, deadline);
    // The fan goes first: the other end sprays as soon as it is asked.
    let start = tokio::time::Instant::now() + SPRAY_EVERY;
    let mut spray = tokio::time::interval_at(start, SPRAY_EVERY);
    spray.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection met {} within {} s", rendezvous.ip, patience.as_secs()),
                );
            }
            Some(joined) = attempts.join_next() => {
                if let Ok(Ok(tcp)) = joined {
                    if formed(tcp) == Flow::Done {
                        return std::io::Error::other("done");
                    }
                }
            }
            _ = spray.tick() => {
                if give_up() {
                    return std::io::Error::other("the punch was called off");
                }
                spray_batch(&mut attempts, rendezvous);
            }
        }
    }
}

/// Starts [`FAN`] connections from fresh ports to the other end's fixed port.
fn fan_out(
    attempts: &mut JoinSet<std::io::Result<TcpStream>>,
    rendezvous: Rendezvous,
    deadline: tokio::time::Instant,
) {
    let to = SocketAddr::new(rendezvous.ip, rendezvous.port);
    for _ in 0..FAN {
        // Out of descriptors or ports: fewer tries, not a failure.
        let Ok(socket) = new_socket(to) else { break };
        attempts.spawn(async move {
            tokio::time::timeout_at(deadline, socket.connect(to))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        });
    }
}

/// Starts [`SPRAY_BATCH`] connections from the fixed port to random ports.
fn spray_batch(attempts: &mut JoinSet<std::io::Result<TcpStream>>, rendezvous: Rendezvous) {
    let mut rng = rand::thread_rng();
    for _ in 0..SPRAY_BATCH {
        let to = SocketAddr::new(rendezvous.ip, rng.gen_range(PORTS));
        let Ok(socket) = port_sharing_socket(rendezvous.local) else {
            break;
        };
        attempts.spawn(async move {
            tokio::time::timeout(SPRAY_HOLD, socket.connect(to))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_few_at_once_and_a_few_a_minute() {
        let budget = PunchBudget::default();
        let first = budget.take().expect("a first place");
        let second = budget.take().expect("a second place");
        assert!(budget.take().is_none(), "two at once at most");
        drop((first, second));
        let mut started = 2;
        while let Some(permit) = budget.take() {
            started += 1;
            drop(permit);
        }
        assert_eq!(started, PUNCHES_PER_MINUTE);
    }

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Without routers the fan reaches a listener at the fixed port at once.
    #[tokio::test]
    async fn the_fan_reaches_a_listening_fixed_port() {
        let listener = tokio::net::TcpListener::bind(loopback(0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let local = super::super::data_channel::fresh_local_port(loopback(port)).unwrap();
        let rendezvous = Rendezvous {
            local: loopback(local.port()),
            ip: IpAddr::from([127, 0, 0, 1]),
            port,
        };
        let tcp = punch(rendezvous, Duration::from_secs(5), || false)
            .await
            .expect("a connection");
        assert_eq!(tcp.peer_addr().unwrap(), loopback(port));
        let (accepted, from) = listener.accept().await.unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), from);
    }

    /// With nothing to meet, it stops when told to, and when patience runs
    /// out. (Both before the first spray, which would go to random ports of
    /// this machine.)
    #[tokio::test]
    async fn it_stops_when_called_off_and_when_patience_runs_out() {
        // A closed port on loopback refuses every try at once.
        let port = {
            let l = std::net::TcpListener::bind(loopback(0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let local = super::super::data_channel::fresh_local_port(loopback(port)).unwrap();
        let rendezvous = Rendezvous {
            local: loopback(local.port()),
            ip: IpAddr::from([127, 0, 0, 1]),
            port,
        };
        let started = std::time::Instant::now();
        let called_off = punch(rendezvous, Duration::from_secs(30), || true).await;
        assert_eq!(called_off.unwrap_err().kind(), std::io::ErrorKind::Other);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Before the first spray: only the refused fan went out.
        let timed_out = punch(rendezvous, Duration::from_millis(30), || false).await;
        assert_eq!(timed_out.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }
}
