//! Writes the seed inputs of every fuzz target into `fuzz/corpus/TARGET/`
//! (`seed-*` files): real encodings made by the project's own encoders, and
//! hand-made hostile cases. Run by hand, never in CI:
//! `cargo test --release -p peershare-fuzz --test seeds -- --ignored`.

use std::fs;
use std::path::Path;

use peershare_core::link::ShareLink;
use peershare_core::wire::control::{
    BrowseRequest, BrowseResponse, SharedFileEntry, TransferRequest, TransferResponse,
};
use peershare_core::wire::data::{ClientFrame, ErrorCode, PieceHeader, ServerFrame};
use peershare_core::wire::message::{
    DeliveredReceipt, Envelope, KeyCard, MessageRequest, MessageResponse,
};
use peershare_core::{FileId, Outboard, PieceSet};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("a corpus folder");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("a seed file");
    // A seed must itself pass its target, or the corpus test would fail on it.
    peershare_fuzz::run(target, bytes).expect("a known target");
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), value).expect("encodes")
}

fn id(text: &str) -> FileId {
    FileId::from(blake3::hash(text.as_bytes()))
}

fn envelope() -> Envelope {
    Envelope {
        to: vec![1; 38],
        from: vec![2; 38],
        id: [3; 16],
        expires_ms: 1_800_000_000_000,
        enc: [4; 32],
        ciphertext: vec![5; 256],
        signature: [6; 64],
    }
}

fn card() -> KeyCard {
    KeyCard {
        peer: vec![7; 38],
        key: [8; 32],
        created_ms: 1_700_000_000_000,
        signature: [9; 64],
    }
}

fn receipt() -> DeliveredReceipt {
    DeliveredReceipt {
        recipient: vec![1; 38],
        ids: vec![[2; 16], [3; 16]],
        signature: [4; 64],
    }
}

fn server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Ready {
            id: id("x"),
            size: 3 << 20,
            piece_len: 1 << 20,
        },
        ServerFrame::Tree {
            first: 0,
            leaves: vec![7; 96],
        },
        ServerFrame::Have {
            first: 0,
            bitmap: vec![0xff, 0x80],
        },
        ServerFrame::HaveMore {
            indices: vec![3, 9],
        },
        ServerFrame::Skipped { index: 2 },
        ServerFrame::Error {
            code: ErrorCode::BadTicket,
            message: "unknown ticket".into(),
        },
    ]
}

