//! Port mapping by NAT-PMP (RFC 6886), beside libp2p's UPnP IGD: asks the
//! default gateway to forward this peer's TCP listening ports and its data
//! port, renews the mappings before they lapse, and removes them when the
//! peer stops. Routers that speak PCP (RFC 6887) mostly answer NAT-PMP too.
//!
//! It talks only to the default gateway, on UDP port 5351, and reads only
//! answers of the expected size, kind and port from it; each question is
//! sent at most [`TRIES`] times. It maps only the ports it is given, and
//! reports what it got as [`PortMapEvent`]s; what they mean for the
//! peer's addresses is the host's business.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The port NAT-PMP servers listen on.
const SERVER_PORT: u16 = 5351;
/// How long a mapping is asked for, in seconds (RFC 6886 recommends two hours).
const LIFETIME: u32 = 7200;
/// Times a question is sent before the gateway counts as silent; the wait
/// doubles from [`FIRST_WAIT`] (0.25 + 0.5 + 1 + 2 s).
const TRIES: u32 = 4;
/// The wait for an answer to the first try.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// The most a mapping removal may take at shutdown.
const REMOVAL_PATIENCE: Duration = Duration::from_secs(2);

const OP_EXTERNAL_ADDRESS: u8 = 0;
const OP_MAP_TCP: u8 = 2;
/// Added to the opcode in every answer.
const ANSWER: u8 = 128;

/// What port mapping by NAT-PMP found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMapEvent {
    /// No gateway answers NAT-PMP (or there is no default gateway).
    NoGateway,
    /// The gateway's own outside address is not public (a NAT behind another NAT).
    NotPublic(Ipv4Addr),
    /// `internal` is forwarded from `ip`:`external`.
    Mapped {
        /// The gateway's public address.
        ip: Ipv4Addr,
        /// The local port.
        internal: u16,
        /// The port outside.
        external: u16,
    },
    /// The gateway refused to map `internal` or stopped renewing it.
    Lost {
        /// The local port.
        internal: u16,
        /// Why, from the gateway's answer.
        reason: String,
    },
}

/// Why a question got no usable answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NatPmpError {
    /// Nothing came back after every try.
    #[error("the gateway did not answer NAT-PMP")]
    Silent,
    /// The gateway answered with a result code other than success.
    #[error("the gateway refused: {0}")]
    Refused(&'static str),
    /// A local socket error.
    #[error("{0}")]
    Io(String),
}

/// Keeps `ports` mapped on the default gateway until `stop`, then removes
/// the mappings; reports each step on `events`.
pub async fn run(ports: Vec<u16>, events: mpsc::Sender<PortMapEvent>, stop: CancellationToken) {
    let Some(gateway) = default_gateway() else {
        let _ = events.send(PortMapEvent::NoGateway).await;
        return;
    };
    let client = match Client::new(gateway).await {
        Ok(client) => client,
        Err(e) => {
            tracing::info!("NAT-PMP: {e}");
            let _ = events.send(PortMapEvent::NoGateway).await;
            return;
        }
    };
    let ip = tokio::select! {
        ip = client.external_address() => ip,
        _ = stop.cancelled() => return,
    };
    let ip = match ip {
        Ok(ip) => ip,
        Err(e) => {
            tracing::info!(%gateway, "no NAT-PMP port mapping: {e}");
            let _ = events.send(PortMapEvent::NoGateway).await;
            return;
        }
    };
    if !super::reachability::is_public_ip(IpAddr::V4(ip)) {
        let _ = events.send(PortMapEvent::NotPublic(ip)).await;
        return;
    }
    let mut mapped = Vec::new();
    loop {
        let mut renew_in = Duration::from_secs(LIFETIME as u64 / 2);
        for &port in &ports {
            let asked = tokio::select! {
                asked = client.map(port, port, LIFETIME) => asked,
                _ = stop.cancelled() => break,
            };
            let event = match asked {
                Ok((external, lifetime)) => {
                    if !mapped.contains(&port) {
                        mapped.push(port);
                    }
                    renew_in = renew_in.min(Duration::from_secs(lifetime.max(2) as u64 / 2));
                    PortMapEvent::Mapped {
                        ip,
                        internal: port,
                        external,
                    }
                }
                Err(e) => {
                    mapped.retain(|p| *p != port);
                    PortMapEvent::Lost {
                        internal: port,
                        reason: e.to_string(),
                    }
                }
            };
            let _ = events.send(event).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(renew_in) => {}
            _ = stop.cancelled() => break,
        }
    }
    for port in mapped {
        // A lifetime of 0 removes the mapping.
        let removal = tokio::time::timeout(REMOVAL_PATIENCE, client.map(port, 0, 0)).await;
        tracing::debug!(port, ?removal, "NAT-PMP mapping removed");
    }
}

