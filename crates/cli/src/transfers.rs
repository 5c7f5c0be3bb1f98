//! The transfer commands: `get` (start, attach, or find the file already
//! here, then follow it on the events stream with a progress bar, and ask
//! what to do on Ctrl-C), `downloads` (list, watch, pause, resume, cancel,
//! remove, clean) and `uploads`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use peershare_node::views::{
    CleanReport, DataChannel, DataPath, DownloadState, DownloadView, EventKind, GetAnswer,
    GetRequest, SourceFound, SourcePhase, SourceView, UploadView,
};

use crate::args::{parse_rate, Cli, DownloadAction};
use crate::client::{DaemonClient, EventStream};
use crate::output::{connection_path, human_bytes, human_duration, print_json_or, who};

/// How `get` was asked to behave.
pub struct GetOptions {
    /// Return once the download started.
    pub no_wait: bool,
    /// Cancel on Ctrl-C instead of asking.
    pub cancel_on_exit: bool,
    /// Handle Ctrl-C here (ask or cancel, then end the process); off in the
    /// shell, which stops the command itself and leaves the download running.
    pub handle_ctrl_c: bool,
}

/// `peershare get`.
pub async fn get(
    cli: &Cli,
    client: &DaemonClient,
    request: GetRequest,
    options: GetOptions,
) -> Result<()> {
    // Subscribed before asking, so no change of the new download can be missed.
    let events = match options.no_wait {
        true => None,
        false => Some(client.events().await?),
    };
    let answer: GetAnswer = client.post("/downloads", &request).await?;
    let download = match &answer {
        GetAnswer::AlreadyHere { file_id, path } => {
            return print_json_or(cli, &answer, || {
                format!(
                    "already here: {path} (id {file_id}); nothing copied \
                     (`peershare get --again` copies it anyway)"
                )
            })
        }
        GetAnswer::Attached { download } => {
            if !cli.json {
                eprintln!(
                    "{} is already downloading (download {}); following it",
                    download.record.name, download.record.id
                );
            }
            download.clone()
        }
        GetAnswer::Started { download } => download.clone(),
    };
    let Some(events) = events else {
        return print_json_or(cli, &answer, || {
            format!(
                "download {} started: {}",
                download.record.id, download.record.name
            )
        });
    };
    let last = follow(cli, client, events, download, &options).await?;
    match last.record.state {
        DownloadState::Done => print_json_or(cli, &last, || {
            format!(
                "saved {} ({}) to {}",
                last.record.name,
                human_bytes(last.record.size),
                last.record.path.as_deref().unwrap_or("-")
            )
        }),
        DownloadState::Paused => print_json_or(cli, &last, || {
            format!(
                "download {} was paused; `peershare downloads resume {}` continues it",
                last.record.id, last.record.id
            )
        }),
        _ => {
            if cli.json {
                println!("{}", serde_json::to_string(&last)?);
            }
            bail!(
                "download {} {}: {}",
                last.record.id,
                last.record.state.as_str(),
                last.record.error.as_deref().unwrap_or("no reason given")
            )
        }
    }
}

/// Shows a download's progress from the events stream until it ends (done,
/// failed, paused or cancelled), handling Ctrl-C on the way.
async fn follow(
    cli: &Cli,
    client: &DaemonClient,
    mut events: EventStream,
    start: DownloadView,
    options: &GetOptions,
) -> Result<DownloadView> {
    let id = start.record.id;
    let bar = progress_bar(cli, &start);
    let mut current = start;
    let mut told: Option<String> = None;
    loop {
        if has_ended(&current) {
            bar.finish_and_clear();
            return Ok(current);
        }
        bar.set_position(current.verified_bytes);
        bar.set_message(bar_message(&current));
        // Why the download waits goes to stderr as a line too: the bar is
        // hidden when stderr is not a terminal, and a wait with no reason
        // looks like a hang.
        if let Some(reason) = waiting_reason(&current) {
            if !cli.json && told.as_deref() != Some(reason.as_str()) {
                bar.suspend(|| eprintln!("download {id} waits: {reason}"));
                told = Some(reason);
            }
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => match event.kind {
                    EventKind::DownloadProgress(p) if p.id == id => {
                        current.verified_bytes = p.verified_bytes;
                        current.fetched_bytes = p.fetched_bytes;
                        current.peers = p.peers;
                    }
                    EventKind::DownloadChanged { download } if download.record.id == id => {
                        current = download;
                    }
                    EventKind::DownloadRemoved { id: gone } if gone == id => {
                        bar.finish_and_clear();
                        bail!("download {id} was removed while it was followed");
                    }
                    _ => {}
                },
                // The stream ended (the daemon cut a slow reader off, or it stopped):
                // subscribe again, then read the state once so nothing is missed.
                _ => {
                    events = client.events().await?;
                    current = client.get(&format!("/downloads/{id}")).await?;
                }
            },
            _ = ctrl_c(options.handle_ctrl_c) => {
                bar.finish_and_clear();
                interrupted(cli, client, id, options.cancel_on_exit).await?;
            }
        }
    }
}

