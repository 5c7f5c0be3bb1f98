//! Person-to-person messages on the wire: the sealed [`Envelope`] (what a
//! carrier, the index's mailbox or a DHT holder, stores and hands on), the
//! [`KeyCard`] binding a peer's messaging key to its libp2p identity, and the
//! `/peershare/msg/1` requests ([`MessageRequest`] → [`MessageResponse`]).
//!
//! This module only lays out and parses bytes (docs/PROTOCOL.md §9); it never
//! seals, opens or checks a signature: the node does that with its keys.
//! Every decoder checks lengths before it reads and fails cleanly.

use serde::{Deserialize, Serialize};

/// The libp2p protocol name for handing a peer an envelope or asking for its key card.
pub const MESSAGE_PROTOCOL: &str = "/peershare/msg/1";
/// The most bytes of text one message carries.
pub const MAX_TEXT: usize = 64 * 1024;
/// The largest envelope anyone accepts, in bytes.
pub const MAX_ENVELOPE: usize = 96 * 1024;
/// The sizes a sealed letter is padded to, so a carrier learns only the bucket.
pub const PADDING_BUCKETS: [usize; 6] = [256, 1024, 4096, 16 * 1024, 64 * 1024, 80 * 1024];
/// An X25519 public key's length.
pub const MESSAGE_KEY_LEN: usize = 32;
/// An ed25519 signature's length.
pub const SIGNATURE_LEN: usize = 64;
/// A letter id's length.
pub const LETTER_ID_LEN: usize = 16;

const ENVELOPE_MAGIC: &[u8; 4] = b"PSM1";
const CARD_MAGIC: &[u8; 4] = b"PSK1";
/// Prefixed to the bytes an envelope's signature covers.
pub const ENVELOPE_DOMAIN: &[u8] = b"peershare-envelope/1\0";
/// Prefixed to the bytes a key card's signature covers.
pub const CARD_DOMAIN: &[u8] = b"peershare-msgkey/1\0";
/// Longest peer id accepted in an envelope or card (an ed25519 id is 38 bytes).
const MAX_PEER_ID_LEN: usize = 64;

/// A request on `/peershare/msg/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageRequest {
    /// Here is an envelope addressed to you.
    Deliver {
        /// The envelope's bytes ([`Envelope::encode`]).
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// Send me your key card.
    KeyCard,
    /// Keep this envelope for its recipient, who is away (a DHT mailbox).
    Keep {
        /// The envelope's bytes.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// Hand over the envelopes you keep for me (the peer on this connection).
    Collect,
    /// These letters reached me: drop them ([`DeliveredReceipt::encode`], signed by the recipient).
    Delivered {
        /// The receipt's bytes.
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
    },
}

/// The answer to a [`MessageRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageResponse {
    /// The envelope was opened, checked and stored (the delivery receipt).
    Accepted {
        /// It had arrived before; nothing was stored twice.
        duplicate: bool,
    },
    /// The envelope was not taken, and why.
    Refused {
        /// Why, for the sender's person.
        reason: String,
        /// Whether trying again later may succeed (busy, slow down) or not (blocked, malformed).
        #[serde(default)]
        retry: bool,
    },
    /// This peer's key card ([`KeyCard::encode`]).
    KeyCard {
        /// The card's bytes.
        #[serde(with = "serde_bytes")]
        card: Vec<u8>,
    },
    /// Envelopes kept for the asker (at most [`MAX_COLLECTED_BYTES`] in all); ask again for more.
    Letters {
        /// The envelopes.
        envelopes: Vec<serde_bytes::ByteBuf>,
    },
}

/// The most envelope bytes one `Letters` answer carries.
pub const MAX_COLLECTED_BYTES: usize = 2 << 20;
/// The largest message response, in bytes (a `Letters` answer with its framing).
pub const MAX_MESSAGE_RESPONSE: usize = MAX_COLLECTED_BYTES + MAX_ENVELOPE + 64 * 1024;
/// The most letter ids one delivered receipt names.
pub const MAX_DELIVERED_IDS: usize = 256;
const DELIVERED_MAGIC: &[u8; 4] = b"PSD1";
/// Prefixed to the bytes a delivered receipt's signature covers.
pub const DELIVERED_DOMAIN: &[u8] = b"peershare-delivered/1\0";

