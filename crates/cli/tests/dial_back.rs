//! A downloader that abuses the dial-back (docs/PROTOCOL.md 6.2): a small
//! libp2p swarm inside this test asks a real daemon for a file, then asks
//! it on data streams to connect back. Without the ticket it was granted,
//! the daemon connects nowhere; with it, it connects once, from its data
//! port, to the asker's own address; and it never answers a dial-back on
//! the data connection. A punch (6.2) is refused, with the reason on the
//! stream, without the ticket or towards an address that is not public
//! (a successful punch needs public addresses: tests/nat.rs has it).

mod support;

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, cbor, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, Multiaddr, PeerId, StreamProtocol, Swarm};
use peershare_core::wire::control::{TransferRequest, TransferResponse, TRANSFER_PROTOCOL};
use peershare_core::wire::data::{
    ClientFrame, ErrorCode, FrameHeader, ServerFrame, DATA_STREAM_PROTOCOL, HEADER_LEN,
};
use peershare_core::FileId;
use peershare_node::net::host::IDENTIFY_VERSION;
use peershare_node::transfer::data_channel::{read_body, read_header, write_frame, DataTls};
use support::{test_swarm, write_random, Daemon, Sandbox, MIB};
use tokio::net::TcpListener;

#[derive(NetworkBehaviour)]
struct Asker {
    identify: identify::Behaviour,
    transfer: cbor::Behaviour<TransferRequest, TransferResponse>,
    streams: libp2p_stream::Behaviour,
}

fn asker() -> Swarm<Asker> {
    test_swarm(Keypair::generate_ed25519(), |key| Asker {
        identify: identify::Behaviour::new(identify::Config::new(
            IDENTIFY_VERSION.into(),
            key.public(),
        )),
        transfer: cbor::Behaviour::new(
            [(
                StreamProtocol::new(TRANSFER_PROTOCOL),
                ProtocolSupport::Full,
            )],
            request_response::Config::default(),
        ),
        streams: libp2p_stream::Behaviour::new(),
    })
}

/// Asks `sharer` for `id` and returns the grant's ticket and data port.
async fn ask(swarm: &mut Swarm<Asker>, sharer: PeerId, addr: Multiaddr, id: FileId) -> (u64, u16) {
    swarm.add_peer_address(sharer, addr);
    swarm
        .behaviour_mut()
        .transfer
        .send_request(&sharer, TransferRequest { id });
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(AskerEvent::Transfer(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            })) => match response {
                TransferResponse::Granted {
                    ticket, data_port, ..
                } => return (ticket, data_port),
                other => panic!("the daemon did not grant the file: {other:?}"),
            },
            SwarmEvent::Behaviour(AskerEvent::Transfer(
                request_response::Event::OutboundFailure { error, .. },
            )) => panic!("the request failed: {error}"),
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                panic!("cannot connect to the daemon: {error}")
            }
            _ => {}
        }
    }
}

/// Sends one frame on a new data stream to `sharer`, and keeps the stream open.
async fn on_a_data_stream(
    control: &mut libp2p_stream::Control,
    sharer: PeerId,
    frame: ClientFrame,
) -> libp2p::Stream {
    let mut stream = control
        .open_stream(sharer, StreamProtocol::new(DATA_STREAM_PROTOCOL))
        .await
        .expect("a data stream");
    stream
        .write_all(&frame.encode())
        .await
        .expect("send the frame");
    stream.flush().await.expect("flush the frame");
    stream
}

/// The next connection to `listener` within `patience`, and where it came from.
async fn next_connection(
    listener: &TcpListener,
    patience: Duration,
) -> Option<std::net::SocketAddr> {
    let accepted = tokio::time::timeout(patience, listener.accept()).await;
    accepted.ok().map(|c| c.expect("accept").1)
}

/// A daemon sharing one file of `size` bytes named `name`: the daemon,
/// where to dial it, its peer id and the file's id.
fn sharing(sandbox: &Sandbox, name: &str, size: u64) -> (Daemon, Multiaddr, PeerId, FileId) {
    let id = write_random(&sandbox.share_dir("a").join(name), size);
    let a = Daemon::start(sandbox, "a", &[]);
    a.wait_shared(1);
    let (dial, sharer) = a
        .addr()
        .rsplit_once("/p2p/")
        .map(|(d, p)| {
            let dial: Multiaddr = d.parse().expect("a's address");
            (dial, p.parse::<PeerId>().expect("a's peer id"))
        })
        .expect("a full address");
    (a, dial, sharer, id.parse().expect("a file id"))
}

/// Asks for `id` from a swarm of its own, kept running in the background:
/// the grant's ticket and data port, and a handle to open data streams.
async fn granted(
    sharer: PeerId,
    dial: Multiaddr,
    id: FileId,
) -> (u64, u16, libp2p_stream::Control) {
    let mut swarm = asker();
    let (ticket, data_port) = ask(&mut swarm, sharer, dial, id).await;
    let control = swarm.behaviour().streams.new_control();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (ticket, data_port, control)
}

