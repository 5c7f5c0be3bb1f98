//! peershare-fuzz: the fuzz entry points, one function per decoder of bytes
//! that arrive from the network or from disk.
//!
//! Each `pub fn TARGET(data: &[u8])` feeds the bytes to the real project
//! decoder (never a copy of it) and, where it is cheap, checks a property
//! that a bug would break: decode → encode → decode gives the same value, a
//! sanitised name stays inside its folder, a have-map never holds a piece
//! past the end, an outboard that is accepted has the piece count it claims.
//! A broken property panics, which is what the fuzzer reports.
//!
//! The same functions serve `cargo fuzz` (the `fuzz/` project, nightly) and
//! the stable test `tests/corpus.rs`, which replays every committed corpus
//! entry in CI. Every function must accept any bytes and never panic (except
//! on a broken property), hang, or allocate by a length it read from `data`;
//! where a target picks a size from the input (a piece count, say), it bounds
//! it here so the fuzzer tests the decoder and not the machine's memory.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use peershare_core::file_name::{sanitize, unique_path, MAX_NAME_BYTES};
use peershare_core::link::{LinkError, ShareLink, MAX_LINK_LEN, MAX_SOURCES};
use peershare_core::outboard::{VerifyError, MAX_PIECE_LEN};
use peershare_core::piece_set::PieceSet;
use peershare_core::wire::control::{
    BrowseRequest, BrowseResponse, TransferRequest, TransferResponse, MAX_CONTROL_MESSAGE,
};
use peershare_core::wire::data::{
    have_frames, ClientFrame, FrameHeader, PieceHeader, ServerFrame, HEADER_LEN, MAX_ERROR_MESSAGE,
};
use peershare_core::wire::message::{
    padded_len, DeliveredReceipt, Envelope, KeyCard, MessageRequest, MessageResponse, MAX_ENVELOPE,
    MAX_MESSAGE_RESPONSE, SIGNATURE_LEN,
};
use peershare_core::{FileId, Outboard, PieceLayout, DEFAULT_PIECE_LEN};
use serde::de::DeserializeOwned;
use serde::Serialize;

mod config;

pub use config::config;

/// The names of every target, as `fuzz/fuzz_targets/` and `fuzz/corpus/` spell them.
pub const TARGETS: &[&str] = &[
    "control_frame",
    "data_frame",
    "outboard",
    "have_map",
    "message",
    "file_name",
    "share_link",
    "index_request",
    "config",
];

/// Runs target `name` on `data`; `None` when no target has that name.
pub fn run(name: &str, data: &[u8]) -> Option<()> {
    let target: fn(&[u8]) = match name {
        "control_frame" => control_frame,
        "data_frame" => data_frame,
        "outboard" => outboard,
        "have_map" => have_map,
        "message" => message,
        "file_name" => file_name,
        "share_link" => share_link,
        "index_request" => index_request,
        "config" => config,
        _ => return None,
    };
    target(data);
    Some(())
}

// ---------------------------------------------------------------- control

// The request caps the node's codecs set (crates/node/src/net/host.rs); the
// response caps are the core constants it uses.
const BROWSE_REQUEST_MAX: u64 = 4096;
const TRANSFER_REQUEST_MAX: u64 = 4096;
const TRANSFER_RESPONSE_MAX: u64 = 64 * 1024;
const MESSAGE_REQUEST_MAX: u64 = MAX_ENVELOPE as u64 + 1024;

