//! `peershare up`: runs the peer daemon in the foreground until Ctrl-C
//! (or SIGTERM), printing the addresses other peers use to reach it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use peershare_node::gate::Policy;
use peershare_node::NodeConfig;

use crate::args::{parse_bytes, Cli, UpArgs};
use crate::client::data_dir;

/// Starts the daemon and waits for a stop signal.
pub async fn run(cli: &Cli, args: &UpArgs) -> Result<()> {
    init_logging();
    let config = config_from_args(cli, args)?;
    let running = peershare_node::start(config)
        .await
        .context("the daemon could not start")?;
    let node = &running.node;
    if cli.json {
        let addrs: Vec<String> = node.host.addrs().iter().map(|a| a.to_string()).collect();
        let out = serde_json::json!({
            "peer_id": node.host.peer_id().to_string(),
            "addrs": addrs,
            "api": running.api_addr.to_string(),
        });
        println!("{out}");
    } else {
        println!("peershare is up: peer {}", node.host.peer_id());
        for addr in node.host.addrs() {
            println!("  reachable at {addr}");
        }
        println!("  local API on http://{} (Ctrl-C stops)", running.api_addr);
    }
    wait_for_stop().await;
    tracing::info!("stopping");
    running.shutdown().await;
    Ok(())
}

fn config_from_args(cli: &Cli, args: &UpArgs) -> Result<NodeConfig> {
    let data = data_dir(cli);
    let downloads = match &args.downloads {
        Some(d) => d.clone(),
        None => directories::UserDirs::new()
            .and_then(|u| u.download_dir().map(|d| d.to_path_buf()))
            .unwrap_or_else(|| data.join("downloads")),
    };
    let mut config = NodeConfig::with_data_dir(data, downloads);
    config.shares = args.share.clone();
    if !args.listen.is_empty() {
        config.listen = args
            .listen
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("--listen {a:?} is not a multiaddr"))
            })
            .collect::<Result<_>>()?;
    }
    if let Some(api) = &cli.api {
        config.api = api
            .parse::<SocketAddr>()
            .with_context(|| format!("--api {api:?} is not HOST:PORT"))?;
    }
    if let Some(d) = &args.data_listen {
        config.data_listen = Some(
            d.parse()
                .with_context(|| format!("--data-listen {d:?} is not HOST:PORT"))?,
        );
    }
    config.policy = args.policy.parse::<Policy>().map_err(|e| anyhow!(e))?;
    config.max_uploads = args.max_uploads;
    config.ask_timeout = Duration::from_secs(args.ask_timeout);
    config.max_upload_rate = match &args.max_upload_rate {
        Some(r) => Some(parse_bytes(r).ok_or_else(|| {
            anyhow!("--max-upload-rate {r:?}: use a byte count like 500K, 8M or 1G")
        })?),
        None => None,
    };
    config.watch = !args.no_watch;
    Ok(config)
}

/// Logs to standard error, filtered by `PEERSHARE_LOG` (default: info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEERSHARE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Returns on Ctrl-C or SIGTERM.
pub async fn wait_for_stop() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
