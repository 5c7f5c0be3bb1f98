//! This peer's messaging key (an X25519 key for HPKE, made on first start
//! and kept in the data folder) and the [`KeyCard`] that binds it to the
//! libp2p identity by a signature; checking other peers' cards.
//!
//! A card is believed only when its signature verifies against the key its
//! peer id is made of: whoever hands a card on cannot swap the key. This
//! module never overwrites an existing key file.

use std::path::Path;

use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use peershare_core::wire::message::{KeyCard, CARD_DOMAIN, MESSAGE_KEY_LEN, SIGNATURE_LEN};
use rustls::crypto::hpke::{Hpke, HpkePrivateKey, HpkePublicKey};

use crate::NodeError;

/// The messaging key file's name inside the data folder.
pub const MESSAGE_KEY_FILE: &str = "message.key";

/// The HPKE suite of every envelope (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305).
pub fn suite() -> &'static dyn Hpke {
    rustls::crypto::aws_lc_rs::hpke::DH_KEM_X25519_HKDF_SHA256_CHACHA20_POLY1305
}

/// This peer's keys for messages: the identity that signs and the HPKE key letters are sealed to.
pub struct MessageKeys {
    identity: Keypair,
    secret: HpkePrivateKey,
    card: KeyCard,
}

impl MessageKeys {
    /// Loads the messaging key from `data_dir`, creating it on first start, and signs its card.
    pub fn load_or_create(data_dir: &Path, identity: Keypair) -> Result<Self, NodeError> {
        let path = data_dir.join(MESSAGE_KEY_FILE);
        let (created_ms, secret, public) = match std::fs::read(&path) {
            Ok(bytes) => parse_key_file(&bytes).ok_or_else(|| {
                NodeError::Identity(format!(
                    "{} is not a valid messaging key; move it away to make a new one \
                     (contacts will be warned that your key changed)",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (public, secret) = suite().generate_key_pair().map_err(|e| {
                    NodeError::Identity(format!("cannot make a messaging key: {e}"))
                })?;
                let public: [u8; MESSAGE_KEY_LEN] = public
                    .0
                    .as_slice()
                    .try_into()
                    .map_err(|_| NodeError::Identity("unexpected HPKE key size".into()))?;
                let created_ms = crate::now_ms() as u64;
                let mut file = created_ms.to_be_bytes().to_vec();
                file.extend_from_slice(secret.secret_bytes());
                file.extend_from_slice(&public);
                crate::private_file::write_private(&path, &file)?;
                (created_ms, secret, public)
            }
            Err(e) => return Err(NodeError::io(&path, e)),
        };
        let card = sign_card(&identity, public, created_ms)?;
        Ok(Self {
            identity,
            secret,
            card,
        })
    }

    /// Keys made in memory (tests).
    pub fn generate(identity: Keypair) -> Self {
        let (public, secret) = suite().generate_key_pair().expect("HPKE key generation");
        let public: [u8; MESSAGE_KEY_LEN] = public.0.as_slice().try_into().expect("X25519 key");
        let card = sign_card(&identity, public, crate::now_ms() as u64).expect("signing");
        Self {
            identity,
            secret,
            card,
        }
    }

    /// This peer's signed card.
    pub fn card(&self) -> &KeyCard {
        &self.card
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.public().to_peer_id()
    }

    /// The identity key that signs envelopes.
    pub fn identity(&self) -> &Keypair {
        &self.identity
    }

    /// The HPKE secret letters to this peer are opened with.
    pub fn secret(&self) -> &HpkePrivateKey {
        &self.secret
    }
}

fn parse_key_file(bytes: &[u8]) -> Option<(u64, HpkePrivateKey, [u8; MESSAGE_KEY_LEN])> {
    if bytes.len() != 8 + 2 * MESSAGE_KEY_LEN {
        return None;
    }
    let created = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let secret = HpkePrivateKey::from(bytes[8..8 + MESSAGE_KEY_LEN].to_vec());
    let public = bytes[8 + MESSAGE_KEY_LEN..].try_into().ok()?;
    Some((created, secret, public))
}

fn sign_card(
    identity: &Keypair,
    key: [u8; MESSAGE_KEY_LEN],
    created_ms: u64,
) -> Result<KeyCard, NodeError> {
    let mut card = KeyCard {
        peer: identity.public().to_peer_id().to_bytes(),
        key,
        created_ms,
        signature: [0; SIGNATURE_LEN],
    };
    card.signature = sign(identity, CARD_DOMAIN, &card.signed_bytes())?;
    Ok(card)
}

/// Signs `domain` + `bytes` with `identity` (ed25519: 64 bytes).
pub fn sign(
    identity: &Keypair,
    domain: &[u8],
    bytes: &[u8],
) -> Result<[u8; SIGNATURE_LEN], NodeError> {
    let mut message = domain.to_vec();
    message.extend_from_slice(bytes);
    let signature = identity
        .sign(&message)
        .map_err(|e| NodeError::Identity(format!("cannot sign: {e}")))?;
    signature
        .as_slice()
        .try_into()
        .map_err(|_| NodeError::Identity("messages need an ed25519 identity key".into()))
}

/// Whether `signature` over `domain` + `bytes` was made by `peer`'s key.
pub fn verify(peer: &PeerId, domain: &[u8], bytes: &[u8], signature: &[u8]) -> bool {
    let Some(key) = public_key_of(peer) else {
        return false;
    };
    let mut message = domain.to_vec();
    message.extend_from_slice(bytes);
    key.verify(&message, signature)
}

/// The public key a peer id is made of (ed25519 ids embed their key; others cannot sign letters).
pub fn public_key_of(peer: &PeerId) -> Option<PublicKey> {
    let hash = peer.as_ref();
    // Multihash code 0 is "identity": the digest is the protobuf-encoded key itself.
    if hash.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(hash.digest()).ok()
}

/// A card checked against its own peer id: the owner and its HPKE key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCard {
    /// Whose key it is.
    pub peer: PeerId,
    /// The X25519 key to seal letters to.
    pub key: [u8; MESSAGE_KEY_LEN],
    /// When the owner made the key.
    pub created_ms: u64,
}

impl VerifiedCard {
    /// The key as HPKE takes it.
    pub fn hpke_key(&self) -> HpkePublicKey {
        HpkePublicKey(self.key.to_vec())
    }
}

/// Parses and checks a card's signature; `expected` (when given) must be its owner.
pub fn verify_card(bytes: &[u8], expected: Option<&PeerId>) -> Result<VerifiedCard, NodeError> {
    let card = KeyCard::decode(bytes)
        .map_err(|e| NodeError::PeerMisbehaved(format!("a key card: {e}")))?;
    let peer = PeerId::from_bytes(&card.peer)
        .map_err(|_| NodeError::PeerMisbehaved("a key card names no valid peer id".into()))?;
    if expected.is_some_and(|e| *e != peer) {
        return Err(NodeError::PeerMisbehaved(format!(
            "a key card for {peer} was handed out as {}'s",
            expected.expect("checked")
        )));
    }
    if !verify(&peer, CARD_DOMAIN, &card.signed_bytes(), &card.signature) {
        return Err(NodeError::PeerMisbehaved(format!(
            "the key card of {peer} is not signed by its key: someone altered it"
        )));
    }
    Ok(VerifiedCard {
        peer,
        key: card.key,
        created_ms: card.created_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_survives_a_restart_and_its_card_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Keypair::generate_ed25519();
        let first = MessageKeys::load_or_create(dir.path(), identity.clone()).unwrap();
        let second = MessageKeys::load_or_create(dir.path(), identity.clone()).unwrap();
        assert_eq!(first.card(), second.card());
        let checked = verify_card(&first.card().encode(), Some(&first.peer_id())).unwrap();
        assert_eq!(checked.key, first.card().key);
    }

    #[test]
    fn a_swapped_key_or_owner_is_refused() {
        let keys = MessageKeys::generate(Keypair::generate_ed25519());
        let mut card = keys.card().clone();
        card.key[0] ^= 1;
        assert!(verify_card(&card.encode(), None).is_err());
        let other = Keypair::generate_ed25519().public().to_peer_id();
        assert!(verify_card(&keys.card().encode(), Some(&other)).is_err());
        let mut stolen = keys.card().clone();
        stolen.peer = other.to_bytes();
        assert!(verify_card(&stolen.encode(), None).is_err());
    }

    #[test]
    fn a_damaged_key_file_is_an_error_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MESSAGE_KEY_FILE), b"junk").unwrap();
        assert!(MessageKeys::load_or_create(dir.path(), Keypair::generate_ed25519()).is_err());
        assert_eq!(
            std::fs::read(dir.path().join(MESSAGE_KEY_FILE)).unwrap(),
            b"junk"
        );
    }
}
