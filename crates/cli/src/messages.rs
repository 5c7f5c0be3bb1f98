//! The message commands: `msg`, `chats`, `chat [--follow]` and `contacts`,
//! over the daemon's messages API and events stream.

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use peershare_node::views::{
    ChatView, ContactRequest, ContactView, EventKind, MessageState, MessageView,
    SendMessageRequest, SentMessage,
};
use serde_json::json;

use crate::args::{Cli, ContactsAction};
use crate::client::DaemonClient;
use crate::commands::url_segment;
use crate::output::{print_json_or, utc_time};

/// How long `msg` waits to say whether the message was delivered or left in a mailbox.
const DELIVERY_WAIT: Duration = Duration::from_secs(8);

/// `peershare msg NAME [TEXT…]`: sends, then waits briefly to tell how it went.
pub async fn send(cli: &Cli, client: &DaemonClient, to: &str, words: &[String]) -> Result<()> {
    let text = if words.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("cannot read the message from standard input")?;
        text.trim_end_matches('\n').to_string()
    } else {
        words.join(" ")
    };
    // Subscribed before sending, so no receipt is missed.
    let mut events = client.events().await?;
    let request = SendMessageRequest {
        to: to.to_string(),
        text,
    };
    let sent: SentMessage = client.post("/messages", &request).await?;
    let mut message = sent.message.clone();
    if message.state == MessageState::Sending {
        let deadline = tokio::time::sleep(DELIVERY_WAIT);
        tokio::pin!(deadline);
        while message.state == MessageState::Sending {
            let event = tokio::select! {
                event = events.next() => event,
                _ = &mut deadline => break,
            };
            let Some(Ok(event)) = event else { break };
            if let EventKind::MessageChanged { message: changed } = event.kind {
                if changed.id == message.id {
                    message = changed;
                }
            }
        }
    }
    if message.state == MessageState::Held {
        eprintln!(
            "WARNING: {}",
            message
                .note
                .as_deref()
                .unwrap_or("the recipient's keys changed")
        );
    }
    let result =
        json!({ "message": message, "recipients": sent.recipients, "keys_from": sent.keys_from });
    print_json_or(cli, &result, || {
        let unverified = match sent.keys_from.as_str() {
            "dht" => " (name not verified by an index: keys from peers claiming it in the DHT)",
            _ => "",
        };
        let how = match message.state {
            MessageState::Delivered | MessageState::Read => "delivered".to_string(),
            MessageState::Stored => format!(
                "{to} is away: the letter waits in the index's mailbox until they come back"
            ),
            MessageState::Sending => {
                format!("queued: {to} is not reachable now; it is retried until delivered")
            }
            MessageState::Held => "held until you trust the new keys".to_string(),
            MessageState::Failed => format!(
                "not delivered: {}",
                message.note.as_deref().unwrap_or("refused")
            ),
            other => format!("{other:?}").to_lowercase(),
        };
        format!(
            "message {} to {to}, sealed for {} peer(s){unverified}: {how}",
            &message.id[..8],
            sent.recipients
        )
    })
}

/// `peershare chats`: conversations, the most recent first.
pub async fn chats(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let chats: Vec<ChatView> = client.get("/chats").await?;
    print_json_or(cli, &chats, || {
        if chats.is_empty() {
            return "no conversations yet: `peershare msg NAME TEXT` starts one".into();
        }
        let mut out = String::new();
        for c in &chats {
            let unread = match c.unread {
                0 => String::new(),
                n => format!("  {n} unread"),
            };
            let held = match c.held {
                0 => String::new(),
                n => format!(
                    "  {n} HELD (keys changed: `peershare contacts trust {}`)",
                    c.chat
                ),
            };
            let last = c
                .last
                .as_ref()
                .map(|m| format!("  {}: {}", author(m), preview(&m.text)))
                .unwrap_or_default();
            out += &format!("{}{unread}{held}{last}\n", c.chat);
        }
        out.trim_end().to_string()
    })
}

/// `peershare chat NAME [--follow]`: the history, then (following) what arrives.
pub async fn chat(
    cli: &Cli,
    client: &DaemonClient,
    name: &str,
    follow: bool,
    limit: u32,
) -> Result<()> {
    let path = format!("/chats/{}", url_segment(name));
    let mut events = match follow {
        true => Some(client.events().await?),
        false => None,
    };
    let limit = limit.to_string();
    let history: Vec<MessageView> = client.get_query(&path, &[("limit", &limit)]).await?;
    if !follow {
        return print_json_or(cli, &history, || {
            if history.is_empty() {
                return format!("no messages with {name} yet");
            }
            let lines: Vec<String> = history.iter().map(message_line).collect();
            lines.join("\n")
        });
    }
    for m in &history {
        print_json_or(cli, m, || message_line(m))?;
    }
    let chat = history
        .first()
        .map(|m| m.chat.clone())
        .unwrap_or_else(|| name.to_string());
    follow_chat(cli, client, &path, &chat, events.as_mut()).await
}

