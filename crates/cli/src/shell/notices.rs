//! Live notices while the person sits at the prompt: a background task
//! follows the daemon's events stream and prints download requests waiting
//! for an answer, incoming messages and changed keys (and the daemon going
//! away and coming back) through the line editor's external printer, so the
//! line being typed is not garbled.
//!
//! It only reads and prints: it must never answer a request, mark a message
//! read, or outlive the shell (dropping [`Notices`] ends the task). When the
//! daemon is not there, or restarts, it tries again after a pause.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use futures::StreamExt;
use peershare_node::views::{Event, EventKind};

use super::parse::Globals;
use super::reader::LinePrinter;
use crate::args::Command;
use crate::client::{DaemonClient, EventStream};
use crate::messages::author;
use crate::output::{human_bytes, human_duration};

/// Pause before connecting again to a daemon that is not answering.
const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Pause after the events stream ended, before subscribing again.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(500);

/// Where notices are printed: above the prompt on a terminal, else plain lines.
#[derive(Clone)]
pub struct Printer {
    line: Option<Arc<Mutex<LinePrinter>>>,
}

impl Printer {
    /// A printer over the line editor's, or plain standard output without one.
    pub fn new(line: Option<LinePrinter>) -> Self {
        Self {
            line: line.map(|p| Arc::new(Mutex::new(p))),
        }
    }

    /// Prints one notice (one or more lines).
    pub async fn print(&self, text: String) {
        let Some(line) = self.line.clone() else {
            println!("{text}");
            return;
        };
        // The editor's printer may wait for the editor to take the text: not on the runtime.
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut printer) = line.lock() {
                let _ = printer.print(format!("{text}\n"));
            }
        })
        .await;
    }
}

/// The chat that a running `chat NAME --follow` shows already, so its messages are not printed twice.
#[derive(Clone, Default)]
pub struct FollowedChat(Arc<Mutex<Option<String>>>);

impl FollowedChat {
    /// Sets (or clears, with `None`) the chat being followed.
    pub fn set(&self, chat: Option<String>) {
        if let Ok(mut followed) = self.0.lock() {
            *followed = chat;
        }
    }

    fn is(&self, chat: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|followed| followed.as_deref() == Some(chat))
    }
}

/// The running notices task; dropping it stops the task.
pub struct Notices {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Notices {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts following the daemon named by `globals`.
pub fn start(globals: Globals, printer: Printer, followed: FollowedChat) -> Notices {
    Notices {
        task: tokio::spawn(follow(globals, printer, followed)),
    }
}

/// How the link to the daemon stands, to say only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not tried yet.
    Starting,
    /// Subscribed.
    Up,
    /// The last try failed, and the person was told; `was_up` if it had been connected.
    Down { was_up: bool },
}

async fn follow(globals: Globals, printer: Printer, followed: FollowedChat) {
    let mut link = Link::Starting;
    loop {
        match subscribe(&globals).await {
            Ok(mut events) => {
                let said = match link {
                    Link::Starting | Link::Down { was_up: false } => Some(
                        "[daemon] connected: download requests and messages show up here as \
                         they arrive",
                    ),
                    Link::Down { was_up: true } => Some("[daemon] back: notices resume"),
                    // The stream was only cut (a slow reader): nothing to say.
                    Link::Up => None,
                };
                if let Some(text) = said {
                    printer.print(text.into()).await;
                }
                link = Link::Up;
                while let Some(Ok(event)) = events.next().await {
                    if let Some(text) = notice(&event, &followed) {
                        printer.print(text).await;
                    }
                }
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
            }
            Err(e) => {
                let said = match link {
                    Link::Starting => Some(format!(
                        "[daemon] none answers yet: {e:#}\n[daemon] start one in another terminal \
                         with `peershare up`; commands here work once it runs"
                    )),
                    Link::Up => Some(format!(
                        "[daemon] it stopped answering: {e:#}\n[daemon] notices resume when it \
                         is back"
                    )),
                    Link::Down { .. } => None,
                };
                if let Some(text) = said {
                    printer.print(text).await;
                }
                let was_up = matches!(link, Link::Up | Link::Down { was_up: true });
                link = Link::Down { was_up };
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Subscribes to the events of the daemon the shell points at, finding it afresh
/// (a restarted daemon may listen on another port).
async fn subscribe(globals: &Globals) -> Result<EventStream> {
    let cli = globals.cli(Command::Status);
    // Finding the daemon may wait for a starting one's files: not on the runtime.
    let client = tokio::task::spawn_blocking(move || DaemonClient::from_cli(&cli))
        .await
        .map_err(|e| anyhow!("cannot look for the daemon: {e}"))??;
    client.events().await
}

/// The text to print for an event, if it is one the person should see at once.
fn notice(event: &Event, followed: &FollowedChat) -> Option<String> {
    match &event.kind {
        EventKind::RequestWaiting { request: r } => {
            let who = r.user.clone().unwrap_or_else(|| r.peer.clone());
            Some(format!(
                "[request {id}] {who} wants {} ({}); answer with `accept {id}` or `reject {id}` \
                 within {}",
                r.name,
                human_bytes(r.size),
                human_duration(r.expires_in),
                id = r.id,
            ))
        }
        EventKind::MessageReceived { message } if !followed.is(&message.chat) => {
            let text = message.text.replace('\n', "\n    ");
            Some(format!("[message] {}: {text}", author(message)))
        }
        EventKind::KeyChanged { name, new_peers } => Some(format!(
            "[warning] {name}'s keys changed (new peer {}): check with them, then \
             `contacts trust {name}`",
            new_peers.join(", ")
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> Event {
        serde_json::from_value(json).expect("an event")
    }

    #[test]
    fn requests_and_messages_become_one_line_notices() {
        let followed = FollowedChat::default();
        let request = event(serde_json::json!({
            "seq": 1, "at_ms": 0, "type": "request_waiting",
            "request": { "id": 3, "peer": "12D3KooWpeer", "user": "alice",
                         "file_id": "ab".repeat(32), "name": "song.mp3",
                         "size": 4_404_019, "expires_in": 60 }
        }));
        let text = notice(&request, &followed).expect("a notice");
        assert!(
            text.starts_with("[request 3] alice wants song.mp3 (4.20 MiB)"),
            "{text}"
        );
        assert!(
            text.contains("`accept 3`") && text.contains("`reject 3`"),
            "{text}"
        );

        let message = event(serde_json::json!({
            "seq": 2, "at_ms": 0, "type": "message_received",
            "message": { "id": "00".repeat(16), "chat": "alice", "outgoing": false,
                         "verified": true, "text": "hi there", "sent_at": 0,
                         "stored_at": 0, "state": "delivered" }
        }));
        assert_eq!(
            notice(&message, &followed).as_deref(),
            Some("[message] alice: hi there")
        );
        followed.set(Some("alice".into()));
        assert_eq!(notice(&message, &followed), None, "shown by chat --follow");
    }
}
