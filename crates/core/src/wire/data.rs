//! Frames of the bulk data connection (TLS over TCP, both ends authenticated
//! by their libp2p keys), or of a data stream over the libp2p connection
//! when no direct data connection can be made (the same frames).
//!
//! Every frame is `length: u32 big-endian` (of what follows), `kind: u8`,
//! then the body. The client opens with [`ClientFrame::Open`] carrying the
//! ticket from a granted transfer request, then asks for the tree and for
//! pieces, as many as it likes in flight; the server answers in order.
//! On a data stream, the client may instead send one
//! [`ClientFrame::DialBack`]: the server then opens the data connection
//! itself, from its data port, so that both ends' routers see outgoing
//! packets and let the connection through; or [`ClientFrame::Punch`], when
//! a router that changes ports stands between them: both then open many
//! connections at once until one pair meets.
//! Lengths are checked against per-kind limits before any body is read, so a
//! hostile peer cannot make the other side allocate more than one piece.

use crate::outboard::{LEAF_LEN, MAX_PIECE_LEN};
use crate::FileId;

/// ALPN name of the data protocol, checked during the TLS handshake.
pub const DATA_ALPN: &[u8] = b"/peershare/data/1";
/// The libp2p protocol name of a data stream carried by the libp2p connection.
pub const DATA_STREAM_PROTOCOL: &str = "/peershare/data/1";
/// Bytes before a frame's body: length (4) and kind (1).
pub const HEADER_LEN: usize = 5;
/// The most leaf hashes in one tree frame (1 MiB of hashes).
pub const MAX_LEAVES_PER_FRAME: usize = 32 * 1024;
/// The longest error message carried, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 1024;
/// The largest body any frame may have: a whole piece plus its index.
pub const MAX_BODY: u32 = MAX_PIECE_LEN as u32 + 8;
/// The most bitmap bytes in one have frame (8 Mi pieces).
pub const MAX_HAVE_BITMAP: usize = 1 << 20;
/// The most piece indices in one have-more frame.
pub const MAX_HAVE_MORE: usize = 4096;

const OPEN: u8 = 0x01;
const GET_TREE: u8 = 0x02;
const GET_PIECE: u8 = 0x03;
const WATCH_HAVES: u8 = 0x04;
const CANCEL: u8 = 0x05;
const DIAL_BACK: u8 = 0x06;
const PUNCH: u8 = 0x07;
const READY: u8 = 0x81;
const TREE: u8 = 0x82;
const PIECE: u8 = 0x83;
const ERROR: u8 = 0x84;
const HAVE: u8 = 0x85;
const HAVE_MORE: u8 = 0x86;
const SKIPPED: u8 = 0x87;

/// A frame that breaks the protocol; the connection is closed after it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A frame kind this side does not know or does not expect.
    #[error("unknown or unexpected frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A frame longer than its kind allows.
    #[error("frame of kind {kind:#04x} is {len} bytes, more than the {max} allowed")]
    TooLong { kind: u8, len: u32, max: u32 },
    /// A frame shorter than its kind needs.
    #[error("frame of kind {kind:#04x} is {len} bytes, too short")]
    TooShort { kind: u8, len: u32 },
    /// A have frame whose first piece or length is not aligned as its kind needs.
    #[error("frame of kind {0:#04x} is misaligned")]
    Misaligned(u8),
}

/// The fixed part of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame carries.
    pub kind: u8,
    /// Bytes of body after the header.
    pub body_len: u32,
}

