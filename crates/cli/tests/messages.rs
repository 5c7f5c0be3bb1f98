//! Messages between real daemons joined to a real index: delivery and read
//! receipts online, letters left in the index's mailbox for someone away
//! (and that the index's database never holds the text), a changed key
//! holding letters until trusted, blocking, and the contacts policy.

mod support;

use serde_json::Value;
use support::{s, wait_until, write_random, Daemon, IndexProcess, Sandbox, WAIT};

/// The messages of `d`'s chat with `name`, without marking them read.
fn chat(d: &Daemon, name: &str) -> Vec<Value> {
    let out = d.run(&["chat", name, "--limit", "100"]);
    assert!(out.ok, "chat {name} on {}: {}", d.name, out.stderr);
    out.json().as_array().expect("a list of messages").clone()
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| s(m, "text")).collect()
}

/// Waits until `d`'s outgoing message `id` to `name` is in `state`.
fn wait_state(d: &Daemon, name: &str, id: &str, state: &str) -> Value {
    wait_until(&format!("message {id} to reach {state}"), WAIT, || {
        chat(d, name)
            .into_iter()
            .find(|m| m["id"] == id && m["state"] == state)
    })
}

/// An index with alice on daemon "a" (who gives up on a source after 2 s) and bob on "b".
fn joined_pair(sandbox: &Sandbox, b_extra: &[&str]) -> (IndexProcess, Daemon, Daemon) {
    let index = IndexProcess::start(sandbox, &[]);
    let joined = ["--index", index.url.as_str()];
    let a = Daemon::start(
        sandbox,
        "a",
        &[&joined[..], &["--source-patience", "2"]].concat(),
    );
    let b = Daemon::start(sandbox, "b", &[&joined[..], b_extra].concat());
    a.register("alice");
    b.register("bob");
    a.wait_joined();
    b.wait_joined();
    (index, a, b)
}

#[test]
fn an_online_message_is_delivered_once_and_its_reading_reported() {
    let sandbox = Sandbox::new();
    let (_index, a, b) = joined_pair(&sandbox, &[]);

    let sent = a.cli_ok(&["msg", "bob", "hello", "bob"]);
    assert_eq!(sent["message"]["state"], "delivered", "{sent}");
    assert_eq!(sent["keys_from"], "index");
    let id = s(&sent["message"], "id");

    let chats = b.cli_ok(&["chats"]);
    assert_eq!(chats[0]["chat"], "alice", "{chats}");
    assert_eq!(chats[0]["unread"], 1);
    let got = chat(&b, "alice");
    assert_eq!(texts(&got), ["hello bob"]);
    assert_eq!(got[0]["verified"], true);
    assert_eq!(
        got[0]["id"],
        id.as_str(),
        "the same letter id on both sides"
    );
    assert_eq!(
        b.cli_ok(&["chats"])[0]["unread"],
        0,
        "reading marks it read"
    );

    // Bob read it: a read receipt comes back to alice.
    wait_state(&a, "bob", &id, "read");

    // A reply from standard input lands in the same conversation.
    let reply = b.run_with_input(&["msg", "alice"], Some("hi alice\nsee you\n"));
    assert!(reply.ok, "{}", reply.stderr);
    wait_until("the reply", WAIT, || {
        (texts(&chat(&a, "bob")) == ["hello bob", "hi alice\nsee you"]).then_some(())
    });

    // Oversize text is refused with a clear error, and nothing is stored.
    let long = "x".repeat(70 * 1024);
    let refused = a.run(&["msg", "bob", &long]);
    assert!(!refused.ok);
    let why = refused.error_message().unwrap_or_default();
    assert!(why.contains("at most 65536 bytes"), "{why}");
    assert_eq!(chat(&a, "bob").len(), 2);
    let unknown = a.run(&["msg", "nobody-here", "hi"]);
    assert!(!unknown.ok);
    let why = unknown.error_message().unwrap_or_default();
    assert!(why.contains("no user"), "{why}");
}

