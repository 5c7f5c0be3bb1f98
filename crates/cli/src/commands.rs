//! The client commands: each one asks the daemon's local API and prints the
//! answer as text for people or as JSON with `--json`.

use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::args::{Cli, Command};
use crate::client::DaemonClient;

/// Progress polls start fast (small files finish at once) and slow down to this.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Runs one client command.
pub async fn run(cli: &Cli, command: &Command) -> Result<()> {
    let client = DaemonClient::from_cli(cli)?;
    match command {
        Command::Up(_) | Command::Index(_) => unreachable!("servers are not client commands"),
        Command::Status => status(cli, &client).await,
        Command::Browse { peer } => browse(cli, &client, peer).await,
        Command::Get {
            peer,
            file,
            no_wait,
        } => get(cli, &client, peer, file, *no_wait).await,
        Command::Downloads => downloads(cli, &client).await,
        Command::Shares => shares(cli, &client).await,
        Command::Rescan => {
            let v: Value = client.post("/rescan", &json!({})).await?;
            print(cli, &v, || format!("{} files shared", v["shared_files"]))
        }
        Command::Requests => requests(cli, &client).await,
        Command::Accept { id } => answer(cli, &client, *id, "accept").await,
        Command::Reject { id } => answer(cli, &client, *id, "reject").await,
    }
}

fn print(cli: &Cli, value: &Value, text: impl FnOnce() -> String) -> Result<()> {
    if cli.json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
    Ok(())
}

async fn status(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let v: Value = client.get("/status").await?;
    print(cli, &v, || {
        let mut out = format!("peer {}\n", str_of(&v["peer_id"]));
        for a in v["addrs"].as_array().into_iter().flatten() {
            out += &format!("  reachable at {}\n", str_of(a));
        }
        out += &format!(
            "sharing {} files from {}\ndownloads go to {}\npolicy {}, {} of {} upload slots busy",
            v["shared_files"],
            v["shares"]
                .as_array()
                .map(|s| s.iter().map(str_of).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            str_of(&v["downloads_dir"]),
            str_of(&v["policy"]),
            v["uploads_running"],
            v["max_uploads"],
        );
        out
    })
}

async fn browse(cli: &Cli, client: &DaemonClient, peer: &str) -> Result<()> {
    let v: Value = client.get_query("/browse", &[("peer", peer)]).await?;
    print(cli, &v, || file_table(&v["files"]))
}

async fn shares(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let v: Value = client.get("/shares").await?;
    print(cli, &v, || file_table(&v["files"]))
}

fn file_table(files: &Value) -> String {
    let files = files.as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        return "no shared files".into();
    }
    let mut out = format!("{:>12}  {:<64}  NAME\n", "SIZE", "ID");
    for f in files {
        out += &format!(
            "{:>12}  {:<64}  {}\n",
            human_bytes(f["size"].as_u64().unwrap_or(0)),
            str_of(&f["id"]),
            str_of(&f["name"])
        );
    }
    out.trim_end().to_string()
}

async fn get(
    cli: &Cli,
    client: &DaemonClient,
    peer: &str,
    file: &str,
    no_wait: bool,
) -> Result<()> {
    let started: Value = client
        .post("/downloads", &json!({ "peer": peer, "file": file }))
        .await?;
    let id = started["id"].as_i64().unwrap_or_default();
    if no_wait {
        return print(cli, &started, || {
            format!("download {id} started: {}", str_of(&started["name"]))
        });
    }
    let bar = progress_bar(cli, &started);
    let mut interval = Duration::from_millis(10);
    let last = loop {
        let v: Value = client.get(&format!("/downloads/{id}")).await?;
        bar.set_position(v["verified_bytes"].as_u64().unwrap_or(0));
        if v["state"] != "active" || !v["running"].as_bool().unwrap_or(true) {
            // A finished record may lag its task by a moment; read it once more.
            let v: Value = client.get(&format!("/downloads/{id}")).await?;
            if v["state"] != "active" {
                break v;
            }
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    };
    bar.finish_and_clear();
    if last["state"] == "failed" {
        if cli.json {
            println!("{last}");
        }
        bail!("download failed: {}", str_of(&last["error"]));
    }
    print(cli, &last, || {
        format!(
            "saved {} ({}) to {}",
            str_of(&last["name"]),
            human_bytes(last["size"].as_u64().unwrap_or(0)),
            str_of(&last["path"])
        )
    })
}

fn progress_bar(cli: &Cli, started: &Value) -> ProgressBar {
    if cli.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(started["size"].as_u64().unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(str_of(&started["name"]));
    bar
}

async fn downloads(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let v: Value = client.get("/downloads").await?;
    print(cli, &v, || {
        let list = v.as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return "no downloads".into();
        }
        let mut out = format!(
            "{:>4}  {:<7}  {:>6}  {:>10}  NAME\n",
            "ID", "STATE", "DONE", "SIZE"
        );
        for d in list {
            let size = d["size"].as_u64().unwrap_or(0);
            let done = d["verified_bytes"].as_u64().unwrap_or(0);
            let pct = if size == 0 {
                100.0
            } else {
                done as f64 * 100.0 / size as f64
            };
            out += &format!(
                "{:>4}  {:<7}  {:>5.1}%  {:>10}  {}{}\n",
                d["id"],
                str_of(&d["state"]),
                pct,
                human_bytes(size),
                str_of(&d["name"]),
                d["error"]
                    .as_str()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
        out.trim_end().to_string()
    })
}

async fn requests(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let v: Value = client.get("/requests").await?;
    print(cli, &v, || {
        let list = v.as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return "no requests waiting".into();
        }
        let mut out = String::new();
        for r in list {
            out += &format!(
                "#{}  {} wants {} ({}), {} s left: `peershare accept {}` or `peershare reject {}`\n",
                r["id"],
                str_of(&r["peer"]),
                str_of(&r["name"]),
                human_bytes(r["size"].as_u64().unwrap_or(0)),
                r["expires_in"],
                r["id"],
                r["id"]
            );
        }
        out.trim_end().to_string()
    })
}

async fn answer(cli: &Cli, client: &DaemonClient, id: u64, verb: &str) -> Result<()> {
    let v: Value = client
        .post(&format!("/requests/{id}/{verb}"), &json!({}))
        .await?;
    print(cli, &v, || match (verb, v["granted"].as_bool()) {
        ("accept", Some(false)) => format!("request {id} accepted, but all upload slots are busy"),
        ("accept", _) => format!("request {id} accepted"),
        _ => format!("request {id} rejected"),
    })
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Bytes in binary units for people.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