/// Sends `frame` on a data connection to `sharer`'s `data_port` and checks
/// that the answer is a protocol error.
async fn protocol_error_on_data_connection(sharer: PeerId, data_port: u16, frame: ClientFrame) {
    let tls = DataTls::new(&Keypair::generate_ed25519()).expect("tls");
    let data = std::net::SocketAddr::from(([127, 0, 0, 1], data_port));
    let mut stream = tls.connect(data, sharer).await.expect("a data connection");
    write_frame(&mut stream, &frame.encode())
        .await
        .expect("send");
    let header = read_header(&mut stream, 0).await.expect("an answer");
    let body = read_body(&mut stream, header).await.expect("its body");
    match ServerFrame::decode(header, &body) {
        Ok(ServerFrame::Error { code, .. }) => assert_eq!(code, ErrorCode::Protocol),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn a_dial_back_needs_the_askers_ticket_and_goes_only_to_the_asker() {
    let sandbox = Sandbox::new();
    let (a, dial, sharer, id) = sharing(&sandbox, "granted.bin", MIB + 3);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the asker");
    let mut grant = (0, 0);
    runtime.block_on(async {
        let (ticket, data_port, mut control) = granted(sharer, dial, id).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
        grant = (ticket, data_port);
        let port = listener.local_addr().expect("its address").port();

        let forged = ClientFrame::DialBack {
            ticket: ticket.wrapping_add(1),
            port,
        };
        let _held = on_a_data_stream(&mut control, sharer, forged).await;
        let port_zero = ClientFrame::DialBack { ticket, port: 0 };
        let _held_too = on_a_data_stream(&mut control, sharer, port_zero).await;
        assert_eq!(
            next_connection(&listener, Duration::from_secs(2)).await,
            None,
            "no dial-back without the ticket granted to the asker"
        );

        let asked = ClientFrame::DialBack { ticket, port };
        let _asked = on_a_data_stream(&mut control, sharer, asked).await;
        let from = next_connection(&listener, Duration::from_secs(5))
            .await
            .expect("the daemon connects back");
        assert_eq!(
            from.ip(),
            std::net::Ipv4Addr::LOCALHOST,
            "to the asker's own address"
        );
        assert_eq!(from.port(), data_port, "from the daemon's data port");
    });

    let (ticket, data_port) = grant;
    // On the data connection itself, a dial-back is a protocol error.
    let asked = ClientFrame::DialBack { ticket, port: 9 };
    runtime.block_on(protocol_error_on_data_connection(sharer, data_port, asked));
    let log = a.log_text();
    assert!(
        log.contains("dial-back asked without a valid ticket"),
        "the forged dial-back is logged: {log}"
    );
}

/// The error frame `stream` carries next, within 5 s.
async fn refusal_on(stream: &mut libp2p::Stream) -> (ErrorCode, String) {
    let read = async {
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).await.expect("a header");
        let header = FrameHeader::parse(header, 0).expect("a valid header");
        let mut body = vec![0u8; header.body_len as usize];
        stream.read_exact(&mut body).await.expect("its body");
        match ServerFrame::decode(header, &body) {
            Ok(ServerFrame::Error { code, message }) => (code, message),
            other => panic!("expected an error frame, got {other:?}"),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer in time")
}

#[test]
fn a_punch_needs_the_askers_ticket_and_a_public_address() {
    let sandbox = Sandbox::new();
    let (_a, dial, sharer, id) = sharing(&sandbox, "punched.bin", MIB + 5);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the asker");
    let grant = runtime.block_on(async {
        let (ticket, data_port, mut control) = granted(sharer, dial, id).await;
        // A public address, never contacted: the ticket is checked first.
        let forged = ClientFrame::Punch {
            ticket: ticket.wrapping_add(1),
            ip: "60.1.0.99".parse().unwrap(),
            port: 4000,
        };
        let mut stream = on_a_data_stream(&mut control, sharer, forged).await;
        let (code, message) = refusal_on(&mut stream).await;
        assert_eq!(code, ErrorCode::Protocol);
        assert!(message.contains("without a valid ticket"), "{message}");

        let private = ClientFrame::Punch {
            ticket,
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 4000,
        };
        let mut stream = on_a_data_stream(&mut control, sharer, private).await;
        let (code, message) = refusal_on(&mut stream).await;
        assert_eq!(code, ErrorCode::Protocol);
        assert!(message.contains("no public address"), "{message}");
        (ticket, data_port)
    });

    // On the data connection itself, a punch is a protocol error.
    let (ticket, data_port) = grant;
    let asked = ClientFrame::Punch {
        ticket,
        ip: "60.1.0.99".parse().unwrap(),
        port: 9,
    };
    runtime.block_on(protocol_error_on_data_connection(sharer, data_port, asked));
}
