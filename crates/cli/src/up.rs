//! `peershare up`: runs the peer daemon in the foreground until Ctrl-C
//! (or SIGTERM), printing the addresses other peers use to reach it.
//!
//! Without `--index URL` (or `--no-index`) it also runs an index in the same
//! process (port 1099), so one command on one machine is a whole network
//! that others join; the daemon then joins that index like any other peer.
//!
//! Settings come from flags, then the config file (`--config FILE`, else
//! `config.toml` in the data folder), then defaults.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Source};
use peershare_index::{IndexConfig, RunningIndex};
use peershare_node::transfer::upload::gate::Policy;
use peershare_node::{IndexSettings, NodeConfig, RunningNode};

use crate::args::seconds;
use crate::args::{parse_bytes, parse_rate, Cli, UpArgs};
use crate::client::data_dir;
use crate::process::{init_logging, wait_for_stop};

/// Starts the daemon (and its embedded index) and waits for a stop signal.
pub async fn run(cli: &Cli, args: &UpArgs) -> Result<()> {
    init_logging();
    let args = &with_config_file(cli, args)?;
    let mut config = config_from_args(cli, args)?;
    let embedded = if config.index.is_none() && !args.no_index {
        let (index, url) = start_embedded_index(&config, args).await?;
        config.index = Some(IndexSettings { url, ca_cert: None });
        // Peers met on the LAN hear of an index others can reach, so a second
        // `up` there can say that it starts a separate network.
        config.dht.own_index_port = index
            .as_ref()
            .filter(|i| !i.addr().ip().is_loopback())
            .map(|i| i.addr().port());
        index
    } else {
        None
    };
    let running = peershare_node::start(config)
        .await
        .context("the daemon could not start")?;
    let remote_ui = serve_remote_ui(&running, args).await?;
    let ui_link = running.ui_login_link();
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
            "ui_link": ui_link,
            "remote_ui": remote_ui,
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
        println!("  web UI: {ui_link}");
        println!("    (a one-time login link; `peershare ui` opens a fresh one)");
        if let Some(url) = &remote_ui {
            println!("  web UI for other machines on {url} (UI password required)");
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

/// Serves the web UI on `--ui-listen` too, over HTTPS unless `--ui-insecure`; its URL.
async fn serve_remote_ui(running: &RunningNode, args: &UpArgs) -> Result<Option<String>> {
    let Some(listen) = &args.ui_listen else {
        return Ok(None);
    };
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--ui-listen {listen:?} is not HOST:PORT"))?;
    let tls = match (&args.ui_tls_cert, &args.ui_tls_key) {
        (Some(cert), Some(key)) => Some(peershare_index::tls::server_config(cert, key)?),
        _ if args.ui_insecure => None,
        _ => bail!(
            "--ui-listen serves the web UI to other machines, so it needs HTTPS \
             (--ui-tls-cert FILE --ui-tls-key FILE), or --ui-insecure to send the password \
             and session unencrypted"
        ),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the web UI (--ui-listen)"))?;
    let bound = match tls {
        Some(tls) => {
            running.serve_remote_ui(peershare_index::tls::TlsListener::new(listener, tls)?, true)?
        }
        None => running.serve_remote_ui(listener, false)?,
    };
    let scheme = if args.ui_insecure && args.ui_tls_cert.is_none() {
        "http"
    } else {
        "https"
    };
    Ok(Some(format!("{scheme}://{bound}/")))
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
        let url = local(index.listen.port());
        // Whatever holds the port would receive the person's password: join
        // it only if it proves to be the index this data folder started.
        if let Err(why) = verify_own_index(&url, &index.data_dir).await {
            bail!(
                "{listen} is in use, but not by an index peershare started from this data \
                 folder ({why}), so peershare will not send your password to it.\n\
                 - to use whatever runs there as your index anyway: --index {url}\n\
                 - to run this daemon's own index on another port: --index-listen HOST:PORT\n\
                 - to run without an index: --no-index"
            );
        }
        tracing::warn!(
            "{} is in use by this machine's peershare index: joining it instead of starting one",
            index.listen
        );
        return Ok((None, url));
    }
    let running = peershare_index::start(index)
        .await
        .context("the embedded index could not start (run with --no-index or --index URL)")?;
    let url = local(running.addr().port());
    Ok((Some(running), url))
}

/// Checks that the index at `url` (on this machine) knows the instance
/// secret kept in `index_dir`, i.e. was started from this data folder.
async fn verify_own_index(url: &str, index_dir: &Path) -> std::result::Result<(), String> {
    use peershare_index::server::{instance_proof, read_instance_secret, INSTANCE_PROOF_PATH};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let secret = read_instance_secret(index_dir)
        .ok_or_else(|| format!("no index was ever started in {}", index_dir.display()))?;
    let nonce = blake3::hash(&rand::random::<[u8; 32]>())
        .to_hex()
        .to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let ask = async {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
        let request = format!(
            "GET {INSTANCE_PROOF_PATH}?nonce={nonce} HTTP/1.1\r\nHost: {addr}\r\n\
             Connection: close\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.take(64 * 1024).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .map_err(|_| "it did not answer in time".to_string())?
        .map_err(|e| format!("it could not be asked: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let proof = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v["proof"].as_str().map(str::to_string));
    match proof {
        Some(p) if p == instance_proof(&secret, &nonce) => Ok(()),
        Some(_) => Err("it gave a wrong proof of identity".into()),
        None => Err("it gave no proof of identity".into()),
    }
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
        config.listen = multiaddrs("listen", &args.listen)?;
    }
    if let Some(api) = &cli.api {
        config.api = api
            .parse::<SocketAddr>()
            .with_context(|| format!("--api {api:?} is not HOST:PORT"))?;
        // The local API trusts whoever holds the token on this machine; its
        // Host check assumes only local programs can reach it.
        anyhow::ensure!(
            config.api.ip().is_loopback(),
            "--api {api} is not a loopback address: the local API listens on this machine \
            only (e.g. --api 127.0.0.1:1101); to use the web UI from other machines, use \
            --ui-listen HOST:PORT, which requires a UI password"
        );
    }
    if let Some(d) = &args.data_listen {
        config.data_listen = Some(
            d.parse()
                .with_context(|| format!("--data-listen {d:?} is not HOST:PORT"))?,
        );
    }
    if let Some(policy) = &args.policy {
        config.policy = Some(policy.parse::<Policy>().map_err(|e| anyhow!(e))?);
    }
    if let Some(n) = args.max_uploads {
        config.max_uploads = Some(n);
    }
    if let Some(n) = args.max_upload_peers {
        anyhow::ensure!(n > 0, "--max-upload-peers must be at least 1");
        config.max_upload_peers = Some(n);
    }
    if let Some(n) = args.max_sources {
        anyhow::ensure!(n > 0, "--max-sources must be at least 1");
        config.max_sources = n;
    }
    seconds("ask-timeout", args.ask_timeout, &mut config.ask_timeout)?;
    if let Some(days) = args.letter_ttl_days {
        anyhow::ensure!(
            (1..=30).contains(&days),
            "--letter-ttl-days must be between 1 and 30"
        );
        config.letter_ttl = std::time::Duration::from_secs(days * 24 * 3600);
    }
    config.read_receipts = !args.no_read_receipts;
    if let Some(k) = args.mailbox_replicas {
        anyhow::ensure!(k > 0, "--mailbox-replicas must be at least 1");
        config.mailbox_replicas = k;
    }
    seconds(
        "mailbox-republish",
        args.mailbox_republish,
        &mut config.mailbox_republish,
    )?;
    seconds(
        "source-patience",
        args.source_patience,
        &mut config.source_patience,
    )?;
    config.max_upload_rate = parse_rate("max-upload-rate", args.max_upload_rate.as_deref())?;
    config.max_download_rate = parse_rate("max-download-rate", args.max_download_rate.as_deref())?;
    config.watch = !args.no_watch;
    config.dht.mdns = !args.no_mdns;
    config.dht.bootstrap = multiaddrs("bootstrap", &args.bootstrap)?;
    config.nat.port_mapping = !args.no_port_mapping;
    config.nat.relays = multiaddrs("relay", &args.relays)?;
    config.nat.relay_service.enabled = !args.no_relay_service;
    config.nat.relay_service.bulk = args.relay_bulk;
    let service = &mut config.nat.relay_service;
    if let Some(limit) = &args.relay_bulk_limit {
        service.bulk_bytes = parse_bytes(limit).with_context(|| {
            format!("--relay-bulk-limit {limit:?} is not a size (e.g. 4G, 500M, or 0 for none)")
        })?;
    }
    service.max_reservations = args.relay_slots.unwrap_or(service.max_reservations);
    service.max_circuits = args.relay_circuits.unwrap_or(service.max_circuits);
    if let Some(k) = args.dht_replication {
        config.dht.replication = k.max(1);
    }
    seconds(
        "provider-ttl",
        args.provider_ttl,
        &mut config.dht.provider_ttl,
    )?;
    seconds("republish", args.republish, &mut config.dht.republish)?;
    config.index = args.index.as_ref().map(|url| IndexSettings {
        url: url.clone(),
        ca_cert: args.index_ca.clone(),
    });
    Ok(config)
}

/// The values of the repeatable option `--flag`, each parsed as a multiaddr.
fn multiaddrs<T: std::str::FromStr>(flag: &str, values: &[String]) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    values
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("--{flag} {a:?} is not a multiaddr"))
        })
        .collect()
}

/// `args` with what the flags (and the environment variables clap reads)
/// left unset taken from the config file, if there is one. Keys are the
/// long option names with `_`; relative paths in the file are relative to
/// the file; an index chosen on the command line (or none) wins over the
/// file's choice.
fn with_config_file(cli: &Cli, args: &UpArgs) -> Result<UpArgs> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None => {
            let default = data_dir(cli).join("config.toml");
            if !default.exists() {
                return Ok(args.clone());
            }
            default
        }
    };
    if !path.is_file() {
        anyhow::bail!(
            "cannot read the config file {}: there is no such file",
            path.display()
        );
    }
    layered(args, &path).with_context(|| {
        format!(
            "{} is not a valid peershare config (keys are the options of `peershare up`, with _ for -)",
            path.display()
        )
    })
}

