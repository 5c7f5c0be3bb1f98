//! Hostile DHT providers: peers that announce a word and then answer
//! browse with junk, with a page longer than asked for, with an endless
//! share, with names that do not hold the word, or never at all. A search
//! by that word still answers in time with the one honest file, counts the
//! five as skipped, and the file still downloads.
//!
//! The hostile peers are small libp2p swarms inside this test, speaking the
//! real protocols (`/peershare/kad/1`, `/peershare/browse/1`) badly.

mod support;

use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore, RecordKey};
use libp2p::request_response::{self, cbor, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, Multiaddr, PeerId, StreamProtocol};
use peershare_core::wire::control::{
    BrowseRequest, BrowseResponse, SharedFileEntry, BROWSE_PROTOCOL, MAX_BROWSE_PAGE,
};
use peershare_core::words::word_key;
use peershare_core::FileId;
use peershare_node::net::host::IDENTIFY_VERSION;
use peershare_node::net::kademlia::KAD_PROTOCOL;
use serde::{Deserialize, Serialize};
use support::{s, same_bytes, test_swarm, wait_until, write_random, Daemon, Sandbox, WAIT};

/// How a hostile peer answers a browse.
#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    /// A CBOR text string where a page belongs.
    Junk,
    /// One entry more than a page may carry.
    OversizedPage,
    /// One entry per page and a total that never ends.
    EndlessShare,
    /// A valid page whose names lack the word it announced.
    WrongNames,
    /// Never answers (the request is held open).
    Silent,
}

/// What a hostile peer sends back: a page, or anything else.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Answer {
    Page(BrowseResponse),
    Junk(String),
}

#[derive(NetworkBehaviour)]
struct HostileBehaviour {
    identify: identify::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    browse: cbor::Behaviour<BrowseRequest, Answer>,
}

fn entry(name: String, seed: u64) -> SharedFileEntry {
    SharedFileEntry {
        name,
        size: 1000 + seed,
        id: FileId::from(blake3::hash(&seed.to_le_bytes())),
    }
}

fn answer(how: Misbehaviour, request: &BrowseRequest) -> Answer {
    match how {
        Misbehaviour::Junk => Answer::Junk("\u{0}this is not a page".into()),
        Misbehaviour::OversizedPage => Answer::Page(BrowseResponse {
            files: (0..=MAX_BROWSE_PAGE as u64)
                .map(|n| entry(format!("aula fake {n}.mp4"), n))
                .collect(),
            total: MAX_BROWSE_PAGE as u64 + 1,
        }),
        Misbehaviour::EndlessShare => Answer::Page(BrowseResponse {
            files: vec![entry(
                format!("endless {}.bin", request.offset),
                request.offset,
            )],
            total: u64::MAX,
        }),
        Misbehaviour::WrongNames => Answer::Page(BrowseResponse {
            files: vec![entry("nothing to see.txt".into(), 7)],
            total: 1,
        }),
        Misbehaviour::Silent => unreachable!("a silent peer never answers"),
    }
}

/// Runs a hostile peer that joins the DHT through `entry_peer`, announces
/// itself as a provider of `word` and answers browse as `how` says.
async fn hostile_peer(how: Misbehaviour, entry_peer: PeerId, entry_addr: Multiaddr, word: &str) {
    let mut swarm = test_swarm(libp2p::identity::Keypair::generate_ed25519(), |key| {
        let peer_id = key.public().to_peer_id();
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            MemoryStore::new(peer_id),
            kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
        );
        kad.set_mode(Some(kad::Mode::Server));
        HostileBehaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_VERSION.into(),
                key.public(),
            )),
            kad,
            browse: cbor::Behaviour::new(
                [(StreamProtocol::new(BROWSE_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(600)),
            ),
        }
    });
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("listen address"))
        .expect("listen");
    swarm
        .behaviour_mut()
        .kad
        .add_address(&entry_peer, entry_addr);
    swarm
        .behaviour_mut()
        .kad
        .start_providing(RecordKey::new(&word_key(word)))
        .expect("provide");
    let mut held = Vec::new();
    loop {
        if let SwarmEvent::Behaviour(HostileBehaviourEvent::Browse(
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            },
        )) = swarm.select_next_some().await
        {
            match how {
                Misbehaviour::Silent => held.push(channel),
                _ => {
                    let _ = swarm
                        .behaviour_mut()
                        .browse
                        .send_response(channel, answer(how, &request));
                }
            }
        }
    }
}

#[test]
fn hostile_providers_are_skipped_and_search_still_answers() {
    let sandbox = Sandbox::new();
    let lecture = sandbox.share_dir("b").join("aula 1.mp4");
    write_random(&lecture, 300_000);
    let dht = ["--no-index", "--provider-ttl", "600"];
    let a = Daemon::start(&sandbox, "a", &dht);
    let first = a.addr();
    let mut joined = dht.to_vec();
    joined.extend(["--bootstrap", first.as_str()]);
    let b = Daemon::start(&sandbox, "b", &joined);
    let c = Daemon::start(&sandbox, "c", &joined);
    b.wait_shared(1);

    let (a_dial, a_peer) = first.rsplit_once("/p2p/").expect("a full address");
    let a_peer: PeerId = a_peer.parse().expect("a's peer id");
    let a_dial: Multiaddr = a_dial.parse().expect("a's address");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the hostile peers");
    let hostile = [
        Misbehaviour::Junk,
        Misbehaviour::OversizedPage,
        Misbehaviour::EndlessShare,
        Misbehaviour::WrongNames,
        Misbehaviour::Silent,
    ];
    for how in hostile {
        runtime.spawn(hostile_peer(how, a_peer, a_dial.clone(), "aula"));
    }

    // Once every provider is known, the search names one file from one holder.
    let search = wait_until("c to see all six providers of \"aula\"", WAIT, || {
        let v = c.cli_ok(&["search", "aula"]);
        (v["origins"]["dht"]["stats"]["providers"] == 6).then_some(v)
    });
    let results = search["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "only the honest file: {search}");
    assert_eq!(results[0]["names"][0], "aula 1.mp4");
    assert_eq!(s(&results[0]["sources"][0], "peer_id"), b.peer_id());
    // Answered at all means the silent peer was not waited for past the deadline.
    assert_eq!(search["origins"]["dht"]["ok"], true, "{search}");
    let stats = &search["origins"]["dht"]["stats"];
    assert_eq!(stats["answered"], 1, "{search}");
    assert_eq!(stats["skipped"], hostile.len(), "{search}");
    // The silent provider costs the search its provider timeout (1.5 s), not more:
    // a person waits for this answer. The bound leaves room for a loaded machine.
    let ms = stats["ms"].as_u64().expect("ms");
    assert!(ms < 4_000, "the DHT part took {ms} ms: {search}");
    let log = c.log_text();
    assert!(
        log.contains("answered a browse with 1001 entries"),
        "the oversized page is logged"
    );
    assert!(
        log.contains("sent an answer that is not valid"),
        "the junk is logged"
    );
    assert!(log.contains("skipping a DHT provider"), "skips are logged");

    // The searcher still works, and the honest file still downloads.
    let got = c.cli_ok(&["get", "aula 1.mp4"]);
    assert_eq!(got["state"], "done", "{got}");
    assert!(same_bytes(&lecture, &c.downloads.join("aula 1.mp4")));
    drop(runtime);
}
