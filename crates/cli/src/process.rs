//! What a long-running command (`up`, `index`) shares: logging to standard
//! error and waiting for the signal to stop.

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
