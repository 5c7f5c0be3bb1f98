//! The numbered menu for newcomers: each item asks for what it needs on the
//! next prompts, lists what it found with numbers, and then runs the same
//! commands a typed line would (`login`, `get`, `downloads`, `accept`,
//! `chat`, `msg`), so output, errors and Ctrl-C behave alike.
//!
//! It must never keep what it listed beyond the question that follows: a
//! number picks from the list just shown, and the daemon decides the rest.

use anyhow::Result;
use peershare_node::discovery::search::Merged;
use peershare_node::views::{BrowseView, ChatView, PendingRequest, UserFilesView};

use super::completion::Mode;
use super::exec::{interruptible, report_error};
use super::reader::Input;
use super::{Flow, Shell};
use crate::args::{AccountArgs, Command};
use crate::client::DaemonClient;
use crate::commands::{is_peer_address, is_peer_id, url_segment};
use crate::output::{human_bytes, human_duration};

/// The menu, as printed at the start and by `menu`.
pub const MENU: &str = concat!(
    "  1) log in      2) search      3) download    4) browse a user\n",
    "  5) transfers   6) requests    7) chats       8) quit\n",
    "Type a number, or any command (`help` lists them, Tab completes them).\n",
    "Ctrl-C stops a running command; Ctrl-D or `quit` leaves."
);

/// Most entries a listing shows.
const LISTED: usize = 200;

/// One file a listing offers to download.
struct Offer {
    /// What `get` is given: a file id, or a peer address.
    target: String,
    /// With a peer address: the file's id.
    file: Option<String>,
}

impl Shell {
    /// Prints the menu.
    pub fn print_menu(&self) {
        println!("{MENU}");
    }

    /// Runs menu item `n`.
    pub async fn pick(&self, n: usize) -> Flow {
        let done = match n {
            1 => self.log_in().await,
            2 => self.search().await,
            3 => self.download().await,
            4 => self.browse().await,
            5 => {
                self.run(Command::Downloads {
                    watch: false,
                    action: None,
                })
                .await;
                println!(
                    "(`downloads --watch` follows them as they go; `uploads` lists what others \
                     fetch from you)"
                );
                Ok(())
            }
            6 => self.requests().await,
            7 => self.chats().await,
            8 => return Flow::Quit,
            _ => {
                eprintln!("there is no item {n}: pick 1 to 8 (`menu` shows them)");
                Ok(())
            }
        };
        if let Err(e) = done {
            report_error(&self.globals.cli(Command::Status), &e);
        }
        Flow::Continue
    }

    /// Runs `command` with the shell's options, as if typed.
    async fn run(&self, command: Command) {
        self.run_command(&self.globals.cli(command)).await;
    }

    /// Asks a question; `None` for an empty answer, Ctrl-C or Ctrl-D.
    async fn ask(&self, prompt: &str) -> Result<Option<String>> {
        Ok(match self.reader.read(prompt, Mode::Answer).await? {
            Input::Line(line) => Some(line.trim().to_string()).filter(|l| !l.is_empty()),
            Input::Interrupted | Input::Eof => None,
        })
    }

    /// Asks for a number from 1 to `count`, again until it is one; `None` for Enter.
    async fn ask_number(&self, prompt: &str, count: usize) -> Result<Option<usize>> {
        loop {
            let Some(answer) = self.ask(prompt).await? else {
                return Ok(None);
            };
            match answer.parse::<usize>() {
                Ok(n) if (1..=count).contains(&n) => return Ok(Some(n)),
                _ => eprintln!("type a number from 1 to {count}, or just Enter for none"),
            }
        }
    }

    /// Asks the daemon something, Ctrl-C stopping the wait; `None` when interrupted.
    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>> {
        let cli = self.globals.cli(Command::Status);
        let asked = interruptible(async {
            DaemonClient::from_cli(&cli)?
                .get_query::<T>(path, query)
                .await
        })
        .await;
        match asked {
            Some(answer) => answer.map(Some),
            None => {
                eprintln!("interrupted");
                Ok(None)
            }
        }
    }

    async fn log_in(&self) -> Result<()> {
        println!("log in to the index (no account yet? type `register NAME` to create one)");
        let Some(name) = self.ask("user name: ").await? else {
            return Ok(());
        };
        self.run(Command::Login(AccountArgs {
            name,
            password_stdin: false,
        }))
        .await;
        Ok(())
    }

    async fn search(&self) -> Result<()> {
        let Some(query) = self.ask("search for: ").await? else {
            return Ok(());
        };
        let params = [("q", query.as_str()), ("mode", "words")];
        let Some(found) = self.query::<Merged>("/search", &params).await? else {
            return Ok(());
        };
        for (source, outcome) in &found.origins {
            if !outcome.ok {
                let why = outcome.error.as_deref().unwrap_or("no reason given");
                println!("({source} not asked: {why})");
            }
        }
        if found.results.is_empty() {
            println!("nothing found for {query:?} on online peers");
            return Ok(());
        }
        let mut offers = Vec::new();
        for (i, hit) in found.results.iter().take(LISTED).enumerate() {
            let mut holders: Vec<&str> = hit
                .sources
                .iter()
                .map(|s| s.user.as_deref().unwrap_or(s.peer_id.as_str()))
                .collect();
            holders.dedup();
            println!(
                "{:>4}) {}  ({}, from {})",
                i + 1,
                hit.names.join(" | "),
                human_bytes(hit.size),
                holders.join(", ")
            );
            offers.push(Offer {
                target: hit.id.to_string(),
                file: None,
            });
        }
        if found.total > offers.len() as u64 {
            println!(
                "({} of {} shown; `search {query:?} --limit N --offset M` pages through all)",
                offers.len(),
                found.total
            );
        }
        self.offer_download(&offers).await
    }