/// The libp2p request/response messages (browse, transfer, messages), decoded
/// with the CBOR library and size caps of the node's codec, as every one of
/// the six types; what decodes must survive encode → decode unchanged, and
/// the untrusted parts inside (names, envelopes, cards) go on to their own decoders.
pub fn control_frame(data: &[u8]) {
    if let Some(request) = cbor_round_trip::<BrowseRequest>(data, BROWSE_REQUEST_MAX) {
        for word in &request.words {
            file_name(word.as_bytes());
        }
    }
    if let Some(page) = cbor_round_trip::<BrowseResponse>(data, MAX_CONTROL_MESSAGE) {
        for entry in &page.files {
            file_name(entry.name.as_bytes());
        }
    }
    cbor_round_trip::<TransferRequest>(data, TRANSFER_REQUEST_MAX);
    if let Some(TransferResponse::Granted {
        size,
        piece_len,
        name,
        ..
    }) = cbor_round_trip::<TransferResponse>(data, TRANSFER_RESPONSE_MAX)
    {
        file_name(name.as_bytes());
        // The downloader cuts the file by the grant's numbers: any pair must
        // give a layout or an error, and a layout's count must be consistent.
        if let Ok(layout) = PieceLayout::new(size, piece_len) {
            assert!(layout.piece_count() >= 1);
            assert!(layout.piece_count() <= size / layout.piece_len() + 1);
        }
    }
    match cbor_round_trip::<MessageRequest>(data, MESSAGE_REQUEST_MAX) {
        Some(MessageRequest::Deliver { envelope } | MessageRequest::Keep { envelope }) => {
            message(&envelope)
        }
        Some(MessageRequest::Delivered { receipt }) => message(&receipt),
        _ => {}
    }
    match cbor_round_trip::<MessageResponse>(data, MAX_MESSAGE_RESPONSE as u64) {
        Some(MessageResponse::KeyCard { card }) => message(&card),
        Some(MessageResponse::Letters { envelopes }) => {
            envelopes.iter().for_each(|e| message(e));
        }
        _ => {}
    }
}

/// Decodes `data` as libp2p's CBOR codec would (only the first `limit` bytes
/// are ever read), and checks that the value survives encode → decode.
fn cbor_round_trip<T>(data: &[u8], limit: u64) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let data = &data[..data.len().min(limit as usize)];
    let value: T = cbor4ii::serde::from_slice(data).ok()?;
    let bytes = cbor4ii::serde::to_vec(Vec::new(), &value).expect("a decoded value encodes");
    let again: T = cbor4ii::serde::from_slice(&bytes).expect("an encoded value decodes");
    assert_eq!(
        again, value,
        "CBOR decode → encode → decode changed the value"
    );
    Some(value)
}

// ---------------------------------------------------------------- data channel

/// Piece lengths a peer may claim in its Ready frame, legal and not.
const PIECE_LENS: [u64; 6] = [
    0,
    1024,
    64 * 1024,
    DEFAULT_PIECE_LEN,
    MAX_PIECE_LEN,
    u64::MAX,
];

/// Calls `each(raw_header, header, body)` for every whole frame at the start
/// of `bytes`, as a reader that closes the connection at the first bad
/// header (or at the end of the bytes) would see them.
fn for_each_frame(bytes: &[u8], piece_len: u64, mut each: impl FnMut(&[u8], FrameHeader, &[u8])) {
    let mut rest = bytes;
    while rest.len() >= HEADER_LEN {
        let raw: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().expect("length checked");
        let Ok(header) = FrameHeader::parse(raw, piece_len) else {
            return;
        };
        let Some(body) = rest[HEADER_LEN..].get(..header.body_len as usize) else {
            return;
        };
        each(&raw, header, body);
        rest = &rest[HEADER_LEN + body.len()..];
    }
}