/// A UDP socket connected to the gateway's NAT-PMP port.
struct Client {
    socket: UdpSocket,
}

impl Client {
    async fn new(gateway: Ipv4Addr) -> Result<Self, NatPmpError> {
        let io = |e: std::io::Error| NatPmpError::Io(e.to_string());
        let socket = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
            .await
            .map_err(io)?;
        // Connected: the kernel drops datagrams from anyone but the gateway's port.
        socket
            .connect(SocketAddr::from((gateway, SERVER_PORT)))
            .await
            .map_err(io)?;
        Ok(Self { socket })
    }

    /// The gateway's outside address.
    async fn external_address(&self) -> Result<Ipv4Addr, NatPmpError> {
        let answer = self
            .ask(&[0, OP_EXTERNAL_ADDRESS], OP_EXTERNAL_ADDRESS)
            .await?;
        parse_external_address(&answer)
    }

    /// Maps TCP `internal` (asking for `external`) for `lifetime` seconds;
    /// the port and lifetime granted.
    async fn map(
        &self,
        internal: u16,
        external: u16,
        lifetime: u32,
    ) -> Result<(u16, u32), NatPmpError> {
        let answer = self
            .ask(&map_request(internal, external, lifetime), OP_MAP_TCP)
            .await?;
        parse_mapping(&answer, internal)
    }