/// Ctrl-C when `handle` is on; never otherwise.
async fn ctrl_c(handle: bool) {
    if !handle || tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn has_ended(d: &DownloadView) -> bool {
    !d.running && d.record.state != DownloadState::Active && d.record.state != DownloadState::Queued
}

/// Ctrl-C while following: keep the download going, or cancel it; either way say so and exit.
async fn interrupted(
    cli: &Cli,
    client: &DaemonClient,
    id: i64,
    cancel_on_exit: bool,
) -> Result<()> {
    let ask = !cancel_on_exit && std::io::stdin().is_terminal();
    let keep = ask && ask_keep().await;
    if keep {
        let out = serde_json::json!({ "id": id, "interrupted": true, "kept": true });
        print_json_or(cli, &out, || {
            format!(
                "download {id} goes on in the background; `peershare downloads` shows it, \
                 `peershare downloads cancel {id}` stops it"
            )
        })?;
        std::process::exit(130);
    }
    let cancelled: DownloadView = client
        .post(&format!("/downloads/{id}/cancel"), &serde_json::json!({}))
        .await?;
    let out =
        serde_json::json!({ "id": id, "interrupted": true, "kept": false, "download": cancelled });
    print_json_or(cli, &out, || {
        format!("download {id} cancelled and its partial file deleted")
    })?;
    std::process::exit(130);
}

/// Asks on the terminal; Enter or a second Ctrl-C means yes.
async fn ask_keep() -> bool {
    eprint!("keep downloading in the background? [Y/n] ");
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        line = read => !matches!(
            line.ok().and_then(|l| l.ok()).map(|l| l.trim().to_ascii_lowercase()).as_deref(),
            Some("n" | "no")
        ),
        _ = tokio::signal::ctrl_c() => true,
    }
}

