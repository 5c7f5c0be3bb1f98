use std::path::PathBuf;

use crate::common::Index;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[tokio::test]
async fn served_document_matches_docs_openapi_json() {
    let ix = Index::start().await;
    let served: serde_json::Value = ix
        .http
        .get(format!("{}/openapi.json", ix.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated = serde_json::to_value(peershare_index::api::openapi_document()).unwrap();
    assert_eq!(served, generated);
    for path in [
        "/api/v1/users",
        "/api/v1/peers",
        "/api/v1/search",
        "/api/v1/peers/{peer_id}/files/{file_id}",
        "/api/v1/audit",
        "/api/v1/mail",
        "/api/v1/mail/ack",
        "/api/v1/users/{name}/peers",
        "/api/v1/stats",
    ] {
        assert!(
            served["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());

    // Compared as JSON values, so key order (serde_json's preserve_order) does not matter.
    let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let path = checked_in();
    let current: Option<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if current.as_ref() != Some(&served) {
        if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
            std::fs::write(&path, &text).unwrap();
        } else {
            panic!(
                "{} is missing or out of date with the API; regenerate it with \
                 UPDATE_OPENAPI=1 cargo test --release -p peershare-index openapi",
                path.display()
            );
        }
    }
}