/// Frames of the bulk data connection, both directions: the first byte picks
/// a piece length, the rest is a stream of frames. Every frame that decodes
/// must encode back to the same bytes (an error frame: to a prefix of its text).
pub fn data_frame(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let piece_len = PIECE_LENS[pick as usize % PIECE_LENS.len()];
    for_each_frame(stream, piece_len, |raw, header, body| {
        assert_eq!(header.body_len as usize, body.len());
        if header.is_piece() {
            let index = PieceHeader::index(body[..8].try_into().expect("piece body has an index"));
            let encoded = PieceHeader::encode(index, body.len() - 8);
            assert_eq!(
                &encoded[..HEADER_LEN],
                raw,
                "piece header re-encodes differently"
            );
            assert!(body.len() as u64 - 8 <= piece_len.min(MAX_PIECE_LEN));
        }
        if let Ok(frame) = ClientFrame::decode(header, body) {
            let bytes = frame.encode();
            assert_eq!(&bytes[..HEADER_LEN], raw, "client frame header changed");
            assert_eq!(&bytes[HEADER_LEN..], body, "client frame body changed");
        }
        if let Ok(frame) = ServerFrame::decode(header, body) {
            let bytes = frame.encode();
            let again = reparse_server(&bytes, piece_len);
            match (&frame, &again) {
                (
                    ServerFrame::Error { code, message },
                    ServerFrame::Error {
                        code: code2,
                        message: message2,
                    },
                ) => {
                    assert_eq!(code, code2);
                    assert!(message.starts_with(message2.as_str()));
                    assert!(message2.len() <= MAX_ERROR_MESSAGE);
                }
                _ => {
                    assert_eq!(&again, &frame, "server frame changed on re-decoding");
                    assert_eq!(&bytes[..HEADER_LEN], raw, "server frame header changed");
                    assert_eq!(&bytes[HEADER_LEN..], body, "server frame body changed");
                }
            }
        }
    });
}

/// Parses one whole server frame that this side just encoded.
fn reparse_server(bytes: &[u8], piece_len: u64) -> ServerFrame {
    let raw = bytes[..HEADER_LEN]
        .try_into()
        .expect("a frame has a header");
    let header = FrameHeader::parse(raw, piece_len).expect("an encoded frame's header parses");
    assert_eq!(header.body_len as usize, bytes.len() - HEADER_LEN);
    ServerFrame::decode(header, &bytes[HEADER_LEN..]).expect("an encoded frame decodes")
}

// ---------------------------------------------------------------- outboard

/// The outboard (piece hashes) a source sends or the hash cache stores.
///
/// Bytes: `mode`, `shift`, `file_len` (8, big-endian), then the payload.
/// Mode bit 0 clear: the payload is leaf bytes checked against a layout of
/// any `file_len` and a piece length from `shift` (not always a power of
/// two), expecting either the first leaf (bit 1) or the payload's hash as
/// the id; what is accepted must have exactly the stated piece count, and a
/// piece (the payload again) at any index is checked without panicking.
/// Mode bit 0 set: the payload is a file; its outboard must rebuild from its
/// own leaf bytes, every piece must verify, and a changed piece or leaf must not.
pub fn outboard(data: &[u8]) {
    if data.len() < 10 {
        return;
    }
    let (mode, shift) = (data[0], data[1]);
    let file_len = u64::from_be_bytes(data[2..10].try_into().expect("8 bytes"));
    let payload = &data[10..];
    if mode & 1 == 0 {
        let piece_len = match shift {
            0..64 => 1u64 << shift,
            other => u64::from(other) * 1000,
        };
        let Ok(layout) = PieceLayout::new(file_len, piece_len) else {
            return;
        };
        let expected = match payload.get(..32) {
            Some(first) if mode & 2 != 0 => FileId::from_bytes(first.try_into().expect("32")),
            _ => FileId::from(blake3_of(payload)),
        };
        if let Ok(tree) = Outboard::from_leaf_bytes(layout, payload, &expected) {
            assert_eq!(tree.layout().piece_count() * 32, payload.len() as u64);
            assert_eq!(tree.leaf_bytes(), payload);
            assert_eq!(tree.id(), expected);
            let index = u64::from(mode >> 2);
            let _ = tree.verify_piece(index, payload);
            let _ = tree.verify_piece(file_len, payload);
            assert!(tree.verify_piece(u64::MAX, payload).is_err());
        }
        return;
    }
    let piece_len = 1024u64 << (shift % 15);
    let tree = Outboard::hash_bytes(payload, piece_len).expect("a legal piece length");
    assert_eq!(
        tree.id(),
        FileId::from(blake3_of(payload)),
        "the id is not b3sum"
    );
    let leaves = tree.leaf_bytes();
    let rebuilt = Outboard::from_leaf_bytes(tree.layout(), &leaves, &tree.id())
        .expect("an outboard rebuilds from its own leaves");
    assert_eq!(rebuilt, tree);
    let layout = tree.layout();
    for index in 0..layout.piece_count() {
        let range = layout.piece_range(index);
        let piece = &payload[range.start as usize..range.end as usize];
        tree.verify_piece(index, piece)
            .expect("a true piece verifies");
    }
    if !payload.is_empty() {
        let at = (file_len % payload.len() as u64) as usize;
        let mut bad = payload.to_vec();
        bad[at] ^= 1 << (shift % 8);
        let index = at as u64 / piece_len;
        let range = layout.piece_range(index);
        assert_eq!(
            tree.verify_piece(index, &bad[range.start as usize..range.end as usize]),
            Err(VerifyError::PieceMismatch(index)),
            "a changed piece verified"
        );
    }
    let mut bad_leaves = leaves.clone();
    let at = (file_len % leaves.len() as u64) as usize;
    bad_leaves[at] ^= 0x80;
    assert!(
        Outboard::from_leaf_bytes(tree.layout(), &bad_leaves, &tree.id()).is_err(),
        "a changed leaf was accepted"
    );
}

