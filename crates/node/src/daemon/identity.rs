//! The peer's identity: an ed25519 key created on first start and kept in
//! the data folder, so the peer id never changes across restarts.
//!
//! This module must never overwrite an existing key: a key file that cannot
//! be read is an error for the person to look at, not a reason to make a
//! new identity.

use std::path::Path;

use libp2p::identity::Keypair;

use crate::NodeError;

/// The key file's name inside the data folder.
pub const KEY_FILE: &str = "identity.key";

/// Loads the peer's key from `data_dir`, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<Keypair, NodeError> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            NodeError::Identity(format!(
                "{} is not a valid key ({e}); move it away to create a new identity",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| NodeError::Identity(e.to_string()))?;
            crate::private_file::write_private(&path, &bytes)?;
            Ok(key)
        }
        Err(e) => Err(NodeError::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
    }

    #[test]
    fn corrupt_key_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        assert!(load_or_create(dir.path()).is_err());
        assert_eq!(
            std::fs::read(dir.path().join(KEY_FILE)).unwrap(),
            b"garbage"
        );
    }
}
