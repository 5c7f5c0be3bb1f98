//! `peershare up`: runs the peer daemon in the foreground until Ctrl-C
//! (or SIGTERM), printing the addresses other peers use to reach it.
//!
//! Without `--index URL` (or `--no-index`) it also runs an index in the same
//! process (port 1099), so one command on one machine is a whole network
//! that others join; the daemon then joins that index like any other peer.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use peershare_index::{IndexConfig, RunningIndex};
use peershare_node::gate::Policy;
use peershare_node::{IndexSettings, NodeConfig};

use crate::args::{parse_bytes, Cli, UpArgs};
use crate::client::data_dir;
use crate::index::seconds;

/// Starts the daemon (and its embedded index) and waits for a stop signal.
pub async fn run(cli: &Cli, args: &UpArgs) -> Result<()> {
    init_logging();
    let mut config = config_from_args(cli, args)?;
    let embedded = if config.index.is_none() && !args.no_index {
        let (index, url) = start_embedded_index(&config, args).await?;
        config.index = Some(IndexSettings { url, ca_cert: None });
        index
    } else {
        None
    };
    let running = peershare_node::start(config)
        .await
        .context("the daemon could not start")?;
    let node = &running.node;
    let index_url = node.index.as_ref().map(|l| l.status().url);
    if cli.json {
        let addrs: Vec<String> = node.host.addrs().iter().map(|a| a.to_string()).collect();
        let out = serde_json::json!({
            "peer_id": node.host.peer_id().to_string(),
            "addrs": addrs,
            "api": running.api_addr.to_string(),
            "index": index_url,
            "embedded_index": embedded.as_ref().map(|i| i.url()),
        });
        println!("{out}");
    } else {
        println!("peershare is up: peer {}", node.host.peer_id());
        for addr in node.host.addrs() {
            println!("  reachable at {addr}");
        }
        if let Some(index) = &embedded {
            println!(
                "  index server on {} (others join with --index http://<this machine>:{})",
                index.url(),
                index.addr().port()
            );
        }
        match &index_url {
            Some(url) => println!("  using the index at {url}: `peershare login NAME` to join it"),
            None => println!("  no index (--no-index)"),
        }
        println!("  local API on http://{} (Ctrl-C stops)", running.api_addr);
    }
    wait_for_stop().await;
    tracing::info!("stopping");
    running.shutdown().await;
    if let Some(index) = embedded {
        index.stop().await;
    }
    Ok(())
}

/// Starts the index this daemon embeds; if its port is taken by another
/// index on this machine, the daemon joins that one instead.
async fn start_embedded_index(
    config: &NodeConfig,
    args: &UpArgs,
) -> Result<(Option<RunningIndex>, String)> {
    let mut index = IndexConfig::new(config.data_dir.join("index"));
    if let Some(listen) = &args.index_listen {
        index.listen = listen
            .parse()
            .with_context(|| format!("--index-listen {listen:?} is not HOST:PORT"))?;
    }
    seconds("heartbeat", args.heartbeat, &mut index.heartbeat)?;
    seconds("peer-timeout", args.peer_timeout, &mut index.peer_timeout)?;
    index.admins.extend(args.admins.iter().cloned());
    let port_taken = std::net::TcpListener::bind(index.listen).is_err() && index.listen.port() != 0;
    let listen = index.listen;
    let local = |port: u16| {
        let ip = match listen.ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, port))
    };
    if port_taken {
        tracing::warn!(
            "{} is in use: joining the index already running there instead of starting one",
            index.listen
        );
        return Ok((None, local(index.listen.port())));
    }
    let running = peershare_index::start(index)
        .await
        .context("the embedded index could not start (run with --no-index or --index URL)")?;
    let url = local(running.addr().port());
    Ok((Some(running), url))
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
    config.dht.mdns = !args.no_mdns;
    config.dht.bootstrap = args
        .bootstrap
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("--bootstrap {a:?} is not a multiaddr"))
        })
        .collect::<Result<_>>()?;
    config.dht.replication = args.dht_replication.max(1);
    seconds(
        "provider-ttl",
        Some(args.provider_ttl),
        &mut config.dht.provider_ttl,
    )?;
    seconds("republish", Some(args.republish), &mut config.dht.republish)?;
    config.index = args.index.as_ref().map(|url| IndexSettings {
        url: url.clone(),
        ca_cert: args.index_ca.clone(),
    });
    Ok(config)
}

/// Logs to standard error, filtered by `PEERSHARE_LOG` (default: info).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("PEERSHARE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_kad=error,libp2p_mdns=warn")
        });
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