fn progress_bar(cli: &Cli, download: &DownloadView) -> ProgressBar {
    if cli.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(download.record.size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Why a download that is not moving waits: queued (with its reason), or
/// running with no source sending and one that went silent or has not answered.
fn waiting_reason(d: &DownloadView) -> Option<String> {
    if d.record.state == DownloadState::Queued {
        return Some(d.record.error.clone().unwrap_or_else(|| "queued".into()));
    }
    if d.peers.iter().any(|p| p.phase == SourcePhase::Fetching) {
        return None;
    }
    d.peers
        .iter()
        .filter(|p| matches!(p.phase, SourcePhase::Silent | SourcePhase::Asking))
        .find_map(|p| {
            let who = p.user.as_deref().unwrap_or(&p.peer_id);
            p.note.as_ref().map(|note| format!("{who}: {note}"))
        })
}

fn bar_message(d: &DownloadView) -> String {
    match d.record.state {
        DownloadState::Queued => format!(
            "{} (queued: {})",
            d.record.name,
            d.record.error.as_deref().unwrap_or("waiting")
        ),
        _ => d.record.name.clone(),
    }
}

/// `peershare downloads [--watch] [ACTION]`.
pub async fn downloads(
    cli: &Cli,
    client: &DaemonClient,
    watch: bool,
    action: Option<&DownloadAction>,
) -> Result<()> {
    let Some(action) = action else {
        return match watch {
            true => watch_downloads(cli, client).await,
            false => list(cli, client).await,
        };
    };
    let (verb, id) = match action {
        DownloadAction::Pause { id } => ("pause", *id),
        DownloadAction::Resume { id } => ("resume", *id),
        DownloadAction::Cancel { id } => ("cancel", *id),
        DownloadAction::Rate { id, rate } => {
            let max_rate = parse_rate("rate", Some(rate))?;
            let body = serde_json::json!({ "max_rate": max_rate });
            let d: DownloadView = client.post(&format!("/downloads/{id}/rate"), &body).await?;
            return print_json_or(cli, &d, || match d.record.max_rate {
                Some(r) => format!(
                    "download {id} ({}) limited to {}/s",
                    d.record.name,
                    human_bytes(r)
                ),
                None => format!("download {id} ({}) has no limit of its own", d.record.name),
            });
        }
        DownloadAction::Remove { id } => {
            client.delete(&format!("/downloads/{id}")).await?;
            let out = serde_json::json!({ "id": id, "removed": true });
            return print_json_or(cli, &out, || {
                format!("download {id} forgotten (the file, if any, stays)")
            });
        }
        DownloadAction::Clean => {
            let report: CleanReport = client
                .post("/downloads/clean", &serde_json::json!({}))
                .await?;
            return print_json_or(cli, &report, || match report.removed.len() {
                0 => "no orphaned partial files".into(),
                n => format!(
                    "deleted {n} orphaned partial file{} ({})",
                    if n == 1 { "" } else { "s" },
                    human_bytes(report.bytes_freed)
                ),
            });
        }
    };
    let d: DownloadView = client
        .post(&format!("/downloads/{id}/{verb}"), &serde_json::json!({}))
        .await?;
    print_json_or(cli, &d, || {
        let what = match verb {
            "pause" => "paused; its verified pieces are kept",
            "resume" if d.running => "resumed",
            "resume" => "not running (see `peershare downloads`)",
            _ => "cancelled and its partial file deleted",
        };
        format!("download {id} ({}) {what}", d.record.name)
    })
}

async fn list(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let list: Vec<DownloadView> = client.get("/downloads").await?;
    print_json_or(cli, &list, || table(&list))
}

/// The downloads as a table for people.
fn table(list: &[DownloadView]) -> String {
    if list.is_empty() {
        return "no downloads".into();
    }
    let mut out = format!(
        "{:>4}  {:<9}  {:>6}  {:>10}  {:>11}  NAME\n",
        "ID", "STATE", "DONE", "SIZE", "RATE"
    );
    for d in list {
        let rate = match d.running && d.rate_bytes_per_sec > 0 {
            true => format!("{}/s", human_bytes(d.rate_bytes_per_sec)),
            false => "-".into(),
        };
        out += &format!(
            "{:>4}  {:<9}  {:>5.1}%  {:>10}  {:>11}  {}{}\n",
            d.record.id,
            d.record.state.as_str(),
            percent(d),
            human_bytes(d.record.size),
            rate,
            d.record.name,
            d.record
                .error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
        for peer in &d.peers {
            out += &format!("        from {}\n", source_line(peer));
        }
    }
    out.trim_end().to_string()
}

/// One source of a download for people: who, where it stands, what it sent.
fn source_line(peer: &SourceView) -> String {
    let phase = match peer.phase {
        SourcePhase::Asking => "asking",
        SourcePhase::Fetching => "fetching",
        SourcePhase::Busy => "busy",
        SourcePhase::Silent => "silent",
        SourcePhase::Dropped => "dropped",
        SourcePhase::Done => "done",
    };
    let found = match peer.found_by {
        SourceFound::Named => "named",
        SourceFound::Search => "found by search",
        SourceFound::Lookup => "found by a later lookup",
        SourceFound::Hint => "named by another source",
        SourceFound::Asked => "asked us for it",
    };
    let who = match &peer.user {
        Some(user) => format!("{user} ({})", peer.peer_id),
        None => peer.peer_id.clone(),
    };
    let mut line = format!(
        "{who} [{found}] {phase}: {} pieces, {}",
        peer.pieces,
        human_bytes(peer.bytes)
    );
    if peer.rate_bytes_per_sec > 0 {
        line += &format!(" at {}/s", human_bytes(peer.rate_bytes_per_sec));
    }
    if let Some(path) = &peer.path {
        line += &format!(", {}", data_path(path));
    }
    if let Some(note) = &peer.note {
        line += &format!(" ({note})");
    }
    line
}

/// How a transfer's data travels, in a few words: "hole-punched, stream".
fn data_path(path: &DataPath) -> String {
    let channel = match path.channel {
        DataChannel::Tcp => "data connection",
        DataChannel::Stream => "stream",
    };
    let mut text = format!("{} {channel}", connection_path(path.connection));
    if let Some(relay) = &path.relay {
        text += &format!(" via relay {relay}");
    }
    text
}

fn percent(d: &DownloadView) -> f64 {
    match d.record.size {
        0 => 100.0,
        size => d.verified_bytes as f64 * 100.0 / size as f64,
    }
}

/// Least time between two printed progress lines of one download.
const WATCH_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Prints the list, then one line per change as the events stream brings it.
async fn watch_downloads(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let mut events = client.events().await?;
    list(cli, client).await?;
    let mut last_line: std::collections::HashMap<i64, Instant> = Default::default();
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(event) = event else {
            bail!("the daemon closed the events stream; run `peershare downloads --watch` again");
        };
        let event = event?;
        let line = match &event.kind {
            EventKind::DownloadProgress(p) => {
                let due = last_line
                    .get(&p.id)
                    .is_none_or(|t| t.elapsed() >= WATCH_PROGRESS_EVERY);
                if !due {
                    continue;
                }
                last_line.insert(p.id, Instant::now());
                format!(
                    "#{} {:.1}% of {}, {}/s{}",
                    p.id,
                    if p.size == 0 {
                        100.0
                    } else {
                        p.verified_bytes as f64 * 100.0 / p.size as f64
                    },
                    human_bytes(p.size),
                    human_bytes(p.rate_bytes_per_sec),
                    p.eta_secs
                        .map(|s| format!(", {} left", human_duration(s)))
                        .unwrap_or_default()
                )
            }
            EventKind::DownloadChanged { download: d } => format!(
                "#{} {} {}{}",
                d.record.id,
                d.record.name,
                d.record.state.as_str(),
                d.record
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
            EventKind::DownloadRemoved { id } => format!("#{id} removed"),
            _ => continue,
        };
        if cli.json {
            println!("{}", serde_json::to_string(&event)?);
        } else {
            println!("{line}");
        }
    }
}

/// `peershare uploads`.
pub async fn uploads(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let list: Vec<UploadView> = client.get("/uploads").await?;
    print_json_or(cli, &list, || {
        if list.is_empty() {
            return "nobody is downloading from you".into();
        }
        let mut out = format!(
            "{:>6}  {:>10}  {:>11}  {:<40}  {:<20}  TO\n",
            "DONE", "SIZE", "RATE", "NAME", "PATH"
        );
        for u in &list {
            let done = match u.size {
                0 => 100.0,
                size => u.sent_bytes as f64 * 100.0 / size as f64,
            };
            out += &format!(
                "{:>5.1}%  {:>10}  {:>11}  {:<40}  {:<20}  {}\n",
                done.min(100.0),
                human_bytes(u.size),
                format!("{}/s", human_bytes(u.rate_bytes_per_sec)),
                u.name,
                u.path.as_ref().map_or("-".to_string(), data_path),
                who(u.user.as_deref(), &u.peer)
            );
        }
        out.trim_end().to_string()
    })
}

/// `peershare events`: every event, until Ctrl-C or the daemon ends the stream.
pub async fn events(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let mut events = client.events().await?;
    // Said once subscribed: from here on nothing is missed.
    eprintln!("listening for events (Ctrl-C stops)");
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(event) = event else {
            bail!("the daemon closed the events stream");
        };
        let event = event?;
        let json = serde_json::to_string(&event)?;
        match cli.json {
            true => println!("{json}"),
            false => println!("{} {json}", event.seq),
        }
    }
}