/// A recipient's signed word that letters reached it, so whoever keeps copies may drop them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredReceipt {
    /// The recipient's peer id bytes.
    pub recipient: Vec<u8>,
    /// The letters' ids, at most [`MAX_DELIVERED_IDS`].
    pub ids: Vec<[u8; LETTER_ID_LEN]>,
    /// The recipient's ed25519 signature over [`DELIVERED_DOMAIN`] + [`DeliveredReceipt::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl DeliveredReceipt {
    /// The bytes the signature covers, without the domain prefix.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.ids.len() * LETTER_ID_LEN);
        out.extend_from_slice(DELIVERED_MAGIC);
        put_short(&mut out, &self.recipient);
        out.extend_from_slice(&(self.ids.len() as u16).to_be_bytes());
        for id in &self.ids {
            out.extend_from_slice(id);
        }
        out
    }

    /// The receipt's bytes.
    pub fn encode(&self) -> Vec<u8> {
        with_signature(self.signed_bytes(), &self.signature)
    }

    /// Parses a receipt.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageFormatError> {
        const WHAT: &str = "delivered receipt";
        let mut r = Reader::after_magic(bytes, WHAT, DELIVERED_MAGIC)?;
        let recipient = r.short()?.to_vec();
        let count = u16::from_be_bytes(r.array()?) as usize;
        if count > MAX_DELIVERED_IDS {
            return Err(MessageFormatError::TooLong(WHAT));
        }
        let ids = (0..count).map(|_| r.array()).collect::<Result<_, _>>()?;
        let signature = r.signature()?;
        Ok(Self {
            recipient,
            ids,
            signature,
        })
    }
}

/// Why bytes are not an envelope or a key card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageFormatError {
    /// The bytes end before a field does.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The bytes do not start as this format does.
    #[error("not a peershare {0} (unknown magic or version)")]
    Magic(&'static str),
    /// A field is longer than allowed.
    #[error("{0} too long")]
    TooLong(&'static str),
    /// Bytes follow the last field.
    #[error("trailing bytes after the {0}")]
    Trailing(&'static str),
}

/// A sealed message as carriers see it: who it is for and from, when it
/// expires, and ciphertext they cannot read. The sender's signature covers
/// every field, so a carrier can refuse a forged one without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The recipient's peer id bytes.
    pub to: Vec<u8>,
    /// The sender's peer id bytes.
    pub from: Vec<u8>,
    /// The letter's id, the same in every copy of one message.
    pub id: [u8; LETTER_ID_LEN],
    /// When carriers may drop it, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// The HPKE encapsulated key.
    pub enc: [u8; MESSAGE_KEY_LEN],
    /// The HPKE ciphertext of the padded letter.
    pub ciphertext: Vec<u8>,
    /// The sender's ed25519 signature over [`ENVELOPE_DOMAIN`] + [`Envelope::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl Envelope {
    /// The bytes the signature covers (everything before it), without the domain prefix.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.ciphertext.len());
        out.extend_from_slice(ENVELOPE_MAGIC);
        put_short(&mut out, &self.to);
        put_short(&mut out, &self.from);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.expires_ms.to_be_bytes());
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// The envelope's bytes.
    pub fn encode(&self) -> Vec<u8> {
        with_signature(self.signed_bytes(), &self.signature)
    }

    /// Parses an envelope, checking every length against the bytes and [`MAX_ENVELOPE`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageFormatError> {
        const WHAT: &str = "envelope";
        if bytes.len() > MAX_ENVELOPE {
            return Err(MessageFormatError::TooLong(WHAT));
        }
        let mut r = Reader::after_magic(bytes, WHAT, ENVELOPE_MAGIC)?;
        let to = r.short()?.to_vec();
        let from = r.short()?.to_vec();
        let id = r.array()?;
        let expires_ms = u64::from_be_bytes(r.array()?);
        let enc = r.array()?;
        let len = u32::from_be_bytes(r.array()?) as usize;
        let ciphertext = r.take(len)?.to_vec();
        let signature = r.signature()?;
        Ok(Self {
            to,
            from,
            id,
            expires_ms,
            enc,
            ciphertext,
            signature,
        })
    }
}

/// A peer's messaging key, signed by its libp2p identity key so that whoever
/// hands it on (the index, a DHT node) cannot swap it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCard {
    /// The peer id bytes of the owner.
    pub peer: Vec<u8>,
    /// Its X25519 public key for HPKE.
    pub key: [u8; MESSAGE_KEY_LEN],
    /// When the key was made, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The owner's ed25519 signature over [`CARD_DOMAIN`] + [`KeyCard::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl KeyCard {
    /// The bytes the signature covers, without the domain prefix.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(120);
        out.extend_from_slice(CARD_MAGIC);
        put_short(&mut out, &self.peer);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out
    }

    /// The card's bytes.
    pub fn encode(&self) -> Vec<u8> {
        with_signature(self.signed_bytes(), &self.signature)
    }

    /// Parses a card.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageFormatError> {
        const WHAT: &str = "key card";
        let mut r = Reader::after_magic(bytes, WHAT, CARD_MAGIC)?;
        let peer = r.short()?.to_vec();
        let key = r.array()?;
        let created_ms = u64::from_be_bytes(r.array()?);
        let signature = r.signature()?;
        Ok(Self {
            peer,
            key,
            created_ms,
            signature,
        })
    }
}