async fn follow_chat(
    cli: &Cli,
    client: &DaemonClient,
    path: &str,
    chat: &str,
    events: Option<&mut crate::client::EventStream>,
) -> Result<()> {
    let Some(events) = events else {
        return Ok(());
    };
    eprintln!("following {chat} (Ctrl-C stops)");
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(event) = event else {
            bail!("the daemon closed the events stream");
        };
        match event?.kind {
            EventKind::MessageReceived { message } if message.chat == chat => {
                print_message(cli, &message)?;
                // Shown now: marked read, and the sender told.
                let _: Vec<MessageView> = client.get_query(path, &[("limit", "1")]).await?;
            }
            EventKind::MessageChanged { message } if message.chat == chat => {
                print_message(cli, &message)?;
            }
            EventKind::KeyChanged { name, new_peers } if name == chat => {
                eprintln!(
                    "WARNING: {name}'s keys changed (new peer {}); check with them, then \
                     `peershare contacts trust {name}`",
                    new_peers.join(", ")
                );
            }
            _ => {}
        }
    }
}

fn print_message(cli: &Cli, m: &MessageView) -> Result<()> {
    print_json_or(cli, m, || message_line(m))
}

fn message_line(m: &MessageView) -> String {
    let mark = match (m.outgoing, m.state) {
        (true, MessageState::Read) => "  [read]",
        (true, MessageState::Delivered) => "  [delivered]",
        (true, MessageState::Stored) => "  [in mailbox]",
        (true, MessageState::Sending) => "  [sending]",
        (true, MessageState::Held) => "  [HELD: keys changed]",
        (true, MessageState::Expired) => "  [expired]",
        (true, MessageState::Failed) => "  [not delivered]",
        _ => "",
    };
    let note = m
        .note
        .as_deref()
        .map(|n| format!("\n    ! {n}"))
        .unwrap_or_default();
    format!(
        "[{}] {}: {}{mark}{note}",
        utc_time(m.sent_at),
        author(m),
        m.text
    )
}

/// Who wrote a message, for people: "me", the chat's name, or a claimed name marked unverified.
pub fn author(m: &MessageView) -> String {
    match (m.outgoing, m.verified, &m.from_user) {
        (true, _, _) => "me".into(),
        (false, true, _) => m.chat.clone(),
        (false, false, Some(claimed)) => format!("{claimed}? (unverified)"),
        (false, false, None) => m.chat.clone(),
    }
}

fn preview(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// `peershare contacts [add|remove|block|unblock|trust NAME]`.
pub async fn contacts(
    cli: &Cli,
    client: &DaemonClient,
    action: Option<&ContactsAction>,
) -> Result<()> {
    let path = |name: &str, what: &str| format!("/contacts/{}{what}", url_segment(name));
    let done = match action {
        None => return list_contacts(cli, client).await,
        Some(ContactsAction::Add { name }) => {
            let body = ContactRequest { name: name.clone() };
            client.post_expecting_nothing("/contacts", &body).await?;
            format!("{name} is a contact")
        }
        Some(ContactsAction::Remove { name }) => {
            client.delete(&path(name, "")).await?;
            format!("{name} is no longer a contact")
        }
        Some(ContactsAction::Block { name }) => {
            let body = json!({ "blocked": true });
            client
                .post_expecting_nothing(&path(name, "/block"), &body)
                .await?;
            format!("{name} is blocked: their messages and download requests are refused")
        }
        Some(ContactsAction::Unblock { name }) => {
            let body = json!({ "blocked": false });
            client
                .post_expecting_nothing(&path(name, "/block"), &body)
                .await?;
            format!("{name} is no longer blocked")
        }
        Some(ContactsAction::Trust { name }) => {
            let trusted: serde_json::Value = client.post(&path(name, "/trust"), &json!({})).await?;
            let released = trusted["released"].as_u64().unwrap_or(0);
            format!("{name}'s current keys are trusted; {released} held message(s) sent")
        }
    };
    print_json_or(cli, &json!({ "ok": true, "message": done }), || {
        done.clone()
    })
}

async fn list_contacts(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let list: Vec<ContactView> = client.get("/contacts").await?;
    print_json_or(cli, &list, || {
        if list.is_empty() {
            return "no contacts yet: `peershare contacts add NAME`".into();
        }
        let mut out = String::new();
        for c in &list {
            let what = match (c.contact, c.blocked) {
                (_, true) => "blocked",
                _ => "contact",
            };
            let presence = match (c.online, c.last_seen) {
                (Some(true), _) => "online".to_string(),
                (Some(false), Some(at)) => format!("offline, last seen {}", utc_time(at)),
                (Some(false), None) => "offline".to_string(),
                (None, _) => "presence unknown".to_string(),
            };
            out += &format!(
                "{}  {what}  {presence}  {} peer(s) pinned\n",
                c.name,
                c.peers.len()
            );
        }
        out.trim_end().to_string()
    })
}
