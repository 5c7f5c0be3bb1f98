//! TLS 1.3 configurations for the data connection, bound to libp2p
//! identities: each side presents the self-signed certificate libp2p-tls
//! makes from its peer key, and each side accepts only a certificate whose
//! libp2p extension proves the expected peer id.
//!
//! We build the configurations ourselves (rather than taking libp2p-tls's)
//! to put AES-GCM first: on CPUs with AES instructions it costs a fraction
//! of ChaCha20-Poly1305 per byte, which decides bulk throughput (see
//! docs/PROTOCOL.md). Certificate generation and parsing are libp2p-tls's.

use std::sync::Arc;

use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use libp2p::PeerId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::NodeError;

/// The cipher suites offered, fastest first on machines with AES instructions.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
        aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
        aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

fn tls_error(e: impl std::fmt::Display) -> NodeError {
    NodeError::Identity(format!("cannot set up TLS for the data connection: {e}"))
}

/// A client configuration that accepts only `remote` as the server.
pub fn client_config(
    keypair: &Keypair,
    remote: PeerId,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, NodeError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertVerifier {
            expected: Some(remote),
        }))
        .with_client_cert_resolver(certified_key(keypair)?);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// A server configuration that requires every client to prove a peer id.
pub fn server_config(keypair: &Keypair, alpn: &[u8]) -> Result<rustls::ServerConfig, NodeError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(Arc::new(PeerCertVerifier { expected: None }))
        .with_cert_resolver(certified_key(keypair)?);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// This peer's certificate and key, presented on every handshake.
///
/// A resolver rather than `with_single_cert`, because rustls would check the
/// certificate with webpki, which refuses libp2p's critical extension.
fn certified_key(keypair: &Keypair) -> Result<Arc<SingleCertAndKey>, NodeError> {
    let (cert, key) = certificate::generate(keypair).map_err(tls_error)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(tls_error)?;
    Ok(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
        vec![cert],
        signing_key,
    ))))
}

/// The peer id proven by a certificate presented in a completed handshake.
pub fn peer_of(cert: &CertificateDer<'_>) -> Result<PeerId, NodeError> {
    certificate::parse(cert)
        .map(|c| c.peer_id())
        .map_err(|e| NodeError::Transfer(format!("bad peer certificate: {e}")))
}

/// The data connection is TLS 1.3 only.
fn tls12_refused() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not allowed".into())
}

/// Accepts exactly one self-signed libp2p certificate, of the expected peer if one is set.
#[derive(Debug)]
struct PeerCertVerifier {
    expected: Option<PeerId>,
}

impl PeerCertVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "expected exactly one certificate".into(),
            ));
        }
        let cert = certificate::parse(end_entity)
            .map_err(|e| rustls::Error::General(format!("not a libp2p certificate: {e}")))?;
        match self.expected {
            Some(expected) if cert.peer_id() != expected => Err(rustls::Error::General(format!(
                "wrong peer: expected {expected}, got {}",
                cert.peer_id()
            ))),
            _ => Ok(()),
        }
    }

    fn verify_signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_signature(dss.scheme, message, dss.signature())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn schemes() -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ED25519,
        ]
    }
}

impl ServerCertVerifier for PeerCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

impl ClientCertVerifier for PeerCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn handshake(
        server_key: &Keypair,
        client_key: &Keypair,
        expect: PeerId,
    ) -> Result<PeerId, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(Arc::new(server_config(server_key, b"t").unwrap()));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            let peer = peer_of(&tls.get_ref().1.peer_certificates().unwrap()[0]).unwrap();
            tls.write_all(b"ok").await.unwrap();
            tls.shutdown().await.unwrap();
            Ok::<_, String>(peer)
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(
            client_config(client_key, expect, b"t").unwrap(),
        ));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("peershare").unwrap();
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(buf, b"ok");
        let cipher = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(cipher, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        server.await.unwrap()
    }

    #[tokio::test]
    async fn both_sides_learn_the_other_peer_id() {
        let (server, client) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let seen = handshake(&server, &client, server.public().to_peer_id())
            .await
            .unwrap();
        assert_eq!(seen, client.public().to_peer_id());
    }

    #[tokio::test]
    async fn a_server_with_another_identity_is_refused() {
        let (server, client, other) = (
            Keypair::generate_ed25519(),
            Keypair::generate_ed25519(),
            Keypair::generate_ed25519(),
        );
        let err = handshake(&server, &client, other.public().to_peer_id())
            .await
            .unwrap_err();
        assert!(err.contains("wrong peer"), "{err}");
    }
}