    /// Sends `question` until an answer to `op` comes, at most [`TRIES`] times.
    async fn ask(&self, question: &[u8], op: u8) -> Result<Vec<u8>, NatPmpError> {
        let mut wait = FIRST_WAIT;
        let mut buf = [0u8; 16];
        for _ in 0..TRIES {
            self.socket
                .send(question)
                .await
                .map_err(|e| NatPmpError::Io(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(received) =
                tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await
            {
                // An unreachable port (ICMP) reads as an error: keep waiting out the try.
                let Ok(len) = received else { continue };
                if len >= 4 && buf[0] == 0 && buf[1] == ANSWER + op {
                    return Ok(buf[..len].to_vec());
                }
            }
            wait *= 2;
        }
        Err(NatPmpError::Silent)
    }
}

/// A request to map TCP `internal` to `external` for `lifetime` seconds.
fn map_request(internal: u16, external: u16, lifetime: u32) -> [u8; 12] {
    let mut request = [0u8; 12];
    request[1] = OP_MAP_TCP;
    request[4..6].copy_from_slice(&internal.to_be_bytes());
    request[6..8].copy_from_slice(&external.to_be_bytes());
    request[8..12].copy_from_slice(&lifetime.to_be_bytes());
    request
}

/// The result code of an answer, as an error unless it is success.
fn check_result(answer: &[u8]) -> Result<(), NatPmpError> {
    match u16::from_be_bytes([answer[2], answer[3]]) {
        0 => Ok(()),
        1 => Err(NatPmpError::Refused("unsupported version")),
        2 => Err(NatPmpError::Refused(
            "not authorized (port mapping is switched off on the router)",
        )),
        3 => Err(NatPmpError::Refused(
            "network failure (the router has no outside address yet)",
        )),
        4 => Err(NatPmpError::Refused("out of resources")),
        5 => Err(NatPmpError::Refused("unsupported opcode")),
        _ => Err(NatPmpError::Refused("an unknown result code")),
    }
}

/// The address in an answer to the external-address question (12 bytes).
fn parse_external_address(answer: &[u8]) -> Result<Ipv4Addr, NatPmpError> {
    check_result(answer)?;
    let ip: [u8; 4] = answer
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .ok_or(NatPmpError::Refused("a short answer"))?;
    Ok(Ipv4Addr::from(ip))
}

/// The external port and lifetime in an answer to a mapping request for
/// `internal` (16 bytes).
fn parse_mapping(answer: &[u8], internal: u16) -> Result<(u16, u32), NatPmpError> {
    check_result(answer)?;
    if answer.len() < 16 {
        return Err(NatPmpError::Refused("a short answer"));
    }
    if u16::from_be_bytes([answer[8], answer[9]]) != internal {
        return Err(NatPmpError::Refused("an answer about another port"));
    }
    let external = u16::from_be_bytes([answer[10], answer[11]]);
    let lifetime = u32::from_be_bytes(answer[12..16].try_into().expect("4 bytes"));
    Ok((external, lifetime))
}

/// The IPv4 default gateway, from the kernel's routing table.
fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    gateway_in_route_table(&table)
}

/// The gateway of the first default route in `/proc/net/route`'s text.
fn gateway_in_route_table(table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (destination, gateway, flags) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let wanted = RTF_UP | RTF_GATEWAY;
        if *destination != "00000000" || flags & wanted != wanted {
            return None;
        }
        // The kernel writes the address in host order, as hex.
        let gateway = u32::from_str_radix(gateway, 16).ok()?;
        Some(Ipv4Addr::from(gateway.to_le_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            gateway_in_route_table(table),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        let no_default = "Iface\tDestination\tGateway\tFlags\n\
                          eth0\t0001A8C0\t00000000\t0001\n";
        assert_eq!(gateway_in_route_table(no_default), None);
    }

    #[test]
    fn answers_are_read_and_checked() {
        let external = [0, 128, 0, 0, 0, 0, 0, 9, 60, 1, 0, 11];
        assert_eq!(
            parse_external_address(&external),
            Ok(Ipv4Addr::new(60, 1, 0, 11))
        );
        let refused = [0, 128, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0];
        assert!(matches!(
            parse_external_address(&refused),
            Err(NatPmpError::Refused(r)) if r.contains("not authorized")
        ));
        let mut mapping = [0u8; 16];
        mapping[1] = 130;
        mapping[8..10].copy_from_slice(&4000u16.to_be_bytes());
        mapping[10..12].copy_from_slice(&4001u16.to_be_bytes());
        mapping[12..16].copy_from_slice(&3600u32.to_be_bytes());
        assert_eq!(parse_mapping(&mapping, 4000), Ok((4001, 3600)));
        assert!(parse_mapping(&mapping, 4002).is_err(), "another port");
        assert!(parse_mapping(&mapping[..12], 4000).is_err(), "short");
    }

    #[test]
    fn a_mapping_request_is_laid_out_as_the_rfc_says() {
        assert_eq!(
            map_request(0x1234, 0x5678, 7200),
            [0, 2, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x1c, 0x20]
        );
    }

    /// A gateway on loopback that answers as a router would: the client
    /// asks again after silence, skips answers to other questions, and
    /// reads the mapping.
    #[tokio::test]
    async fn the_client_retries_and_reads_the_answer_to_its_question() {
        let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gateway_addr = gateway.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // The first try goes unanswered.
            let (_, _) = gateway.recv_from(&mut buf).await.unwrap();
            let (len, from) = gateway.recv_from(&mut buf).await.unwrap();
            assert_eq!(len, 12);
            let internal = [buf[4], buf[5]];
            // An answer to another question first, then the right one.
            gateway
                .send_to(&[0, 128, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4], from)
                .await
                .unwrap();
            let mut answer = [0u8; 16];
            answer[1] = 130;
            answer[8..10].copy_from_slice(&internal);
            answer[10..12].copy_from_slice(&internal);
            answer[12..16].copy_from_slice(&7200u32.to_be_bytes());
            gateway.send_to(&answer, from).await.unwrap();
        });
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(gateway_addr).await.unwrap();
        let client = Client { socket };
        assert_eq!(client.map(4242, 4242, LIFETIME).await, Ok((4242, 7200)));
        server.await.unwrap();
    }
}