#[test]
fn a_letter_waits_in_the_index_mailbox_for_someone_away() {
    let sandbox = Sandbox::new();
    let (index, mut a, mut b) = joined_pair(&sandbox, &[]);
    // First contact while both are online pins bob's peer.
    let first = a.cli_ok(&["msg", "bob", "are you there?"]);
    assert_eq!(first["message"]["state"], "delivered");

    assert!(b.stop(), "bob stops cleanly");
    let marker = format!("plaintext-marker-{}", rand::random::<u64>());
    let sent = a.cli_ok(&["msg", "bob", &marker]);
    let id = s(&sent["message"], "id");
    wait_state(&a, "bob", &id, "stored");
    // The sender goes away too: the index alone holds the letter now.
    assert!(a.stop());

    for file in std::fs::read_dir(&index.data_dir).expect("index folder") {
        let path = file.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds the plaintext",
            path.display()
        );
    }

    b.restart();
    let got = wait_until("bob to collect the letter", WAIT, || {
        let got = chat(&b, "alice");
        (got.len() == 2).then_some(got)
    });
    assert_eq!(texts(&got), ["are you there?", marker.as_str()]);

    // Alice comes back: bob's receipt (left for her the same way) marks it delivered or read.
    a.restart();
    wait_until("alice to learn it arrived", WAIT, || {
        chat(&a, "bob")
            .into_iter()
            .find(|m| m["id"] == id.as_str() && (m["state"] == "delivered" || m["state"] == "read"))
    });
    // Collected letters are gone from the mailbox, and none arrived twice.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(chat(&b, "alice").len(), 2);
}