/// The padded size of a plaintext of `len` bytes: the smallest bucket that
/// holds it, or `None` when it is larger than the largest.
pub fn padded_len(len: usize) -> Option<usize> {
    PADDING_BUCKETS.iter().copied().find(|b| *b >= len)
}

/// `signed` followed by its `signature`: every signed format ends so.
fn with_signature(mut signed: Vec<u8>, signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    signed.extend_from_slice(signature);
    signed
}

fn put_short(out: &mut Vec<u8>, field: &[u8]) {
    debug_assert!(field.len() <= MAX_PEER_ID_LEN);
    out.push(field.len() as u8);
    out.extend_from_slice(field);
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader past `magic`, or why the bytes do not start with it.
    fn after_magic(
        bytes: &'a [u8],
        what: &'static str,
        magic: &[u8; 4],
    ) -> Result<Self, MessageFormatError> {
        let mut r = Self { bytes, what };
        if r.take(4)? != magic {
            return Err(MessageFormatError::Magic(what));
        }
        Ok(r)
    }

    /// The signature that ends every signed format, and nothing after it.
    fn signature(mut self) -> Result<[u8; SIGNATURE_LEN], MessageFormatError> {
        let signature = self.array()?;
        self.end()?;
        Ok(signature)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageFormatError> {
        if self.bytes.len() < n {
            return Err(MessageFormatError::Truncated(self.what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MessageFormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn short(&mut self) -> Result<&'a [u8], MessageFormatError> {
        let len = self.take(1)?[0] as usize;
        if len > MAX_PEER_ID_LEN {
            return Err(MessageFormatError::TooLong("peer id"));
        }
        self.take(len)
    }

    fn end(&self) -> Result<(), MessageFormatError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(MessageFormatError::Trailing(self.what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope() -> Envelope {
        Envelope {
            to: vec![1; 38],
            from: vec![2; 38],
            id: [3; 16],
            expires_ms: 1_800_000_000_000,
            enc: [4; 32],
            ciphertext: vec![5; 272],
            signature: [6; 64],
        }
    }

    #[test]
    fn an_envelope_survives_encoding() {
        let e = envelope();
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        assert!(e.encode().ends_with(&[6; 64]));
        assert_eq!(e.encode().len(), e.signed_bytes().len() + SIGNATURE_LEN);
    }

    #[test]
    fn a_card_survives_encoding() {
        let c = KeyCard {
            peer: vec![7; 38],
            key: [8; 32],
            created_ms: 42,
            signature: [9; 64],
        };
        assert_eq!(KeyCard::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn damaged_envelopes_are_refused() {
        let bytes = envelope().encode();
        for cut in [0, 3, 10, 80, bytes.len() - 1] {
            assert!(matches!(
                Envelope::decode(&bytes[..cut]),
                Err(MessageFormatError::Truncated(_) | MessageFormatError::Magic(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Envelope::decode(&longer),
            Err(MessageFormatError::Trailing("envelope"))
        );
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert_eq!(
            Envelope::decode(&wrong),
            Err(MessageFormatError::Magic("envelope"))
        );
        let huge = vec![0u8; MAX_ENVELOPE + 1];
        assert_eq!(
            Envelope::decode(&huge),
            Err(MessageFormatError::TooLong("envelope"))
        );
    }

    #[test]
    fn a_length_past_the_end_is_refused_before_it_is_read() {
        let mut bytes = envelope().encode();
        // The ciphertext length sits after magic, two peer ids, id, expiry and enc.
        let at = 4 + 39 + 39 + 16 + 8 + 32;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Envelope::decode(&bytes),
            Err(MessageFormatError::Truncated("envelope"))
        );
    }

    #[test]
    fn a_delivered_receipt_survives_encoding_and_bounds_its_ids() {
        let r = DeliveredReceipt {
            recipient: vec![1; 38],
            ids: vec![[2; 16], [3; 16]],
            signature: [4; 64],
        };
        assert_eq!(DeliveredReceipt::decode(&r.encode()).unwrap(), r);
        let mut many = r.signed_bytes();
        let at = 4 + 39;
        many[at..at + 2].copy_from_slice(&(MAX_DELIVERED_IDS as u16 + 1).to_be_bytes());
        assert!(DeliveredReceipt::decode(&many).is_err());
    }

    #[test]
    fn padding_picks_the_smallest_bucket() {
        assert_eq!(padded_len(0), Some(256));
        assert_eq!(padded_len(256), Some(256));
        assert_eq!(padded_len(257), Some(1024));
        assert_eq!(padded_len(70_000), Some(80 * 1024));
        assert_eq!(padded_len(80 * 1024 + 1), None);
    }

    proptest! {
        #[test]
        fn decoding_junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Envelope::decode(&bytes);
            let _ = KeyCard::decode(&bytes);
            let _ = DeliveredReceipt::decode(&bytes);
        }
    }
}
