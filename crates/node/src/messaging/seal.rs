//! Sealing a [`Letter`] into an [`Envelope`] for one recipient peer, and
//! opening one addressed to this peer.
//!
//! A letter is JSON, length-prefixed and zero-padded to a bucket
//! ([`PADDING_BUCKETS`]), then sealed with HPKE (RFC 9180, base mode) to the
//! recipient's card key; the HPKE `info` binds recipient and sender, the
//! `aad` binds the letter id and expiry. The sender signs the whole envelope
//! with its identity key, so carriers can check who sent it without reading
//! it. Opening checks the signature before decrypting anything and refuses
//! an envelope for someone else. No primitive here is home-made.

use libp2p::PeerId;
use peershare_core::wire::message::{
    padded_len, Envelope, ENVELOPE_DOMAIN, LETTER_ID_LEN, MAX_TEXT, SIGNATURE_LEN,
};
use rustls::crypto::hpke::EncapsulatedSecret;
use serde::{Deserialize, Serialize};

use super::keys::{self, suite, MessageKeys, VerifiedCard};

/// Most letter ids one receipt names.
pub const MAX_RECEIPT_IDS: usize = 256;
const INFO_DOMAIN: &[u8] = b"peershare-letter/1\0";

/// What a person sends another, inside the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// When the sender wrote it, in milliseconds since the Unix epoch.
    pub sent_at: i64,
    /// The sender's running number in this chat (orders letters sent in the same millisecond).
    #[serde(default)]
    pub seq: u64,
    /// The user name the sender goes by (a claim; the index or the pinned keys vouch for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user: Option<String>,
    /// The sender's key card (hex), so the recipient can answer (and send
    /// receipts) while the sender is away; checked against the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// What it says.
    pub body: LetterBody,
}

/// The kinds of letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LetterBody {
    /// Text for the person.
    Text {
        /// At most [`MAX_TEXT`] bytes.
        text: String,
    },
    /// These letters (hex ids) reached the recipient, and whether the person has read them.
    Receipt {
        /// Letter ids, at most [`MAX_RECEIPT_IDS`].
        ids: Vec<String>,
        /// `true` once read, `false` when only delivered.
        read: bool,
    },
}

/// Why an envelope could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The bytes are not an envelope.
    #[error("not an envelope: {0}")]
    Format(#[from] peershare_core::wire::message::MessageFormatError),
    /// The envelope is for another peer.
    #[error("the envelope is addressed to another peer")]
    NotForMe,
    /// The sender's id cannot sign, or the signature does not verify.
    #[error("the envelope's signature does not verify: it was forged or altered on the way")]
    BadSignature,
    /// Decryption failed although the signature verified.
    #[error("the envelope cannot be opened with this peer's key (sealed to an older key?)")]
    CannotOpen,
    /// What was inside is not a letter.
    #[error("the letter inside is malformed: {0}")]
    BadLetter(String),
    /// The letter is too long.
    #[error("a message holds at most {MAX_TEXT} bytes of text; send longer text as a shared file's link")]
    TooLong,
    /// Sealing failed.
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// An opened envelope: who sent it, the letter id and the letter.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The sender, as its signature proves.
    pub from: PeerId,
    /// The letter id (the same in every copy of one message).
    pub id: [u8; LETTER_ID_LEN],
    /// When carriers may drop it.
    pub expires_ms: u64,
    /// The letter.
    pub letter: Letter,
}

/// Seals `letter` for `to` (whose card was checked) as letter `id`, signed by `keys`.
pub fn seal(
    keys: &MessageKeys,
    to: &VerifiedCard,
    id: [u8; LETTER_ID_LEN],
    expires_ms: u64,
    letter: &Letter,
) -> Result<Envelope, SealError> {
    check_letter(letter)?;
    let json = serde_json::to_vec(letter).map_err(|e| SealError::Seal(e.to_string()))?;
    let plaintext = pad(&json)?;
    let from = keys.peer_id();
    let info = info(&to.peer, &from);
    let aad = aad(&id, expires_ms);
    let (enc, ciphertext) = suite()
        .seal(&info, &aad, &plaintext, &to.hpke_key())
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let mut envelope = Envelope {
        to: to.peer.to_bytes(),
        from: from.to_bytes(),
        id,
        expires_ms,
        enc: enc
            .0
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Seal("unexpected encapsulated key size".into()))?,
        ciphertext,
        signature: [0; SIGNATURE_LEN],
    };
    envelope.signature = keys::sign(keys.identity(), ENVELOPE_DOMAIN, &envelope.signed_bytes())
        .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(envelope)
}

/// Checks who sent `bytes` without opening it: the sender and recipient when the signature verifies.
pub fn check_signature(bytes: &[u8]) -> Result<(Envelope, PeerId, PeerId), SealError> {
    let envelope = Envelope::decode(bytes)?;
    let from = PeerId::from_bytes(&envelope.from).map_err(|_| SealError::BadSignature)?;
    let to = PeerId::from_bytes(&envelope.to).map_err(|_| SealError::NotForMe)?;
    if !keys::verify(
        &from,
        ENVELOPE_DOMAIN,
        &envelope.signed_bytes(),
        &envelope.signature,
    ) {
        return Err(SealError::BadSignature);
    }
    Ok((envelope, from, to))
}