impl FrameHeader {
    /// Parses and bounds-checks a header; `piece_len` bounds piece frames.
    pub fn parse(bytes: [u8; HEADER_LEN], piece_len: u64) -> Result<Self, WireError> {
        let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
        let kind = bytes[4];
        if len == 0 {
            return Err(WireError::TooShort { kind, len });
        }
        let body_len = len - 1;
        let (min, max) = match kind {
            OPEN | GET_PIECE | CANCEL | SKIPPED => (8, 8),
            GET_TREE | WATCH_HAVES => (0, 0),
            DIAL_BACK => (10, 10),
            PUNCH => (26, 26),
            READY => (48, 48),
            TREE => (8, (8 + MAX_LEAVES_PER_FRAME * LEAF_LEN) as u32),
            PIECE => (8, 8 + piece_len.min(MAX_PIECE_LEN) as u32),
            ERROR => (1, 1 + MAX_ERROR_MESSAGE as u32),
            HAVE => (9, (8 + MAX_HAVE_BITMAP) as u32),
            HAVE_MORE => (8, (8 * MAX_HAVE_MORE) as u32),
            other => return Err(WireError::UnknownKind(other)),
        };
        if body_len < min {
            return Err(WireError::TooShort {
                kind,
                len: body_len,
            });
        }
        if body_len > max {
            return Err(WireError::TooLong {
                kind,
                len: body_len,
                max,
            });
        }
        Ok(Self { kind, body_len })
    }

    /// True when this frame carries piece bytes (read its body with [`PieceHeader`]).
    pub fn is_piece(&self) -> bool {
        self.kind == PIECE
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(
        body[at..at + 8]
            .try_into()
            .expect("length checked by header"),
    )
}

/// An IP as 16 bytes: IPv6, or IPv4 mapped into IPv6.
fn ip_octets(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// The IP 16 bytes carry, IPv4 when mapped.
fn ip_from(octets: [u8; 16]) -> std::net::IpAddr {
    std::net::Ipv6Addr::from(octets).to_canonical()
}

/// What the downloading side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame {
    /// Present the ticket of a granted transfer; must come first.
    Open {
        /// The ticket from `TransferResponse::Granted`.
        ticket: u64,
    },
    /// Ask for all piece hashes.
    GetTree,
    /// Ask for one piece.
    GetPiece {
        /// Piece index.
        index: u64,
    },
    /// Ask which pieces the server has, and to be told as more land.
    WatchHaves,
    /// Withdraw a piece asked for and not yet answered (it came from elsewhere).
    Cancel {
        /// Piece index.
        index: u64,
    },
    /// On a data stream only, instead of [`ClientFrame::Open`]: connect to
    /// the data port of the downloader from your own, at the address of the
    /// libp2p connection, while it connects to yours (a simultaneous open
    /// that routers let through); the ticket is then presented there.
    DialBack {
        /// The ticket from `TransferResponse::Granted`, proving the grant.
        ticket: u64,
        /// The downloader's TCP port, connecting already.
        port: u16,
    },
    /// On a data stream only, when a router that changes ports for every
    /// destination stands between the two (a dial-back cannot pass it):
    /// open many connections at once towards `ip`, from fresh ports to
    /// `port` and from your data port to random ports, while the
    /// downloader does the same towards you; one pair meets (the birthday
    /// paradox). The ticket is then presented on the connection that formed.
    Punch {
        /// The ticket from `TransferResponse::Granted`, proving the grant.
        ticket: u64,
        /// The downloader's public IP, as peers see it.
        ip: std::net::IpAddr,
        /// The downloader's fixed TCP port, connecting already.
        port: u16,
    },
}

impl ClientFrame {
    /// The frame's bytes, header included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Open { ticket } => frame(OPEN, &ticket.to_be_bytes()),
            Self::GetTree => frame(GET_TREE, &[]),
            Self::GetPiece { index } => frame(GET_PIECE, &index.to_be_bytes()),
            Self::WatchHaves => frame(WATCH_HAVES, &[]),
            Self::Cancel { index } => frame(CANCEL, &index.to_be_bytes()),
            Self::DialBack { ticket, port } => {
                let mut body = [0u8; 10];
                body[..8].copy_from_slice(&ticket.to_be_bytes());
                body[8..].copy_from_slice(&port.to_be_bytes());
                frame(DIAL_BACK, &body)
            }
            Self::Punch { ticket, ip, port } => {
                let mut body = [0u8; 26];
                body[..8].copy_from_slice(&ticket.to_be_bytes());
                body[8..24].copy_from_slice(&ip_octets(*ip));
                body[24..].copy_from_slice(&port.to_be_bytes());
                frame(PUNCH, &body)
            }
        }
    }

    /// Decodes a body whose header was checked by [`FrameHeader::parse`].
    pub fn decode(header: FrameHeader, body: &[u8]) -> Result<Self, WireError> {
        match header.kind {
            OPEN => Ok(Self::Open {
                ticket: u64_at(body, 0),
            }),
            GET_TREE => Ok(Self::GetTree),
            GET_PIECE => Ok(Self::GetPiece {
                index: u64_at(body, 0),
            }),
            WATCH_HAVES => Ok(Self::WatchHaves),
            CANCEL => Ok(Self::Cancel {
                index: u64_at(body, 0),
            }),
            DIAL_BACK => Ok(Self::DialBack {
                ticket: u64_at(body, 0),
                port: u16::from_be_bytes([body[8], body[9]]),
            }),
            PUNCH => Ok(Self::Punch {
                ticket: u64_at(body, 0),
                ip: ip_from(body[8..24].try_into().expect("length checked by header")),
                port: u16::from_be_bytes([body[24], body[25]]),
            }),
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

/// Error codes the sharing side may send before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The ticket is unknown, used, expired or granted to another peer.
    BadTicket = 1,
    /// The file is no longer shared or changed on disk since it was hashed.
    NotFound = 2,
    /// The request broke the protocol.
    Protocol = 3,
    /// The sharer failed to read its own file.
    Internal = 4,
}

impl ErrorCode {
    fn from_u8(code: u8) -> Self {
        match code {
            1 => Self::BadTicket,
            2 => Self::NotFound,
            3 => Self::Protocol,
            _ => Self::Internal,
        }
    }
}

/// What the sharing side sends, except piece data (see [`PieceHeader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// The ticket is good: this is the file that will be served.
    Ready {
        /// The file's id.
        id: FileId,
        /// Its size in bytes.
        size: u64,
        /// The piece length of the outboard.
        piece_len: u64,
    },
    /// A run of consecutive piece hashes.
    Tree {
        /// Index of the first hash in `leaves`.
        first: u64,
        /// Concatenated 32-byte piece hashes.
        leaves: Vec<u8>,
    },
    /// Which pieces the server has, as a bitmap (piece 0 is the high bit
    /// of the first byte) starting at piece `first`, a multiple of 8.
    Have {
        /// Index of the piece of the first byte's high bit.
        first: u64,
        /// The bitmap bytes.
        bitmap: Vec<u8>,
    },
    /// Pieces the server has verified since it last said.
    HaveMore {
        /// The new pieces.
        indices: Vec<u64>,
    },
    /// The answer to a GetPiece the client cancelled before it was served.
    Skipped {
        /// Piece index.
        index: u64,
    },
    /// A refusal; the server closes after it.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A sentence for the person.
        message: String,
    },
}

