//! Port mapping by PCP (the Port Control Protocol, RFC 6887) or its
//! predecessor NAT-PMP (RFC 6886), beside libp2p's UPnP IGD: asks the
//! default gateway to forward this peer's TCP listening ports and its data
//! port, renews the mappings before they lapse, and removes them when the
//! peer stops. PCP is asked first; a gateway that answers it only with
//! NAT-PMP's "unsupported version", or not at all, is asked in NAT-PMP.
//!
//! It talks only to the default gateway, on UDP port 5351, and reads only
//! answers of the expected size, kind and port from it (for PCP, carrying
//! the mapping's own random nonce); each question is sent at most [`TRIES`]
//! times. It maps only the ports it is given, and reports what it got as
//! [`PortMapEvent`]s; what they mean for the peer's addresses is the host's
//! business.

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
/// PCP's version number (NAT-PMP's is 0).
const PCP_VERSION: u8 = 2;
/// PCP's MAP opcode.
const PCP_MAP: u8 = 1;
/// The IANA protocol number of TCP, as PCP names it.
const TCP: u8 = 6;
/// A PCP MAP request and answer: a 24-byte header and a 36-byte body.
const PCP_MAP_LEN: usize = 60;
/// The longest datagram a gateway may send (PCP's limit).
const MAX_ANSWER: usize = 1100;

/// What port mapping by PCP or NAT-PMP found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMapEvent {
    /// No gateway answers PCP or NAT-PMP (or there is no default gateway).
    NoGateway,
    /// The gateway's own outside address is not public (a NAT behind another NAT).
    NotPublic(Ipv4Addr),
    /// `internal` is forwarded from `ip`:`external`.
    Mapped {
        /// Which protocol the gateway spoke.
        by: Dialect,
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

/// The protocol a gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PCP (RFC 6887).
    Pcp,
    /// NAT-PMP (RFC 6886).
    NatPmp,
}