#[test]
fn a_changed_key_holds_letters_until_trusted() {
    let sandbox = Sandbox::new();
    let (index, a, mut b) = joined_pair(&sandbox, &[]);
    let first = a.cli_ok(&["msg", "bob", "first"]);
    assert_eq!(first["message"]["state"], "delivered");

    // Someone logs in as bob on a new peer (a new key) while bob's own peer is away.
    assert!(b.stop());
    let c = Daemon::start(&sandbox, "c", &["--index", index.url.as_str()]);
    let login = c.run_with_input(
        &["login", "bob", "--password-stdin"],
        Some("correct horse battery\n"),
    );
    assert!(login.ok, "{}", login.stderr);
    c.wait_joined();

    let out = a.run(&["msg", "bob", "second"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("WARNING"), "{}", out.stderr);
    assert!(out.stderr.contains(&c.peer_id()), "{}", out.stderr);
    let held = out.json();
    assert_eq!(held["message"]["state"], "held", "{held}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(chat(&c, "alice").is_empty(), "nothing reached the new key");
    assert_eq!(a.cli_ok(&["chats"])[0]["held"], 1);

    let trusted = a.cli_ok(&["contacts", "trust", "bob"]);
    assert!(s(&trusted, "message").contains("1 held"), "{trusted}");
    wait_until("the held letter to reach the new peer", WAIT, || {
        (texts(&chat(&c, "alice")) == ["second"]).then_some(())
    });
}

#[test]
fn contacts_download_without_asking_and_blocked_names_are_refused() {
    let sandbox = Sandbox::new();
    let (_index, a, b) = joined_pair(&sandbox, &["--policy", "contacts", "--no-read-receipts"]);
    write_random(&b.share_dir.join("song.bin"), 200_000);
    b.wait_shared(1);

    b.cli_ok(&["contacts", "add", "alice"]);
    let contacts = b.cli_ok(&["contacts"]);
    assert_eq!(contacts[0]["name"], "alice", "{contacts}");
    assert_eq!(contacts[0]["online"], true);
    assert_eq!(contacts[0]["presence_from"], "index");
    assert_eq!(contacts[0]["peers"][0]["peer_id"], a.peer_id().as_str());

    let got = a.run(&["get", &b.addr(), "song.bin"]);
    assert!(
        got.ok,
        "a contact downloads without being asked: {}",
        got.stderr
    );

    // Bob reads alice's message, but tells nobody (--no-read-receipts).
    let hi = a.cli_ok(&["msg", "bob", "hi bob"]);
    assert_eq!(hi["message"]["state"], "delivered");
    assert_eq!(texts(&chat(&b, "alice")), ["hi bob"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(chat(&a, "bob")[0]["state"], "delivered", "no read receipt");

    b.cli_ok(&["contacts", "block", "alice"]);
    let refused = a.run(&["get", &b.addr(), "song.bin", "--again"]);
    assert!(!refused.ok);
    let why = refused.error_message().unwrap_or_default();
    assert!(why.contains("does not accept requests from you"), "{why}");
    let sent = a.cli_ok(&["msg", "bob", "let me in"]);
    let id = s(&sent["message"], "id");
    let failed = wait_state(&a, "bob", &id, "failed");
    assert!(
        s(&failed, "note").contains("does not accept messages"),
        "{failed}"
    );
    assert_eq!(
        texts(&chat(&b, "alice")),
        ["hi bob"],
        "nothing stored from a blocked name"
    );
}

#[test]
fn with_no_index_a_letter_waits_at_the_dht_nodes_nearest_its_recipient() {
    let sandbox = Sandbox::new();
    let dht = ["--no-index", "--mailbox-replicas", "3"];
    let first = Daemon::start(&sandbox, "n0", &dht);
    let boot = first.addr();
    let mut joined = dht.to_vec();
    joined.extend(["--bootstrap", boot.as_str()]);
    let mut nodes = vec![first];
    for i in 1..5 {
        nodes.push(Daemon::start(&sandbox, &format!("n{i}"), &joined));
    }
    let mut sender = Daemon::start(&sandbox, "sender", &joined);
    let mut recipient = Daemon::start(&sandbox, "recipient", &joined);
    let to = recipient.peer_id();

    // First contact while both are online: the sender learns (and pins) the recipient's key.
    let hello = sender.cli_ok(&["msg", &to, "hello"]);
    assert_eq!(hello["message"]["state"], "delivered", "{hello}");
    assert_eq!(hello["keys_from"], "peer");

    sender.cli_ok(&["contacts", "add", &to]);
    assert_eq!(sender.cli_ok(&["contacts"])[0]["online"], true);

    // The recipient goes away; a letter for it is left with the nodes nearest its id.
    assert!(recipient.stop());
    let away = sender.cli_ok(&["contacts"]);
    assert_eq!(away[0]["online"], false, "{away}");
    assert_eq!(away[0]["presence_from"], "probe", "{away}");
    let sent = sender.cli_ok(&["msg", &to, "while you were away"]);
    let id = s(&sent["message"], "id");
    wait_state(&sender, &to, &id, "stored");
    assert!(sender.stop(), "the sender is away too when it matters");
    let keepers: Vec<usize> = (0..nodes.len())
        .filter(|i| nodes[*i].status()["kept_letters"] == 1)
        .collect();
    assert!(
        keepers.len() >= 2,
        "kept by {keepers:?} only; replicas were asked for 3"
    );
    for i in &keepers {
        let db = std::fs::read(nodes[*i].data_dir.join("peer.db")).unwrap_or_default();
        assert!(!db.windows(9).any(|w| w == b"were away"), "plaintext kept");
    }
    // Losing a keeper loses nothing.
    nodes[keepers[0]].kill9();

    recipient.restart();
    wait_until("the recipient to collect its letter", WAIT, || {
        (texts(&chat(&recipient, &sender_id_of(&sandbox))) == ["hello", "while you were away"])
            .then_some(())
    });
    // The sender comes back and learns it arrived: the recipient's receipt
    // waited for it the same way, near the sender's id.
    sender.restart();
    wait_until("the sender to learn the letter arrived", WAIT, || {
        chat(&sender, &to)
            .into_iter()
            .find(|m| m["id"] == id.as_str() && (m["state"] == "delivered" || m["state"] == "read"))
    });
    // Every keeper is told what arrived and drops it; nothing is shown twice.
    wait_until("the keepers to drop every letter", WAIT, || {
        (0..nodes.len())
            .filter(|i| *i != keepers[0])
            .all(|i| nodes[i].status()["kept_letters"] == 0)
            .then_some(())
    });
    assert_eq!(chat(&recipient, &sender_id_of(&sandbox)).len(), 2);
}

/// The sender's peer id, read from its identity in the sandbox (it is stopped by then).
fn sender_id_of(sandbox: &Sandbox) -> String {
    let key = std::fs::read(sandbox.dir("sender").join("data/identity.key")).expect("sender key");
    libp2p::identity::Keypair::from_protobuf_encoding(&key)
        .expect("a key")
        .public()
        .to_peer_id()
        .to_string()
}
