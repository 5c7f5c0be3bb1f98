//! `peershare index`: runs an index server alone in the foreground until
//! Ctrl-C (or SIGTERM). Settings come from a TOML file, the environment and
//! flags, later ones winning; the index itself lives in `peershare-index`.

use anyhow::{Context, Result};
use peershare_index::IndexConfig;

use crate::args::{seconds, Cli, IndexArgs};
use crate::client::default_data_dir;
use crate::process::{init_logging, wait_for_stop};

/// Starts the index and waits for a stop signal.
pub async fn run(cli: &Cli, args: &IndexArgs) -> Result<()> {
    init_logging();
    let config = config_from_args(cli, args)?;
    // Checked again (and refused with the same message) by start.
    let data = config
        .store_location()
        .map(|location| location.to_string())
        .unwrap_or_default();
    let running = peershare_index::start(config)
        .await
        .context("the index could not start")?;
    if cli.json {
        println!("{}", serde_json::json!({ "url": running.url() }));
    } else {
        println!(
            "peershare index is up on {}, data in {data} (Ctrl-C stops)",
            running.url()
        );
    }
    wait_for_stop().await;
    tracing::info!("stopping the index");
    running.stop().await;
    Ok(())
}

fn config_from_args(cli: &Cli, args: &IndexArgs) -> Result<IndexConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not a valid index config", path.display()))?
        }
        None => IndexConfig::new(default_data_dir().join("index")),
    };
    if let Some(dir) = args.index_data_dir.as_ref().or(cli.data_dir.as_ref()) {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.listen = listen
            .parse()
            .with_context(|| format!("--listen {listen:?} is not HOST:PORT"))?;
    }
    seconds("heartbeat", args.heartbeat, &mut config.heartbeat)?;
    seconds("peer-timeout", args.peer_timeout, &mut config.peer_timeout)?;
    seconds(
        "token-lifetime",
        args.token_lifetime,
        &mut config.token_lifetime,
    )?;
    config.admins.extend(args.admins.iter().cloned());
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert.clone();
        config.tls_key = args.tls_key.clone();
    }
    if let Some(n) = args.registrations_per_minute {
        config.registrations_per_minute = n;
    }
    if let Some(n) = args.search_slots {
        anyhow::ensure!(n > 0, "--search-slots must be at least 1");
        config.search_slots = n;
    }
    if let Some(n) = args.search_queue {
        config.search_queue = n;
    }
    if let Some(n) = args.max_files {
        config.max_files = n;
    }
    if let Some(n) = args.max_files_per_user {
        config.max_files_per_user = n;
    }
    if let Some(mib) = args.memory_limit_mib {
        config.memory_limit_mib = mib;
    }
    if let Some(url) = &args.database {
        config.database = Some(url.clone());
    }
    if let Some(days) = args.audit_retention_days {
        config.audit_retention_days = days;
    }
    if let Some(days) = args.mail_ttl_days {
        anyhow::ensure!(
            (1..=365).contains(&days),
            "--mail-ttl-days must be between 1 and 365"
        );
        config.mail_ttl = std::time::Duration::from_secs(days * 24 * 3600);
    }
    Ok(config)
}