/// Opens an envelope addressed to this peer, after checking its signature.
pub fn open(keys: &MessageKeys, bytes: &[u8]) -> Result<Opened, SealError> {
    let (envelope, from, to) = check_signature(bytes)?;
    if to != keys.peer_id() {
        return Err(SealError::NotForMe);
    }
    let plaintext = suite()
        .open(
            &EncapsulatedSecret(envelope.enc.to_vec()),
            &info(&to, &from),
            &aad(&envelope.id, envelope.expires_ms),
            &envelope.ciphertext,
            keys.secret(),
        )
        .map_err(|_| SealError::CannotOpen)?;
    let letter = unpad(&plaintext)
        .and_then(|json| serde_json::from_slice::<Letter>(json).map_err(|e| e.to_string()))
        .map_err(SealError::BadLetter)?;
    check_letter(&letter)?;
    Ok(Opened {
        from,
        id: envelope.id,
        expires_ms: envelope.expires_ms,
        letter,
    })
}

fn check_letter(letter: &Letter) -> Result<(), SealError> {
    match &letter.body {
        LetterBody::Text { text } if text.len() > MAX_TEXT => Err(SealError::TooLong),
        LetterBody::Receipt { ids, .. } if ids.len() > MAX_RECEIPT_IDS => Err(
            SealError::BadLetter(format!("a receipt names at most {MAX_RECEIPT_IDS} letters")),
        ),
        _ => Ok(()),
    }
}

fn info(to: &PeerId, from: &PeerId) -> Vec<u8> {
    let mut info = INFO_DOMAIN.to_vec();
    for peer in [to, from] {
        let bytes = peer.to_bytes();
        info.push(bytes.len() as u8);
        info.extend_from_slice(&bytes);
    }
    info
}

fn aad(id: &[u8; LETTER_ID_LEN], expires_ms: u64) -> Vec<u8> {
    let mut aad = id.to_vec();
    aad.extend_from_slice(&expires_ms.to_be_bytes());
    aad
}

/// `len (u32 BE) | json | zeros`, as long as the smallest bucket that holds it.
fn pad(json: &[u8]) -> Result<Vec<u8>, SealError> {
    let size = padded_len(json.len() + 4).ok_or(SealError::TooLong)?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json);
    out.resize(size, 0);
    Ok(out)
}

fn unpad(plaintext: &[u8]) -> Result<&[u8], String> {
    let len_bytes: [u8; 4] = plaintext
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("no length")?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    plaintext
        .get(4..4 + len)
        .ok_or_else(|| "its length runs past its end".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn pair() -> (MessageKeys, MessageKeys, VerifiedCard) {
        let alice = MessageKeys::generate(Keypair::generate_ed25519());
        let bob = MessageKeys::generate(Keypair::generate_ed25519());
        let card = keys::verify_card(&bob.card().encode(), Some(&bob.peer_id())).unwrap();
        (alice, bob, card)
    }

    fn text(text: &str) -> Letter {
        Letter {
            sent_at: 1,
            seq: 1,
            from_user: Some("alice".into()),
            card: None,
            body: LetterBody::Text { text: text.into() },
        }
    }

    #[test]
    fn a_sealed_letter_opens_for_its_recipient_only() {
        let (alice, bob, card) = pair();
        let envelope = seal(&alice, &card, [7; 16], 99, &text("hello bob")).unwrap();
        let bytes = envelope.encode();
        assert!(!bytes.windows(9).any(|w| w == b"hello bob"));
        let opened = open(&bob, &bytes).unwrap();
        assert_eq!(opened.from, alice.peer_id());
        assert_eq!(opened.id, [7; 16]);
        assert_eq!(opened.letter, text("hello bob"));
        let eve = MessageKeys::generate(Keypair::generate_ed25519());
        assert!(matches!(open(&eve, &bytes), Err(SealError::NotForMe)));
    }

    #[test]
    fn tampering_anywhere_is_refused() {
        let (alice, bob, card) = pair();
        let bytes = seal(&alice, &card, [1; 16], 5, &text("pay 10"))
            .unwrap()
            .encode();
        for at in [5, 50, 90, 130, bytes.len() - 70, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(
                open(&bob, &bad).is_err(),
                "flipping byte {at} went unnoticed"
            );
        }
    }

    #[test]
    fn a_resigned_envelope_does_not_open_as_the_forger() {
        // Mallory takes alice's envelope and signs it as herself: the HPKE info
        // names alice, so the letter cannot be passed off as mallory's.
        let (alice, bob, card) = pair();
        let mallory = MessageKeys::generate(Keypair::generate_ed25519());
        let mut envelope = seal(&alice, &card, [2; 16], 5, &text("hi")).unwrap();
        envelope.from = mallory.peer_id().to_bytes();
        envelope.signature = keys::sign(
            mallory.identity(),
            ENVELOPE_DOMAIN,
            &envelope.signed_bytes(),
        )
        .unwrap();
        assert!(matches!(
            open(&bob, &envelope.encode()),
            Err(SealError::CannotOpen)
        ));
    }

    #[test]
    fn lengths_show_only_the_padding_bucket() {
        let (alice, _, card) = pair();
        let short = seal(&alice, &card, [3; 16], 5, &text("a")).unwrap();
        let longer = seal(&alice, &card, [3; 16], 5, &text(&"b".repeat(150))).unwrap();
        assert_eq!(short.ciphertext.len(), longer.ciphertext.len());
        let big = seal(&alice, &card, [3; 16], 5, &text(&"c".repeat(MAX_TEXT))).unwrap();
        assert!(big.encode().len() <= peershare_core::wire::message::MAX_ENVELOPE);
        assert!(matches!(
            seal(&alice, &card, [3; 16], 5, &text(&"d".repeat(MAX_TEXT + 1))),
            Err(SealError::TooLong)
        ));
    }
}