    /// Asks which of `offers` to download, and downloads it with `get`.
    async fn offer_download(&self, offers: &[Offer]) -> Result<()> {
        let prompt = "download which? (number, Enter for none): ";
        let Some(n) = self.ask_number(prompt, offers.len()).await? else {
            return Ok(());
        };
        let offer = &offers[n - 1];
        self.run(get(offer.target.clone(), offer.file.clone()))
            .await;
        Ok(())
    }

    async fn download(&self) -> Result<()> {
        let prompt = "file name, id or peershare: link: ";
        let Some(target) = self.ask(prompt).await? else {
            return Ok(());
        };
        self.run(get(target, None)).await;
        Ok(())
    }

    async fn browse(&self) -> Result<()> {
        let Some(target) = self.ask("user name (or a peer id or address): ").await? else {
            return Ok(());
        };
        let peer = is_peer_address(&target) || is_peer_id(&target);
        // (size, name, offer) per file.
        let files: Vec<(u64, String, Offer)> = if peer {
            let Some(v) = self
                .query::<BrowseView>("/browse", &[("peer", &target)])
                .await?
            else {
                return Ok(());
            };
            v.files
                .into_iter()
                .map(|f| {
                    let offer = match is_peer_address(&target) {
                        true => Offer {
                            target: target.clone(),
                            file: Some(f.id.to_string()),
                        },
                        false => Offer {
                            target: f.id.to_string(),
                            file: None,
                        },
                    };
                    (f.size, f.name, offer)
                })
                .collect()
        } else {
            let path = format!("/users/{}/files", url_segment(&target));
            let Some(v) = self
                .query::<UserFilesView>(&path, &[("all", "false")])
                .await?
            else {
                return Ok(());
            };
            v.files
                .into_iter()
                .map(|f| {
                    let offer = Offer {
                        target: f.id.to_string(),
                        file: None,
                    };
                    (f.size, f.name, offer)
                })
                .collect()
        };
        if files.is_empty() {
            println!("{target} shares no files on an online peer");
            return Ok(());
        }
        let mut offers = Vec::new();
        for (i, (size, name, offer)) in files.into_iter().enumerate() {
            if i == LISTED {
                println!("(the first {LISTED} shown; `browse {target}` lists all)");
                break;
            }
            println!("{:>4}) {name}  ({})", i + 1, human_bytes(size));
            offers.push(offer);
        }
        self.offer_download(&offers).await
    }

    async fn requests(&self) -> Result<()> {
        let Some(list) = self.query::<Vec<PendingRequest>>("/requests", &[]).await? else {
            return Ok(());
        };
        if list.is_empty() {
            println!("no requests waiting (new ones show up at the prompt as they arrive)");
            return Ok(());
        }
        for (i, r) in list.iter().enumerate() {
            println!(
                "{:>4}) {} wants {} ({}), {} left (request {})",
                i + 1,
                r.user.as_deref().unwrap_or(&r.peer),
                r.name,
                human_bytes(r.size),
                human_duration(r.expires_in),
                r.id
            );
        }
        let prompt = "answer which? (number, Enter for none): ";
        let Some(n) = self.ask_number(prompt, list.len()).await? else {
            return Ok(());
        };
        let id = list[n - 1].id;
        loop {
            let Some(answer) = self
                .ask("accept or reject? (a/r, Enter for neither): ")
                .await?
            else {
                return Ok(());
            };
            let command = match answer.to_ascii_lowercase().as_str() {
                "a" | "accept" | "y" | "yes" => Command::Accept { id },
                "r" | "reject" | "n" | "no" => Command::Reject { id },
                _ => {
                    eprintln!("type a to accept or r to reject");
                    continue;
                }
            };
            self.run(command).await;
            return Ok(());
        }
    }

    async fn chats(&self) -> Result<()> {
        let Some(chats) = self.query::<Vec<ChatView>>("/chats", &[]).await? else {
            return Ok(());
        };
        if chats.is_empty() {
            println!("no conversations yet");
        }
        for (i, c) in chats.iter().enumerate() {
            let unread = match c.unread {
                0 => String::new(),
                n => format!(", {n} unread"),
            };
            let last = c
                .last
                .as_ref()
                .map(|m| {
                    let line = m.text.lines().next().unwrap_or("");
                    let short: String = line.chars().take(50).collect();
                    let more = if short.len() < line.len() { "…" } else { "" };
                    format!(": {short}{more}")
                })
                .unwrap_or_default();
            println!("{:>4}) {}{unread}{last}", i + 1, c.chat);
        }
        let prompt = "open which? (number, or a name for a new chat; Enter for none): ";
        let name = loop {
            let Some(answer) = self.ask(prompt).await? else {
                return Ok(());
            };
            match answer.parse::<usize>() {
                Ok(n) if (1..=chats.len()).contains(&n) => break chats[n - 1].chat.clone(),
                Ok(_) => eprintln!("type a number from 1 to {}, or a name", chats.len()),
                Err(_) => break answer,
            }
        };
        self.run(Command::Chat {
            name: name.clone(),
            follow: false,
            limit: 20,
        })
        .await;
        println!("(type a message and Enter to send it to {name}; an empty line leaves the chat)");
        let prompt = format!("to {name}: ");
        while let Some(text) = self.ask(&prompt).await? {
            self.run(Command::Msg {
                to: name.clone(),
                text: vec![text],
            })
            .await;
        }
        Ok(())
    }
}

/// `get TARGET [FILE]`, waiting for the download with its progress bar.
fn get(target: String, file: Option<String>) -> Command {
    Command::Get {
        target,
        file,
        no_wait: false,
        again: false,
        cancel_on_exit: false,
        sequential: false,
        max_rate: None,
    }
}