fn blake3_of(bytes: &[u8]) -> blake3::Hash {
    blake3::hash(bytes)
}

// ---------------------------------------------------------------- have maps

/// The have frames a source sends (a bitmap, then indices as pieces land),
/// merged into a set as the downloader does. Bytes: `flags` (unused), a
/// piece count (2 bytes, at least 1), then a stream of data frames. The set must never hold a
/// piece past its count, its held count must match its bits, and its own
/// have frames must rebuild it exactly.
pub fn have_map(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    // A layout always has at least one piece (an empty file has one empty
    // piece), and have_frames of a zero-piece set would be an 8-byte Have
    // frame the decoder refuses, so the count starts at 1 as the node's does.
    // Up to 64 Ki pieces (64 GiB at the default piece length). A map past
    // 8 Mi pieces would span two have frames, but one such run takes
    // milliseconds (1 MiB bitmaps copied five times) and the fuzzer favours
    // it, so the rate fell to a few hundred runs a second; the split is left
    // to the unit tests.
    let count = u64::from(u16::from_be_bytes([data[1], data[2]])).max(1);
    let mut set = PieceSet::empty(count);
    for_each_frame(
        &data[3..],
        DEFAULT_PIECE_LEN,
        |_, header, body| match ServerFrame::decode(header, body) {
            Ok(ServerFrame::Have { first, bitmap }) => set.merge_bitmap(first, &bitmap),
            Ok(ServerFrame::HaveMore { indices }) => {
                for index in indices {
                    let was = set.contains(index);
                    assert_eq!(set.insert(index), !was && index < count);
                    assert_eq!(set.contains(index), index < count);
                }
            }
            _ => {}
        },
    );
    assert_eq!(set.count(), count);
    assert_eq!(set.bitmap_len() as u64, count.div_ceil(8));
    let bits = set.bitmap(0, set.bitmap_len());
    assert_eq!(bits.len(), set.bitmap_len());
    let ones: u64 = bits.iter().map(|b| u64::from(b.count_ones())).sum();
    assert_eq!(set.held(), ones, "held count does not match the bits");
    assert!(set.held() <= count);
    if count % 8 != 0 {
        let tail = 0xffu8 >> (count % 8);
        assert_eq!(
            bits[bits.len() - 1] & tail,
            0,
            "a bit past the last piece is set"
        );
    }
    assert!(!set.contains(count) && !set.contains(u64::MAX));
    let mut rebuilt = PieceSet::empty(count);
    for frame in have_frames(&set) {
        let again = reparse_server(&frame.encode(), DEFAULT_PIECE_LEN);
        assert_eq!(again, frame);
        let ServerFrame::Have { first, bitmap } = frame else {
            panic!("have_frames gave {frame:?}");
        };
        rebuilt.merge_bitmap(first, &bitmap);
    }
    assert_eq!(rebuilt, set, "the set's own have frames do not rebuild it");
}