/// The config file at `path` under the flags in `args`.
fn layered(args: &UpArgs, path: &Path) -> Result<UpArgs> {
    let figment = Figment::from(Toml::file_exact(path)).merge(Serialized::defaults(args));
    let mut settings: UpArgs = figment.extract()?;
    let from_file = |key: &str| {
        figment
            .find_metadata(key)
            .is_some_and(|m| matches!(m.source, Some(Source::File(_))))
    };
    let base = path.parent().unwrap_or(Path::new("."));
    if from_file("share") {
        settings.share = settings.share.iter().map(|p| base.join(p)).collect();
    }
    if from_file("downloads") {
        settings.downloads = settings.downloads.map(|p| base.join(p));
    }
    if from_file("index_ca") {
        settings.index_ca = settings.index_ca.map(|p| base.join(p));
    }
    if args.index.is_some() || args.no_index || args.index_listen.is_some() {
        settings.index = args.index.clone();
        settings.no_index = args.no_index;
    }
    settings.config = Some(path.to_path_buf());
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Layers `text`, written as a config file at /…/etc/peershare.toml, under `flags`.
    fn layer(flags: &UpArgs, text: &str) -> (Result<UpArgs>, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let path = etc.join("peershare.toml");
        std::fs::write(&path, text).unwrap();
        let result = layered(flags, &path);
        (result, etc)
    }

    const FILE: &str = r#"
        share = ["music", "/srv/films"]
        bootstrap = ["/ip4/10.0.0.1/tcp/1100/p2p/12D3KooWLxeMFhSVvLMqxg1DwSBMDiMB8uh93yBewqQpY4aytK4w"]
        no_mdns = true
        dht_replication = 8
        policy = "ask"
        index = "http://10.0.0.1:1099"
        admin = ["root"]
    "#;

    #[test]
    fn the_file_fills_what_flags_leave_unset_and_flags_win() {
        let flags = UpArgs {
            policy: Some("accept".into()),
            ..UpArgs::default()
        };
        let (merged, etc) = layer(&flags, FILE);
        let merged = merged.expect("a valid file");
        assert_eq!(
            merged.share,
            vec![etc.join("music"), PathBuf::from("/srv/films")],
            "relative paths are relative to the file"
        );
        assert_eq!(merged.bootstrap.len(), 1);
        assert!(merged.no_mdns);
        assert_eq!(merged.dht_replication, Some(8));
        assert_eq!(merged.admins, ["root"]);
        assert_eq!(merged.policy.as_deref(), Some("accept"), "the flag wins");
        assert_eq!(merged.index.as_deref(), Some("http://10.0.0.1:1099"));

        let flags = UpArgs {
            no_index: true,
            share: vec![PathBuf::from("here")],
            bootstrap: vec!["/ip4/127.0.0.1/tcp/1/p2p/x".into()],
            ..UpArgs::default()
        };
        let (merged, _) = layer(&flags, FILE);
        let merged = merged.expect("a valid file");
        assert!(merged.index.is_none(), "--no-index beats the file's index");
        assert!(merged.no_index);
        assert_eq!(merged.bootstrap, vec!["/ip4/127.0.0.1/tcp/1/p2p/x"]);
        assert_eq!(
            merged.share,
            vec![PathBuf::from("here")],
            "a flag's path is kept as given"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let (wrong, _) = layer(&UpArgs::default(), "bootstrap_peers = []");
        let err = wrong.expect_err("a misspelt key must not be ignored");
        assert!(format!("{err:#}").contains("bootstrap_peers"), "{err:#}");
        let (wrong, _) = layer(&UpArgs::default(), "max_uploads = \"four\"");
        assert!(wrong.is_err(), "a string where a number belongs");
    }
}
