//! Starting and stopping a node in-process, many times on the same ports:
//! every task it spawned ends, and every port it listened on binds again at
//! once, so an embedding program (or a test) can run nodes back to back.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use peershare_node::net::kademlia::DhtSettings;
use peershare_node::NodeConfig;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config(dir: &std::path::Path, ports: [u16; 3]) -> NodeConfig {
    let [p2p, data, api] = ports;
    let share = dir.join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("a.txt"), b"hello").unwrap();
    let mut config = NodeConfig::with_data_dir(dir.join("data"), dir.join("downloads"));
    config.shares = vec![share];
    config.listen = vec![format!("/ip4/127.0.0.1/tcp/{p2p}").parse().unwrap()];
    config.data_listen = Some(SocketAddr::from(([127, 0, 0, 1], data)));
    config.api = SocketAddr::from(([127, 0, 0, 1], api));
    config.dht = DhtSettings {
        mdns: false,
        ..DhtSettings::default()
    };
    config
}

#[test]
fn a_node_started_and_stopped_many_times_leaves_no_task_and_no_listener() {
    peershare_node::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..5 {
        runtime.block_on(async {
            let running = peershare_node::start(config(dir.path(), ports))
                .await
                .unwrap_or_else(|e| panic!("round {round}: the node did not start: {e}"));
            assert_eq!(running.api_addr.port(), ports[2]);
            // Let the first scan and the listeners settle, so there is something to stop.
            let deadline = Instant::now() + Duration::from_secs(10);
            while running.node.shares.is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(
                running.node.shares.len(),
                1,
                "round {round}: the share was scanned"
            );
            running.shutdown().await;
        });
        let metrics = runtime.metrics();
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            metrics.num_alive_tasks(),
            0,
            "round {round}: tasks left after shutdown"
        );
        for port in ports {
            TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
                panic!("round {round}: port {port} still taken after shutdown: {e}")
            });
        }
    }
}