// ---------------------------------------------------------------- messages

/// The binary formats of person-to-person messages (envelope, key card,
/// delivered receipt): what decodes must encode back to exactly the same
/// bytes, since signatures cover those bytes.
pub fn message(data: &[u8]) {
    if let Ok(envelope) = Envelope::decode(data) {
        assert!(data.len() <= MAX_ENVELOPE);
        assert_eq!(envelope.encode(), data, "envelope re-encodes differently");
        assert_eq!(envelope.signed_bytes().len() + SIGNATURE_LEN, data.len());
    }
    if let Ok(card) = KeyCard::decode(data) {
        assert_eq!(card.encode(), data, "key card re-encodes differently");
    }
    if let Ok(receipt) = DeliveredReceipt::decode(data) {
        assert_eq!(receipt.encode(), data, "receipt re-encodes differently");
    }
    if let Some(padded) = padded_len(data.len()) {
        assert!(padded >= data.len());
    }
}

// ---------------------------------------------------------------- file names

/// The folder `unique_path` is tried in: made once per process, holding a
/// few names the sanitiser produces so that the " (n)" path is taken too.
fn names_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("peershare-fuzz-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder for unique_path");
        let long = format!("{}.txt", "a".repeat(MAX_NAME_BYTES - 4));
        for taken in [
            "download",
            "download (1)",
            "a",
            "a.txt",
            "a (1).txt",
            ".hidden",
            &long,
        ] {
            std::fs::write(dir.join(taken), b"").expect("a taken name");
        }
        dir
    })
}

/// A file name from the network (a browse entry, a grant, a link): the
/// sanitised name must be a single safe component, and `unique_path` must
/// give a new path directly inside the folder.
pub fn file_name(data: &[u8]) {
    let untrusted = String::from_utf8_lossy(data);
    let name = sanitize(&untrusted);
    assert!(!name.is_empty(), "empty name from {untrusted:?}");
    assert!(name != "." && name != "..", "{name:?} from {untrusted:?}");
    assert!(
        !name.contains(['/', '\\', '\0']),
        "separator or NUL in {name:?} from {untrusted:?}"
    );
    assert!(
        !name.chars().any(char::is_control),
        "control character in {name:?}"
    );
    assert!(
        name.len() <= MAX_NAME_BYTES,
        "{} bytes from {untrusted:?}",
        name.len()
    );
    assert!(
        !name.ends_with(['.', ' ']),
        "trailing dot or space in {name:?} from {untrusted:?}"
    );
    assert_eq!(
        sanitize(&name),
        name,
        "sanitising {untrusted:?} twice differs"
    );
    let dir = names_dir();
    let path = unique_path(dir, &name);
    assert_eq!(
        path.parent(),
        Some(dir),
        "{path:?} is not directly in {dir:?}"
    );
    let leaf = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 leaf");
    assert!(leaf.len() <= MAX_NAME_BYTES && !leaf.contains(['/', '\\', '\0']));
    assert!(!path.exists(), "{path:?} exists: it would be overwritten");
    if !dir.join(&name).exists() {
        assert_eq!(path, dir.join(&name));
    }
}

// ---------------------------------------------------------------- share links

