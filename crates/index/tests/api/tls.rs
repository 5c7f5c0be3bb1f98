use std::path::{Path, PathBuf};
use std::sync::Arc;

use peershare_index::{start, IndexError};
use reqwest::StatusCode;

use crate::common::{config, Index};

/// A self-signed certificate for 127.0.0.1 written as PEM files into `dir`;
/// returns the certificate and key paths and the certificate (DER).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (cert, key, made.cert.der().to_vec())
}

/// An HTTPS client trusting only `cert`.
fn client_trusting(cert: Vec<u8>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.into()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// An index serving HTTPS with a fresh self-signed certificate, and a client
/// trusting it; the certificate's folder lives as long as the second value.
pub async fn start_https() -> (Index, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(certs.path(), "index");
    let ix = Index::start_with_client(
        |c| {
            c.tls_cert = Some(cert.clone());
            c.tls_key = Some(key.clone());
        },
        client_trusting(der),
    )
    .await;
    (ix, certs)
}

#[tokio::test]
async fn accounts_work_over_https_and_plain_http_is_refused() {
    let (ix, certs) = start_https().await;
    assert!(ix.base.starts_with("https://127.0.0.1:"), "{}", ix.base);

    // Register, log in and use the token, all over TLS.
    let token = ix.user("alice").await;
    let (status, users) = ix.get("/users?all=true", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["users"][0]["name"], "alice");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = ix.base.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/openapi.json"))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");
    // Nor does a client that does not trust the certificate.
    let (_, _, other) = self_signed(certs.path(), "other");
    let answer = client_trusting(other)
        .get(format!("{}/openapi.json", ix.base))
        .send()
        .await;
    assert!(answer.is_err(), "an untrusted certificate was accepted");
}

#[tokio::test]
async fn unusable_certificates_and_keys_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path(), "a");
    let (_, other_key, _) = self_signed(dir.path(), "b");
    let with = |cert: Option<&Path>, key: Option<&Path>| {
        let mut c = config(dir.path().join("index"));
        c.tls_cert = cert.map(Path::to_path_buf);
        c.tls_key = key.map(Path::to_path_buf);
        c
    };
    let missing = dir.path().join("missing.pem");

    let e = start(with(Some(&missing), Some(&key))).await.unwrap_err();
    assert!(
        matches!(e, IndexError::Tls { ref path, .. } if path == &missing),
        "{e}"
    );
    assert!(e.to_string().contains("missing.pem"), "{e}");
    // A key file given as the certificate, and the other way round.
    let e = start(with(Some(&key), Some(&key))).await.unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = start(with(Some(&cert), Some(&cert))).await.unwrap_err();
    assert!(e.to_string().contains("private key"), "{e}");
    // A key that belongs to another certificate.
    let e = start(with(Some(&cert), Some(&other_key)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
    // Half a configuration.
    let e = start(with(Some(&cert), None)).await.unwrap_err();
    assert!(matches!(e, IndexError::TlsHalfConfigured), "{e}");
}
