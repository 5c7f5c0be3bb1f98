//! A hostile peer speaking `/peershare/msg/1` to a real daemon: junk, an
//! envelope for someone else, a tampered ciphertext, an envelope re-signed
//! by a forger, replays and a flood. Each is refused with a reason (or
//! taken as a duplicate), nothing is stored twice, and the daemon keeps
//! answering: the one honest letter shows up exactly once.
//!
//! The hostile peer is a small libp2p swarm inside this test that seals its
//! letters with the node crate's own sealing code (an honest stranger's
//! letter has to open).

mod support;

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, cbor, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use peershare_core::wire::message::{
    MessageRequest, MessageResponse, ENVELOPE_DOMAIN, MESSAGE_PROTOCOL,
};
use peershare_node::messaging::keys::{self, verify_card, MessageKeys};
use peershare_node::messaging::seal::{self, Letter, LetterBody};
use support::{s, test_swarm, Daemon, Sandbox};

type Client = Swarm<cbor::Behaviour<MessageRequest, MessageResponse>>;

fn client(identity: Keypair) -> Client {
    test_swarm(identity, |_| {
        cbor::Behaviour::new(
            [(StreamProtocol::new(MESSAGE_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        )
    })
}

/// Sends one request and waits for its answer.
async fn ask(
    swarm: &mut Client,
    peer: PeerId,
    addr: &Multiaddr,
    request: MessageRequest,
) -> MessageResponse {
    let id = swarm
        .behaviour_mut()
        .send_request_with_addresses(&peer, request, vec![addr.clone()]);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => return response,
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) if request_id == id => panic!("the request failed: {error}"),
            _ => {}
        }
    }
}

fn text(text: &str) -> Letter {
    Letter {
        sent_at: 1_800_000_000_000,
        seq: 1,
        from_user: Some("mallory".into()),
        card: None,
        body: LetterBody::Text { text: text.into() },
    }
}

fn refusal(answer: &MessageResponse) -> (String, bool) {
    match answer {
        MessageResponse::Refused { reason, retry } => (reason.clone(), *retry),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn hostile_letters_are_refused_and_the_daemon_keeps_its_word() {
    let sandbox = Sandbox::new();
    let d = Daemon::start(&sandbox, "d", &[]);
    let full: Multiaddr = d.addr().parse().expect("an address");
    let target: PeerId = d.peer_id().parse().expect("a peer id");
    let mut dial = full.clone();
    dial.pop();

    let identity = Keypair::generate_ed25519();
    let me = identity.public().to_peer_id();
    let mine = MessageKeys::generate(identity.clone());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    let expires = (now + Duration::from_secs(3600)).as_millis() as u64;

    runtime.block_on(async {
        let mut swarm = client(identity);
        let MessageResponse::KeyCard { card } =
            ask(&mut swarm, target, &dial, MessageRequest::KeyCard).await
        else {
            panic!("no key card");
        };
        let card = verify_card(&card, Some(&target)).expect("the daemon's card verifies");

        // An honest stranger's letter is taken once; its replays are duplicates.
        let honest = seal::seal(
            &mine,
            &card,
            [1; 16],
            expires,
            &text("hello from a stranger"),
        )
        .expect("sealed")
        .encode();
        let deliver = |envelope: &Vec<u8>| MessageRequest::Deliver {
            envelope: envelope.clone(),
        };
        assert_eq!(
            ask(&mut swarm, target, &dial, deliver(&honest)).await,
            MessageResponse::Accepted { duplicate: false }
        );
        assert_eq!(
            ask(&mut swarm, target, &dial, deliver(&honest)).await,
            MessageResponse::Accepted { duplicate: true }
        );

        // Junk, and an envelope sealed for someone else.
        let (why, retry) =
            refusal(&ask(&mut swarm, target, &dial, deliver(&b"junk".to_vec())).await);
        assert!(why.contains("not an envelope") && !retry, "{why}");
        let other = MessageKeys::generate(Keypair::generate_ed25519());
        let other_card = verify_card(&other.card().encode(), None).unwrap();
        let misaddressed = seal::seal(&mine, &other_card, [2; 16], expires, &text("not yours"))
            .unwrap()
            .encode();
        let (why, _) = refusal(&ask(&mut swarm, target, &dial, deliver(&misaddressed)).await);
        assert!(why.contains("another peer"), "{why}");

        // One flipped ciphertext byte: the signature no longer verifies.
        let mut tampered = seal::seal(&mine, &card, [3; 16], expires, &text("pay me 10"))
            .unwrap()
            .encode();
        let at = tampered.len() - 100;
        tampered[at] ^= 1;
        let (why, retry) = refusal(&ask(&mut swarm, target, &dial, deliver(&tampered)).await);
        assert!(why.contains("signature") && !retry, "{why}");

        // Someone else's envelope re-signed by a forger as their own does not open.
        let victim = MessageKeys::generate(Keypair::generate_ed25519());
        let mut stolen =
            seal::seal(&victim, &card, [4; 16], expires, &text("from the victim")).unwrap();
        stolen.from = me.to_bytes();
        stolen.signature =
            keys::sign(mine.identity(), ENVELOPE_DOMAIN, &stolen.signed_bytes()).unwrap();
        let (why, _) = refusal(&ask(&mut swarm, target, &dial, deliver(&stolen.encode())).await);
        assert!(why.contains("cannot be opened"), "{why}");

        // A flood of replays: the daemon slows this peer down instead of storing anything.
        let mut slowed = 0;
        for _ in 0..130 {
            if let MessageResponse::Refused {
                retry: true,
                reason,
            } = ask(&mut swarm, target, &dial, deliver(&honest)).await
            {
                assert!(reason.contains("slow down"), "{reason}");
                slowed += 1;
            }
        }
        assert!(slowed > 0, "a flood was never slowed down");
    });

    // Exactly one letter from the stranger, marked unverified; the daemon still answers.
    let chats = d.cli_ok(&["chats"]);
    let chats = chats.as_array().expect("chats");
    assert_eq!(chats.len(), 1, "{chats:?}");
    assert_eq!(s(&chats[0], "chat"), me.to_string());
    assert_eq!(chats[0]["messages"], 1);
    let got = d.cli_ok(&["chat", &me.to_string()]);
    assert_eq!(got[0]["text"], "hello from a stranger");
    assert_eq!(got[0]["verified"], false);
    assert!(s(&got[0], "note").contains("mallory"), "{got}");
}