/// `peershare:` share links: what parses keeps its bounds and survives
/// `to_uri` → parse unchanged (or, when percent-encoding made it longer
/// than [`MAX_LINK_LEN`], is refused only for its length).
pub fn share_link(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(link) = ShareLink::from_str(&text) else {
        return;
    };
    assert!(link.sources.len() <= MAX_SOURCES);
    if let Some(name) = &link.name {
        file_name(name.as_bytes());
    }
    let uri = link.to_uri();
    if uri.len() > MAX_LINK_LEN {
        // Percent-encoding can grow a link that was just under the limit
        // past it (raw non-ASCII in the query is written as %XX); such a
        // link is refused for its length, and only for that.
        assert_eq!(ShareLink::from_str(&uri), Err(LinkError::TooLong));
        return;
    }
    let again = ShareLink::from_str(&uri)
        .unwrap_or_else(|e| panic!("{uri:?} (from {text:?}) does not parse: {e}"));
    assert_eq!(again, link, "link changed through {uri:?}");
}

// ---------------------------------------------------------------- index API

/// The JSON request bodies of the index API, each deserialised as the
/// handlers' extractor does and then checked by the index's own rules
/// (`validate`, `files::check_files`); also the raw text through every
/// text check, as query strings and paths reach them.
pub fn index_request(data: &[u8]) {
    use peershare_index::accounts::Credentials;
    use peershare_index::files::{check_files, PublishRequest};
    use peershare_index::mail::{AckMail, SendMail};
    use peershare_index::peers::{ChallengeRequest, JoinRequest};
    use peershare_index::validate;

    if let Ok(body) = serde_json::from_slice::<Credentials>(data) {
        if let Ok(name) = validate::user_name(&body.name) {
            let chars = name.chars().count();
            assert!((1..=validate::MAX_USER_NAME_CHARS).contains(&chars));
            assert!(!name.chars().any(char::is_control));
            let _ = validate::user_name_skeleton(&name);
        }
        let _ = validate::password(&body.password);
        assert!(validate::truncated(&body.name).chars().count() <= 80);
    }
    if let Ok(body) = serde_json::from_slice::<PublishRequest>(data) {
        check_file_list(&body.files, check_files(&body.files));
    }
    if let Ok(body) = serde_json::from_slice::<JoinRequest>(data) {
        let _ = validate::peer_id(&body.peer_id);
        check_file_list(&body.files, check_files(&body.files));
    }
    if let Ok(body) = serde_json::from_slice::<SendMail>(data) {
        for letter in &body.letters {
            let _ = validate::peer_id(&letter.to_peer);
        }
    }
    if let Ok(body) = serde_json::from_slice::<AckMail>(data) {
        let _ = validate::peer_id(&body.peer_id);
    }
    if let Ok(body) = serde_json::from_slice::<ChallengeRequest>(data) {
        if let Ok(peer) = validate::peer_id(&body.peer_id) {
            assert_eq!(validate::peer_id(&peer.to_string()).ok(), Some(peer));
        }
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = validate::file_id(&text) {
        assert_eq!(validate::file_id(&id).ok(), Some(id.clone()));
    }
    if let Ok(ext) = validate::extension_filter(&text) {
        assert_eq!(validate::extension_filter(&ext).ok(), Some(ext.clone()));
    }
    if let Ok(name) = validate::file_name(&text) {
        let ext = validate::extension_of(name);
        assert!(ext.chars().count() <= validate::MAX_EXT_CHARS);
    }
    let _ = validate::user_name_key(&text);
}

/// A file list that `check_files` accepted holds only rows that obey the rules.
fn check_file_list(
    files: &[peershare_index::files::FileInput],
    checked: Result<Vec<peershare_index::store::FileRow>, peershare_index::ApiError>,
) {
    let Ok(rows) = checked else {
        return;
    };
    assert!(rows.len() <= files.len());
    for row in rows {
        assert!(!row.name.is_empty() && row.name.len() <= 1024);
        assert!(row.size >= 0);
        assert_eq!(row.file_id.len(), 64);
    }
}
