//! Running one command inside the shell: the binary's own code paths
//! (`commands::run_as`), raced against Ctrl-C so that a long command (a
//! `get` waiting for its download, `downloads --watch`, `chat --follow`, a
//! slow search) stops without leaving the shell; errors printed the way
//! `main` prints them; passwords read at a masked prompt.
//!
//! It must never end the process, read standard input behind the line
//! editor's back, or undo what the daemon does on its own: an interrupted
//! `get` leaves its download running, and says so.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::CommandFactory;
use peershare_node::views::DownloadView;

use super::completion::Mode;
use super::reader::Input;
use super::Shell;
use crate::args::{AccountArgs, Cli, Command};
use crate::client::DaemonClient;
use crate::commands::{self, Caller};

/// How long the shell asks the daemon, after a `get` was interrupted, which download goes on.
const LOOKUP_AFTER_INTERRUPT: Duration = Duration::from_secs(5);

/// Runs `work` until it ends, or until Ctrl-C (then `None`; `work` is dropped).
pub async fn interruptible<T>(work: impl Future<Output = T>) -> Option<T> {
    // Ctrl-C is looked at first, so a command that watches Ctrl-C itself never sees it here.
    tokio::select! {
        biased;
        _ = ctrl_c() => None,
        done = work => Some(done),
    }
}

/// Ctrl-C; never, when no handler can be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Prints a command's error as `main` does: `error: …`, or `{"error": …}` with `--json`.
pub fn report_error(cli: &Cli, e: &anyhow::Error) {
    if cli.json {
        println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
    } else {
        eprintln!("error: {e:#}");
    }
}

/// Says that a command was stopped by Ctrl-C.
fn report_interrupted(cli: &Cli) {
    if cli.json {
        println!("{}", serde_json::json!({ "interrupted": true }));
    } else {
        eprintln!("interrupted");
    }
}

impl Shell {
    /// Runs `cli`'s command and prints what it prints, its error, or that it was interrupted.
    pub async fn run_command(&self, cli: &Cli) {
        let outcome = match &cli.command {
            // Like `main`, which prints the script itself: it is no daemon command.
            Command::Completions { shell } => {
                let mut tree = Cli::command();
                clap_complete::generate(*shell, &mut tree, "peershare", &mut std::io::stdout());
                Some(Ok(()))
            }
            Command::Login(account) => self.sign_in(cli, account, "login").await,
            Command::Register(account) => self.sign_in(cli, account, "register").await,
            Command::Chat {
                name, follow: true, ..
            } => {
                self.followed.set(Some(name.clone()));
                let outcome =
                    interruptible(commands::run_as(cli, &cli.command, Caller::Shell)).await;
                self.followed.set(None);
                outcome
            }
            command => interruptible(commands::run_as(cli, command, Caller::Shell)).await,
        };
        match outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => report_error(cli, &e),
            None => {
                report_interrupted(cli);
                if let Command::Get { target, file, .. } = &cli.command {
                    say_download_goes_on(cli, target, file.as_deref()).await;
                }
            }
        }
    }

    /// `login NAME` / `register NAME`: the password at a masked prompt, then the daemon signs in.
    async fn sign_in(&self, cli: &Cli, account: &AccountArgs, verb: &str) -> Option<Result<()>> {
        if account.password_stdin {
            let e = anyhow::anyhow!(
                "the shell has no standard input to read a password from: leave out \
                 --password-stdin and type it at the hidden prompt"
            );
            return Some(Err(e));
        }
        let password = match self.password(&account.name, verb == "register").await {
            Ok(Some(password)) => password,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        interruptible(async {
            let client = DaemonClient::from_cli(cli)?;
            commands::sign_in_with(cli, &client, &account.name, &password, verb).await
        })
        .await
    }

    /// Reads a password (twice when `confirm`); `None` when the person gave up with Ctrl-C or Ctrl-D.
    async fn password(&self, name: &str, confirm: bool) -> Result<Option<String>> {
        let read = |prompt: String| async move {
            let line = match self.reader.read(&prompt, Mode::Secret).await? {
                Input::Line(line) => Some(line),
                Input::Interrupted | Input::Eof => None,
            };
            anyhow::Ok(line)
        };
        let Some(password) = read(format!("password for {name}: ")).await? else {
            return Ok(None);
        };
        if password.is_empty() {
            bail!("no password typed; nothing was sent");
        }
        if confirm {
            let Some(again) = read("again: ".to_string()).await? else {
                return Ok(None);
            };
            if again != password {
                bail!("the two passwords differ; nothing was registered");
            }
        }
        Ok(Some(password))
    }
}

/// After an interrupted `get`: which download goes on in the daemon, and how to stop it.
async fn say_download_goes_on(cli: &Cli, target: &str, file: Option<&str>) {
    let lookup = async {
        let client = DaemonClient::from_cli(cli).ok()?;
        let list: Vec<DownloadView> = client.get("/downloads").await.ok()?;
        let wanted = file.unwrap_or(target);
        list.into_iter()
            .filter(|d| d.running)
            .filter(|d| {
                let id = d.record.file_id.to_string();
                d.record.name == wanted || id == wanted || target.contains(&id)
            })
            .max_by_key(|d| d.record.id)
    };
    let found = tokio::time::timeout(LOOKUP_AFTER_INTERRUPT, lookup)
        .await
        .ok()
        .flatten();
    let text = match &found {
        Some(d) => format!(
            "download {id} ({}) goes on in the daemon: `downloads` shows it, \
             `downloads cancel {id}` stops it",
            d.record.name,
            id = d.record.id
        ),
        None => "a download it started goes on in the daemon: `downloads` shows it".into(),
    };
    if cli.json {
        let id = found.as_ref().map(|d| d.record.id);
        println!(
            "{}",
            serde_json::json!({ "download": id, "running": id.is_some() })
        );
    } else {
        eprintln!("{text}");
    }
}