/// Why a question got no usable answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortControlError {
    /// Nothing came back after every try.
    #[error("the gateway did not answer NAT-PMP")]
    Silent,
    /// The gateway answered with a result code other than success.
    #[error("the gateway refused: {0}")]
    Refused(&'static str),
    /// A NAT-PMP gateway answered a PCP question: ask in NAT-PMP.
    #[error("the gateway speaks NAT-PMP only")]
    OldVersion,
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
            tracing::info!("port control: {e}");
            let _ = events.send(PortMapEvent::NoGateway).await;
            return;
        }
    };
    let mut mappings: Vec<Mapping> = ports.into_iter().map(Mapping::new).collect();
    let first = tokio::select! {
        first = client.choose_dialect(&mappings[0]) => first,
        _ = stop.cancelled() => return,
    };
    let (dialect, ip) = match first {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(%gateway, "no port mapping by PCP or NAT-PMP: {e}");
            let _ = events.send(PortMapEvent::NoGateway).await;
            return;
        }
    };
    if !super::reachability::is_public_ip(IpAddr::V4(ip)) {
        let _ = events.send(PortMapEvent::NotPublic(ip)).await;
        return;
    }
    loop {
        let mut renew_in = Duration::from_secs(LIFETIME as u64 / 2);
        for mapping in &mut mappings {
            let asked = tokio::select! {
                asked = client.map(dialect, mapping, LIFETIME) => asked,
                _ = stop.cancelled() => break,
            };
            let event = match asked {
                Ok(granted) => {
                    mapping.held = true;
                    renew_in =
                        renew_in.min(Duration::from_secs(granted.lifetime.max(2) as u64 / 2));
                    PortMapEvent::Mapped {
                        by: dialect,
                        ip: granted.ip.unwrap_or(ip),
                        internal: mapping.internal,
                        external: granted.external,
                    }
                }
                Err(e) => {
                    mapping.held = false;
                    PortMapEvent::Lost {
                        internal: mapping.internal,
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
    for mapping in mappings.iter().filter(|m| m.held) {
        // A lifetime of 0 removes the mapping.
        let removal = tokio::time::timeout(REMOVAL_PATIENCE, client.map(dialect, mapping, 0)).await;
        tracing::debug!(port = mapping.internal, ?removal, "port mapping removed");
    }
}

/// One port to keep mapped.
struct Mapping {
    internal: u16,
    /// PCP names a mapping by this random value; only its owner can renew or remove it.
    nonce: [u8; 12],
    /// Whether the gateway holds it now.
    held: bool,
}

impl Mapping {
    fn new(internal: u16) -> Self {
        Self {
            internal,
            nonce: rand::random(),
            held: false,
        }
    }
}

/// What the gateway granted for a mapping.
#[derive(Debug, PartialEq, Eq)]
struct Granted {
    /// The public address, when the answer says it (PCP does).
    ip: Option<Ipv4Addr>,
    external: u16,
    lifetime: u32,
}

/// A UDP socket connected to the gateway's PCP and NAT-PMP port.
struct Client {
    socket: UdpSocket,
}

impl Client {
    async fn new(gateway: Ipv4Addr) -> Result<Self, PortControlError> {
        let io = |e: std::io::Error| PortControlError::Io(e.to_string());
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

    /// Which protocol the gateway speaks, and its outside address: PCP
    /// if it maps `first` when asked in PCP, else NAT-PMP.
    async fn choose_dialect(
        &self,
        first: &Mapping,
    ) -> Result<(Dialect, Ipv4Addr), PortControlError> {
        match self.map(Dialect::Pcp, first, LIFETIME).await {
            Ok(Granted { ip: Some(ip), .. }) => return Ok((Dialect::Pcp, ip)),
            Ok(Granted { ip: None, .. }) => {
                return Err(PortControlError::Refused("a short answer"))
            }
            Err(PortControlError::OldVersion | PortControlError::Silent) => {}
            // It speaks PCP and said no: NAT-PMP would say the same.
            Err(e) => return Err(e),
        }
        let ip = self.external_address().await?;
        Ok((Dialect::NatPmp, ip))
    }

    /// The gateway's outside address, asked in NAT-PMP.
    async fn external_address(&self) -> Result<Ipv4Addr, PortControlError> {
        let answer = self
            .ask(&[0, OP_EXTERNAL_ADDRESS], |a| {
                is_nat_pmp_answer(a, OP_EXTERNAL_ADDRESS)
            })
            .await?;
        parse_external_address(&answer)
    }

    /// Maps TCP `mapping.internal` (asking for the same port outside) for
    /// `lifetime` seconds, or removes it with a lifetime of 0.
    async fn map(
        &self,
        dialect: Dialect,
        mapping: &Mapping,
        lifetime: u32,
    ) -> Result<Granted, PortControlError> {
        let internal = mapping.internal;
        let external = if lifetime == 0 { 0 } else { internal };
        match dialect {
            Dialect::NatPmp => {
                let request = map_request(internal, external, lifetime);
                let answer = self
                    .ask(&request, |a| is_nat_pmp_answer(a, OP_MAP_TCP))
                    .await?;
                let (external, lifetime) = parse_mapping(&answer, internal)?;
                Ok(Granted {
                    ip: None,
                    external,
                    lifetime,
                })
            }
            Dialect::Pcp => {
                let own = match self.socket.local_addr() {
                    Ok(SocketAddr::V4(own)) => *own.ip(),
                    _ => return Err(PortControlError::Io("no local IPv4 address".into())),
                };
                let request = pcp_map_request(own, mapping, external, lifetime);
                let answer = self
                    .ask(&request, |a| is_pcp_answer(a, &mapping.nonce))
                    .await?;
                parse_pcp_mapping(&answer, internal)
            }
        }
    }

    /// Sends `question` until an answer that `fits` comes, at most [`TRIES`] times.
    async fn ask(
        &self,
        question: &[u8],
        fits: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>, PortControlError> {
        let mut wait = FIRST_WAIT;
        let mut buf = vec![0u8; MAX_ANSWER];
        for _ in 0..TRIES {
            self.socket
                .send(question)
                .await
                .map_err(|e| PortControlError::Io(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(received) =
                tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await
            {
                // An unreachable port (ICMP) reads as an error: keep waiting out the try.
                let Ok(len) = received else { continue };
                if fits(&buf[..len]) {
                    return Ok(buf[..len].to_vec());
                }
            }
            wait *= 2;
        }
        Err(PortControlError::Silent)
    }
}

/// Whether `answer` is NAT-PMP's answer to `op`.
fn is_nat_pmp_answer(answer: &[u8], op: u8) -> bool {
    answer.len() >= 4 && answer[0] == 0 && answer[1] == ANSWER + op
}

/// Whether `answer` is PCP's answer to the MAP request with `nonce`, or
/// NAT-PMP's refusal of a PCP request (its version 0, MAP's opcode).
fn is_pcp_answer(answer: &[u8], nonce: &[u8; 12]) -> bool {
    let pcp = answer.len() >= PCP_MAP_LEN
        && answer[0] == PCP_VERSION
        && answer[1] == ANSWER + PCP_MAP
        && answer[24..36] == nonce[..];
    pcp || is_nat_pmp_answer(answer, PCP_MAP)
}

/// A PCP MAP request from `own` for TCP `mapping`, asking for `external`.
fn pcp_map_request(
    own: Ipv4Addr,
    mapping: &Mapping,
    external: u16,
    lifetime: u32,
) -> [u8; PCP_MAP_LEN] {
    let mut request = [0u8; PCP_MAP_LEN];
    request[0] = PCP_VERSION;
    request[1] = PCP_MAP;
    request[4..8].copy_from_slice(&lifetime.to_be_bytes());
    request[8..24].copy_from_slice(&own.to_ipv6_mapped().octets());
    request[24..36].copy_from_slice(&mapping.nonce);
    request[36] = TCP;
    request[40..42].copy_from_slice(&mapping.internal.to_be_bytes());
    request[42..44].copy_from_slice(&external.to_be_bytes());
    // Any outside address: the IPv4-mapped form of 0.0.0.0.
    request[44..60].copy_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
    request
}

/// What a PCP MAP answer (already matched by [`is_pcp_answer`]) grants.
fn parse_pcp_mapping(answer: &[u8], internal: u16) -> Result<Granted, PortControlError> {
    if answer[0] != PCP_VERSION {
        return Err(PortControlError::OldVersion);
    }
    match answer[3] {
        0 => {}
        1 => return Err(PortControlError::OldVersion),
        2 => {
            return Err(PortControlError::Refused(
                "not authorized (port mapping is switched off on the router)",
            ))
        }
        7 => {
            return Err(PortControlError::Refused(
                "network failure (the router has no outside address yet)",
            ))
        }
        8 => return Err(PortControlError::Refused("out of resources")),
        11 => {
            return Err(PortControlError::Refused(
                "cannot provide the external port",
            ))
        }
        _ => return Err(PortControlError::Refused("an error result")),
    }
    if u16::from_be_bytes([answer[40], answer[41]]) != internal {
        return Err(PortControlError::Refused("an answer about another port"));
    }
    let lifetime = u32::from_be_bytes(answer[4..8].try_into().expect("4 bytes"));
    let external = u16::from_be_bytes([answer[42], answer[43]]);
    let ip: [u8; 16] = answer[44..60].try_into().expect("16 bytes");
    let ip = std::net::Ipv6Addr::from(ip).to_ipv4_mapped();
    Ok(Granted {
        ip,
        external,
        lifetime,
    })
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
fn check_result(answer: &[u8]) -> Result<(), PortControlError> {
    match u16::from_be_bytes([answer[2], answer[3]]) {
        0 => Ok(()),
        1 => Err(PortControlError::Refused("unsupported version")),
        2 => Err(PortControlError::Refused(
            "not authorized (port mapping is switched off on the router)",
        )),
        3 => Err(PortControlError::Refused(
            "network failure (the router has no outside address yet)",
        )),
        4 => Err(PortControlError::Refused("out of resources")),
        5 => Err(PortControlError::Refused("unsupported opcode")),
        _ => Err(PortControlError::Refused("an unknown result code")),
    }
}

/// The address in an answer to the external-address question (12 bytes).
fn parse_external_address(answer: &[u8]) -> Result<Ipv4Addr, PortControlError> {
    check_result(answer)?;
    let ip: [u8; 4] = answer
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .ok_or(PortControlError::Refused("a short answer"))?;
    Ok(Ipv4Addr::from(ip))
}

/// The external port and lifetime in an answer to a mapping request for
/// `internal` (16 bytes).
fn parse_mapping(answer: &[u8], internal: u16) -> Result<(u16, u32), PortControlError> {
    check_result(answer)?;
    if answer.len() < 16 {
        return Err(PortControlError::Refused("a short answer"));
    }
    if u16::from_be_bytes([answer[8], answer[9]]) != internal {
        return Err(PortControlError::Refused("an answer about another port"));
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
            Err(PortControlError::Refused(r)) if r.contains("not authorized")
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
        let granted = client
            .map(Dialect::NatPmp, &Mapping::new(4242), LIFETIME)
            .await;
        let expected = Granted {
            ip: None,
            external: 4242,
            lifetime: 7200,
        };
        assert_eq!(granted, Ok(expected));
        server.await.unwrap();
    }

    /// A fake gateway on loopback, answering each question with what `answer` makes of it.
    async fn gateway_answering(
        answer: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
    ) -> (Client, tokio::task::JoinHandle<()>) {
        let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gateway_addr = gateway.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 128];
            while let Ok((len, from)) = gateway.recv_from(&mut buf).await {
                let reply = answer(&buf[..len]);
                if gateway.send_to(&reply, from).await.is_err() {
                    return;
                }
            }
        });
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(gateway_addr).await.unwrap();
        (Client { socket }, server)
    }

    /// A PCP gateway maps the port and says its outside address; an
    /// answer carrying another mapping's nonce is not taken for it.
    #[tokio::test]
    async fn a_pcp_gateway_maps_the_port_and_names_its_address() {
        let (client, server) = gateway_answering(|request| {
            assert_eq!(request.len(), PCP_MAP_LEN);
            assert_eq!(request[0], PCP_VERSION);
            assert_eq!(
                &request[8..24],
                &Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets()
            );
            let mut answer = request.to_vec();
            answer[1] = ANSWER + PCP_MAP;
            answer[3] = 0;
            answer[4..8].copy_from_slice(&3600u32.to_be_bytes());
            answer[42..44].copy_from_slice(&5000u16.to_be_bytes());
            answer[44..60].copy_from_slice(&Ipv4Addr::new(60, 1, 0, 11).to_ipv6_mapped().octets());
            answer
        })
        .await;
        let mapping = Mapping::new(4000);
        let (dialect, ip) = client.choose_dialect(&mapping).await.unwrap();
        assert_eq!((dialect, ip), (Dialect::Pcp, Ipv4Addr::new(60, 1, 0, 11)));
        let granted = client.map(Dialect::Pcp, &mapping, LIFETIME).await.unwrap();
        assert_eq!((granted.external, granted.lifetime), (5000, 3600));
        let mut stranger = [0u8; PCP_MAP_LEN];
        stranger[0] = PCP_VERSION;
        stranger[1] = ANSWER + PCP_MAP;
        assert!(!is_pcp_answer(&stranger, &mapping.nonce));
        server.abort();
    }

    /// A NAT-PMP gateway refuses PCP's version; the client asks again in NAT-PMP.
    #[tokio::test]
    async fn a_nat_pmp_gateway_is_asked_in_its_own_version() {
        let (client, server) = gateway_answering(|request| match request[0] {
            PCP_VERSION => vec![0, ANSWER + request[1], 0, 1, 0, 0, 0, 5],
            _ => vec![0, ANSWER, 0, 0, 0, 0, 0, 5, 60, 1, 0, 12],
        })
        .await;
        let (dialect, ip) = client.choose_dialect(&Mapping::new(4000)).await.unwrap();
        assert_eq!(
            (dialect, ip),
            (Dialect::NatPmp, Ipv4Addr::new(60, 1, 0, 12))
        );
        server.abort();
    }
}