#[test]
#[ignore = "writes seed files into fuzz/corpus; run by hand"]
fn write_seeds() {
    // control_frame: one of each libp2p message.
    let entry = |name: &str| SharedFileEntry {
        name: name.into(),
        size: 42,
        id: id(name),
    };
    write(
        "control_frame",
        "browse-request",
        &cbor(&BrowseRequest {
            offset: 0,
            limit: 100,
            words: vec![],
        }),
    );
    write(
        "control_frame",
        "browse-request-words",
        &cbor(&BrowseRequest {
            offset: 5,
            limit: 1000,
            words: vec!["aula".into(), "mp4".into()],
        }),
    );
    write(
        "control_frame",
        "browse-response",
        &cbor(&BrowseResponse {
            files: vec![entry("music/a.mp3"), entry("../../etc/passwd")],
            total: 2,
        }),
    );
    write(
        "control_frame",
        "transfer-request",
        &cbor(&TransferRequest { id: id("x") }),
    );
    for (name, response) in [
        (
            "granted",
            TransferResponse::Granted {
                ticket: 7,
                data_port: 1100,
                size: 5 << 20,
                piece_len: 1 << 20,
                name: "aula 1.mp4".into(),
                swarm: vec!["/ip4/127.0.0.1/tcp/1100/p2p/12D3KooWLxeMFhSVvLMqxg1DwSBMDiMB8uh93yBewqQpY4aytK4w".into()],
                public_ip: Some("60.1.0.11".parse().unwrap()),
            },
        ),
        (
            "rejected",
            TransferResponse::Rejected {
                reason: "no".into(),
            },
        ),
        ("busy", TransferResponse::Busy),
        ("not-found", TransferResponse::NotFound),
    ] {
        write("control_frame", &format!("transfer-{name}"), &cbor(&response));
    }
    for (name, request) in [
        (
            "deliver",
            MessageRequest::Deliver {
                envelope: envelope().encode(),
            },
        ),
        ("key-card", MessageRequest::KeyCard),
        (
            "keep",
            MessageRequest::Keep {
                envelope: envelope().encode(),
            },
        ),
        ("collect", MessageRequest::Collect),
        (
            "delivered",
            MessageRequest::Delivered {
                receipt: receipt().encode(),
            },
        ),
    ] {
        write(
            "control_frame",
            &format!("msg-request-{name}"),
            &cbor(&request),
        );
    }
    for (name, response) in [
        ("accepted", MessageResponse::Accepted { duplicate: false }),
        (
            "refused",
            MessageResponse::Refused {
                reason: "busy".into(),
                retry: true,
            },
        ),
        (
            "card",
            MessageResponse::KeyCard {
                card: card().encode(),
            },
        ),
        (
            "letters",
            MessageResponse::Letters {
                envelopes: vec![serde_bytes_buf(envelope().encode())],
            },
        ),
    ] {
        write(
            "control_frame",
            &format!("msg-response-{name}"),
            &cbor(&response),
        );
    }

    // data_frame: a client stream and a server stream, at each piece length pick.
    let client: Vec<u8> = [
        ClientFrame::Open { ticket: 42 },
        ClientFrame::GetTree,
        ClientFrame::WatchHaves,
        ClientFrame::GetPiece { index: 1 },
        ClientFrame::Cancel { index: 1 },
    ]
    .iter()
    .flat_map(|f| f.encode())
    .collect();
    let mut server: Vec<u8> = server_frames().iter().flat_map(|f| f.encode()).collect();
    server.extend_from_slice(&PieceHeader::encode(0, 16));
    server.extend_from_slice(&[0xab; 16]);
    for pick in 0..6u8 {
        write(
            "data_frame",
            &format!("client-{pick}"),
            &[&[pick][..], &client].concat(),
        );
        write(
            "data_frame",
            &format!("server-{pick}"),
            &[&[pick][..], &server].concat(),
        );
    }

    // outboard: real files of several sizes (mode 1), and their leaves as received (mode 0/2).
    for (name, size, shift) in [
        ("empty", 0usize, 0u8),
        ("one-piece", 700, 0),
        ("three-pieces", 2500, 0),
        ("uneven", 4000, 1),
    ] {
        let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut input = vec![1, shift];
        input.extend_from_slice(&(size as u64).to_be_bytes());
        input.extend_from_slice(&content);
        write("outboard", &format!("file-{name}"), &input);
        let tree = Outboard::hash_bytes(&content, 1024 << shift).expect("hashes");
        let mut leaves = vec![2, 10 + shift];
        leaves.extend_from_slice(&(size as u64).to_be_bytes());
        leaves.extend_from_slice(&tree.leaf_bytes());
        write("outboard", &format!("leaves-{name}"), &leaves);
    }

    // have_map: a bitmap then pieces as they land, for a small and a two-frame map.
    for (name, flags, count) in [("small", 0u8, 11u16), ("larger", 0, 2048)] {
        let mut input = vec![flags];
        input.extend_from_slice(&count.to_be_bytes());
        let mut set = PieceSet::empty(u64::from(count));
        set.insert(0);
        set.insert(9);
        // Only the first bytes of each frame: a 1 MiB seed would make libFuzzer
        // try 1 MiB inputs everywhere (its max_len follows the largest seed).
        for frame in peershare_core::wire::data::have_frames(&set) {
            if let ServerFrame::Have { first, bitmap } = frame {
                let bitmap = bitmap[..bitmap.len().min(16)].to_vec();
                input.extend_from_slice(&ServerFrame::Have { first, bitmap }.encode());
            }
        }
        input.extend_from_slice(
            &ServerFrame::HaveMore {
                indices: vec![3, 10, 11, u64::MAX],
            }
            .encode(),
        );
        write("have_map", name, &input);
    }

    // message: each binary format.
    write("message", "envelope", &envelope().encode());
    write("message", "key-card", &card().encode());
    write("message", "receipt", &receipt().encode());

    // file_name: hostile names from docs (hostile-input notes).
    for (n, name) in [
        "aula 1.mp4",
        "../../evil",
        "..\\..\\evil.exe",
        "/etc/passwd",
        "C:\\Windows\\system32",
        "a..b",
        "a\0b\n\tc",
        "CON",
        "nul.txt",
        "COM\u{b9}.dat",
        "trailing. . .",
        "  leading",
        "e\u{301}t\u{e9}",
        ".hidden",
        "download",
        "a.txt",
    ]
    .iter()
    .enumerate()
    {
        write("file_name", &format!("{n:02}"), name.as_bytes());
    }
    write(
        "file_name",
        "long",
        format!("{}.txt", "a".repeat(300)).as_bytes(),
    );
    write("file_name", "long-multibyte", "é".repeat(200).as_bytes());

    // share_link: links made by to_uri, and near misses.
    let link = ShareLink {
        id: id("aula"),
        name: Some("aula 1 & 2?=#%/ünï.mp4".into()),
        size: Some(1 << 40),
        sources: vec![
            "/ip4/192.168.1.20/tcp/1100/p2p/12D3KooWLxeMFhSVvLMqxg1DwSBMDiMB8uh93yBewqQpY4aytK4w"
                .into(),
        ],
    };
    write("share_link", "full", link.to_uri().as_bytes());
    let bare = ShareLink {
        name: None,
        size: None,
        sources: vec![],
        ..link.clone()
    };
    write("share_link", "bare", bare.to_uri().as_bytes());
    write(
        "share_link",
        "bad-size",
        format!("peershare:b3/{}?size=-1", id("a").to_hex()).as_bytes(),
    );
    write(
        "share_link",
        "upper",
        format!("PeerShare:b3/{}?name=a+b", id("a").to_hex().to_uppercase()).as_bytes(),
    );

    // index_request: one body of each endpoint, and raw query values.
    let file = format!(
        r#"{{"name":"aula 1.mp4","size":1048576,"id":"{}"}}"#,
        id("aula").to_hex()
    );
    let peer = "12D3KooWLxeMFhSVvLMqxg1DwSBMDiMB8uh93yBewqQpY4aytK4w";
    for (name, body) in [
        (
            "credentials",
            r#"{"name":"alice","password":"correct horse"}"#.to_string(),
        ),
        (
            "credentials-cyrillic",
            r#"{"name":"аlісе","password":"x"}"#.to_string(),
        ),
        (
            "publish",
            format!(r#"{{"files":[{file},{file}],"reason":"download"}}"#),
        ),
        (
            "join",
            format!(
                r#"{{"peer_id":"{peer}","addrs":["/ip4/127.0.0.1/tcp/1100"],"public_key":"00","signature":"00","files":[{file}],"message_key":null}}"#
            ),
        ),
        (
            "send-mail",
            format!(r#"{{"letters":[{{"to_peer":"{peer}","envelope":"UFNNMQ=="}}]}}"#),
        ),
        (
            "ack-mail",
            format!(r#"{{"peer_id":"{peer}","ids":[1,2,3]}}"#),
        ),
        ("challenge", format!(r#"{{"peer_id":"{peer}"}}"#)),
        ("file-id", id("x").to_hex()),
        ("ext", ".Mp4".to_string()),
    ] {
        write("index_request", name, body.as_bytes());
    }

    // config: the index's config and the daemon's config.toml.
    write(
        "config",
        "index",
        br#"listen = "127.0.0.1:1099"
data_dir = "/var/lib/peershare"
heartbeat = 30
peer_timeout = 90
admins = ["root"]
tls_cert = "cert.pem"
tls_key = "key.pem"
mail_ttl = 1209600
"#,
    );
    write(
        "config",
        "daemon",
        br#"share = ["music", "/srv/films"]
downloads = "incoming"
listen = ["/ip4/0.0.0.0/tcp/1100"]
policy = "ask"
max_uploads = 4
no_read_receipts = true
index = "http://127.0.0.1:1099"
"#,
    );
    write(
        "config",
        "unknown-key",
        b"colour = \"red\"\n[table]\nx = 1\n",
    );
}

fn serde_bytes_buf(bytes: Vec<u8>) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(bytes)
}