impl ServerFrame {
    /// The frame's bytes, header included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Ready {
                id,
                size,
                piece_len,
            } => {
                let mut body = id.as_bytes().to_vec();
                body.extend_from_slice(&size.to_be_bytes());
                body.extend_from_slice(&piece_len.to_be_bytes());
                frame(READY, &body)
            }
            Self::Tree { first, leaves } => {
                let mut body = first.to_be_bytes().to_vec();
                body.extend_from_slice(leaves);
                frame(TREE, &body)
            }
            Self::Have { first, bitmap } => {
                let mut body = first.to_be_bytes().to_vec();
                body.extend_from_slice(bitmap);
                frame(HAVE, &body)
            }
            Self::HaveMore { indices } => {
                let body: Vec<u8> = indices.iter().flat_map(|i| i.to_be_bytes()).collect();
                frame(HAVE_MORE, &body)
            }
            Self::Skipped { index } => frame(SKIPPED, &index.to_be_bytes()),
            Self::Error { code, message } => {
                let mut cut = message.len().min(MAX_ERROR_MESSAGE);
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                let mut body = vec![*code as u8];
                body.extend_from_slice(&message.as_bytes()[..cut]);
                frame(ERROR, &body)
            }
        }
    }

    /// Decodes a body whose header was checked by [`FrameHeader::parse`].
    pub fn decode(header: FrameHeader, body: &[u8]) -> Result<Self, WireError> {
        match header.kind {
            READY => Ok(Self::Ready {
                id: FileId::from_bytes(body[..32].try_into().expect("length checked")),
                size: u64_at(body, 32),
                piece_len: u64_at(body, 40),
            }),
            TREE => {
                if !(body.len() - 8).is_multiple_of(LEAF_LEN) {
                    return Err(WireError::TooShort {
                        kind: TREE,
                        len: body.len() as u32,
                    });
                }
                Ok(Self::Tree {
                    first: u64_at(body, 0),
                    leaves: body[8..].to_vec(),
                })
            }
            HAVE if u64_at(body, 0).is_multiple_of(8) => Ok(Self::Have {
                first: u64_at(body, 0),
                bitmap: body[8..].to_vec(),
            }),
            HAVE => Err(WireError::Misaligned(HAVE)),
            HAVE_MORE if body.len().is_multiple_of(8) => Ok(Self::HaveMore {
                indices: body.chunks_exact(8).map(|c| u64_at(c, 0)).collect(),
            }),
            HAVE_MORE => Err(WireError::Misaligned(HAVE_MORE)),
            SKIPPED => Ok(Self::Skipped {
                index: u64_at(body, 0),
            }),
            ERROR => Ok(Self::Error {
                code: ErrorCode::from_u8(body[0]),
                message: String::from_utf8_lossy(&body[1..]).into_owned(),
            }),
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

/// The have frames that together carry the whole of `set`, in order.
pub fn have_frames(set: &crate::PieceSet) -> impl Iterator<Item = ServerFrame> + '_ {
    (0..set.bitmap_len().max(1))
        .step_by(MAX_HAVE_BITMAP)
        .map(|start| {
            let first = start as u64 * 8;
            ServerFrame::Have {
                first,
                bitmap: set.bitmap(first, MAX_HAVE_BITMAP).to_vec(),
            }
        })
}

/// The start of a piece frame: header plus piece index; the bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceHeader;

impl PieceHeader {
    /// Bytes of header and index before the piece data.
    pub const LEN: usize = HEADER_LEN + 8;

    /// The header for a piece of `data_len` bytes.
    pub fn encode(index: u64, data_len: usize) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&(data_len as u32 + 9).to_be_bytes());
        out[4] = PIECE;
        out[5..].copy_from_slice(&index.to_be_bytes());
        out
    }

    /// The piece index from the 8 bytes after a piece frame's header.
    pub fn index(bytes: [u8; 8]) -> u64 {
        u64::from_be_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(bytes: &[u8], piece_len: u64) -> Result<(FrameHeader, &[u8]), WireError> {
        let header = FrameHeader::parse(bytes[..HEADER_LEN].try_into().unwrap(), piece_len)?;
        Ok((header, &bytes[HEADER_LEN..]))
    }

    #[test]
    fn client_frames_round_trip() {
        for f in [
            ClientFrame::Open { ticket: 42 },
            ClientFrame::GetTree,
            ClientFrame::GetPiece { index: u64::MAX },
            ClientFrame::WatchHaves,
            ClientFrame::Cancel { index: 7 },
            ClientFrame::DialBack {
                ticket: u64::MAX - 1,
                port: 54_321,
            },
            ClientFrame::Punch {
                ticket: 9,
                ip: "60.1.0.12".parse().unwrap(),
                port: 40_000,
            },
            ClientFrame::Punch {
                ticket: 10,
                ip: "2001:db8::7".parse().unwrap(),
                port: 1,
            },
        ] {
            let bytes = f.encode();
            let (h, body) = split(&bytes, 1 << 20).unwrap();
            assert_eq!(ClientFrame::decode(h, body).unwrap(), f);
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let id = FileId::from(blake3::hash(b"x"));
        for f in [
            ServerFrame::Ready {
                id,
                size: 5,
                piece_len: 1024,
            },
            ServerFrame::Tree {
                first: 3,
                leaves: vec![7; 64],
            },
            ServerFrame::Error {
                code: ErrorCode::NotFound,
                message: "gone".into(),
            },
            ServerFrame::Have {
                first: 16,
                bitmap: vec![0x80, 0x01],
            },
            ServerFrame::HaveMore {
                indices: vec![3, u64::MAX],
            },
            ServerFrame::Skipped { index: 9 },
        ] {
            let bytes = f.encode();
            let (h, body) = split(&bytes, 1 << 20).unwrap();
            assert_eq!(ServerFrame::decode(h, body).unwrap(), f);
        }
    }

    #[test]
    fn piece_header_parses() {
        let h = PieceHeader::encode(9, 1000);
        let parsed = FrameHeader::parse(h[..5].try_into().unwrap(), 1024).unwrap();
        assert!(parsed.is_piece());
        assert_eq!(parsed.body_len, 1008);
        assert_eq!(PieceHeader::index(h[5..].try_into().unwrap()), 9);
    }

    proptest::proptest! {
        /// Any body under a header that passes the limits decodes or errors, never panics.
        #[test]
        fn random_bodies_never_panic_a_decoder(
            kind in proptest::sample::select(vec![OPEN, GET_TREE, GET_PIECE, WATCH_HAVES, CANCEL, DIAL_BACK, READY, TREE, PIECE, ERROR, HAVE, HAVE_MORE, SKIPPED, 0x00, 0x7f, 0xff]),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
        ) {
            let mut header = [0u8; HEADER_LEN];
            header[..4].copy_from_slice(&(body.len() as u32 + 1).to_be_bytes());
            header[4] = kind;
            if let Ok(h) = FrameHeader::parse(header, 1024) {
                proptest::prop_assert_eq!(h.body_len as usize, body.len());
                let _ = ClientFrame::decode(h, &body);
                let _ = ServerFrame::decode(h, &body);
            }
        }
    }

    #[test]
    fn hostile_headers_are_refused_before_reading() {
        let huge = [0xff, 0xff, 0xff, 0xff, 0x83];
        assert!(matches!(
            FrameHeader::parse(huge, 1 << 20),
            Err(WireError::TooLong { .. })
        ));
        assert!(matches!(
            FrameHeader::parse([0, 0, 0, 0, 1], 1024),
            Err(WireError::TooShort { .. })
        ));
        assert_eq!(
            FrameHeader::parse([0, 0, 0, 1, 0x55], 1024),
            Err(WireError::UnknownKind(0x55))
        );
        let piece_too_big = PieceHeader::encode(0, 2048);
        assert!(FrameHeader::parse(piece_too_big[..5].try_into().unwrap(), 1024).is_err());
        let odd_tree = [0, 0, 0, 10, 0x82];
        let h = FrameHeader::parse(odd_tree, 1024).unwrap();
        assert!(ServerFrame::decode(h, &[0u8; 9]).is_err());
        let odd_have_more = [0, 0, 0, 10, 0x86];
        let h = FrameHeader::parse(odd_have_more, 1024).unwrap();
        assert_eq!(
            ServerFrame::decode(h, &[0u8; 9]),
            Err(WireError::Misaligned(HAVE_MORE))
        );
        let have_at_3 = ServerFrame::Have {
            first: 3,
            bitmap: vec![1],
        }
        .encode();
        let h = FrameHeader::parse(have_at_3[..5].try_into().unwrap(), 1024).unwrap();
        assert!(ServerFrame::decode(h, &have_at_3[5..]).is_err());
        let huge_have = ((8 + MAX_HAVE_BITMAP as u32 + 2).to_be_bytes(), 0x85);
        let mut bytes = [0u8; 5];
        bytes[..4].copy_from_slice(&huge_have.0);
        bytes[4] = huge_have.1;
        assert!(matches!(
            FrameHeader::parse(bytes, 1024),
            Err(WireError::TooLong { .. })
        ));
    }
}
