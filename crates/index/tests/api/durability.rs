use libp2p_identity::Keypair;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{file, id_of, ids, Index, PASSWORD};

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let mut ix = Index::start().await;
    let root = ix.user("root").await;
    let alice = ix.user("alice").await;
    let key = Keypair::generate_ed25519();
    let peer = ix.join(&alice, &key, json!([file("kept.mp4", 42)])).await;
    let (status, _) = ix
        .call(
            Method::POST,
            &format!("/peers/{peer}/files"),
            Some(&alice),
            Some(json!({"files": [file("added later.txt", 7)]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = ix.get("/audit?limit=1000", &root).await;

    ix.restart().await;

    // Accounts and tokens.
    assert_eq!(ix.get("/users", &alice).await.0, StatusCode::OK);
    assert_eq!(ix.login("alice", PASSWORD).await.0, StatusCode::CREATED);
    // Peers and files (the peer is still within its timeout).
    assert_eq!(
        ids(&ix.search(&alice, "q=kept.mp4&mode=exact").await),
        vec![id_of("kept.mp4")]
    );
    assert_eq!(ix.search(&alice, "q=added%20later").await["total"], 1);
    // Ownership: the peer id is still alice's.
    let bob = ix.user("bob").await;
    let (status, _) = ix.join_signed(&bob, &key, &key, json!([])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The audit log kept every record written before the restart.
    let (_, after) = ix.get("/audit?limit=1000", &root).await;
    let before_ids: Vec<_> = before["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    let after_ids: Vec<_> = after["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert!(before_ids.iter().all(|id| after_ids.contains(id)));
    assert!(before_ids.len() >= 6, "{before}");
    // The database file is where the config says.
    if !crate::POSTGRES {
        assert!(ix.config.database_path().exists());
    }
}

/// Set in the child process that runs the index for the crash test.
const CHILD_DIR: &str = "PEERSHARE_INDEX_CRASH_CHILD_DIR";
/// Set with [`CHILD_DIR`] when the child's index keeps its data in PostgreSQL.
const CHILD_DATABASE: &str = "PEERSHARE_INDEX_CRASH_CHILD_DATABASE";

/// Not a test on its own: when the crash test starts this binary again with
/// [`CHILD_DIR`] set, this runs an index in that folder until it is killed.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = std::path::PathBuf::from(dir);
        let mut config = crate::common::config(dir.clone());
        config.database = std::env::var(CHILD_DATABASE).ok();
        let running = peershare_index::start(config).await.unwrap();
        // Told through a file: the test harness may capture this process's stdout.
        std::fs::write(dir.join("addr.tmp"), running.addr().to_string()).unwrap();
        std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).unwrap();
        std::future::pending::<()>().await;
    });
}

/// Runs an index in another process (this test binary again, see
/// [`crash_child`]) over `data` (and `database`, on PostgreSQL); returns it
/// and its address once it listens.
pub(crate) async fn spawn_index_process(
    data: &std::path::Path,
    database: Option<&str>,
) -> (std::process::Child, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap());
    if let Some(database) = database {
        child.env(CHILD_DATABASE, database);
    }
    let mut child = child
        .args(["--exact", "durability::crash_child", "--test-threads=1"])
        .env(CHILD_DIR, data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr_file = data.join("addr");
    let started = std::time::Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            break a;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the index child exited before listening: {status}");
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("the index child did not start listening within 30 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    (child, addr)
}

#[tokio::test]
async fn kill_9_during_a_burst_loses_nothing_acknowledged() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("index");
    let mut config = crate::common::config(data.clone());
    let database = if crate::POSTGRES {
        Some(crate::postgres::fresh_database().await)
    } else {
        None
    };
    config.database = database.clone();
    let (mut child, addr) = spawn_index_process(&data, database.as_deref()).await;
    let base = format!("http://{addr}/api/v1");
    let http = crate::common::http_client();

    // One joined peer to publish to.
    let ix_view = |path: &str| format!("{base}{path}");
    assert_eq!(
        http.post(ix_view("/users"))
            .json(&json!({"name": "pub", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let session: serde_json::Value = http
        .post(ix_view("/sessions"))
        .json(&json!({"name": "pub", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_string();
    let key = Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id().to_string();
    let ch: serde_json::Value = http
        .post(ix_view("/peers/challenge"))
        .bearer_auth(&token)
        .json(&json!({"peer_id": peer_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sig = key
        .sign(ch["message"].as_str().unwrap().as_bytes())
        .unwrap();
    let joined = http
        .post(ix_view("/peers"))
        .bearer_auth(&token)
        .json(&json!({"peer_id": peer_id, "addrs": [], "files": [],
            "public_key": crate::common::hex(&key.public().encode_protobuf()),
            "signature": crate::common::hex(&sig)}))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), StatusCode::OK);

    // A burst of registrations and publishes; kill -9 the index in the middle of it.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..400 {
        let (http, base, token, peer_id, acked) = (
            http.clone(),
            base.clone(),
            token.clone(),
            peer_id.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ok = if i % 2 == 0 {
                http.post(format!("{base}/users"))
                    .json(&json!({"name": format!("user{i}"), "password": PASSWORD}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::CREATED)
            } else {
                http.post(format!("{base}/peers/{peer_id}/files"))
                    .bearer_auth(&token)
                    .json(&json!({"files": [file(&format!("burst {i}.bin"), i)]}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK)
            };
            if ok {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            (i, ok)
        }));
    }
    let burst_started = std::time::Instant::now();
    while acked.load(Ordering::SeqCst) < 20
        && burst_started.elapsed() < std::time::Duration::from_secs(30)
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        if ok {
            acknowledged.push(i);
        }
    }
    assert!(acknowledged.len() >= 20);
    assert!(
        acknowledged.len() < 400,
        "the kill came too late to test anything"
    );

    // A new index on the same folder (or database) has every acknowledged write.
    let running = peershare_index::start(config).await.unwrap();
    let base = format!("{}/api/v1", running.url());
    let session: serde_json::Value = http
        .post(format!("{base}/sessions"))
        .json(&json!({"name": "pub", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap();
    let users: serde_json::Value = http
        .get(format!("{base}/users?all=true"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    let files: serde_json::Value = http
        .get(format!("{base}/users/pub/files?all=true&limit=5000"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let files: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for i in acknowledged {
        if i % 2 == 0 {
            assert!(
                users.contains(&format!("user{i}").as_str()),
                "acknowledged user{i} was lost"
            );
        } else {
            assert!(
                files.contains(&format!("burst {i}.bin").as_str()),
                "acknowledged burst {i}.bin was lost"
            );
        }
    }
    running.stop().await;
}
