-- Messages between people (see docs/PROTOCOL.md §9).

-- The people this peer knows by name (a user name, or a peer id written out):
-- contacts added by the person, and blocked names.
CREATE TABLE contacts (
    name     TEXT PRIMARY KEY NOT NULL,
    contact  INTEGER NOT NULL,
    blocked  INTEGER NOT NULL,
    added_at INTEGER NOT NULL
);

-- The peers pinned to a name on first contact (trust on first use). A peer
-- id is an ed25519 key, so pinning it pins the identity; its messaging key
-- is bound to it by its own signature.
CREATE TABLE pinned_peers (
    name      TEXT NOT NULL,
    peer_id   TEXT NOT NULL,
    pinned_at INTEGER NOT NULL,
    PRIMARY KEY (name, peer_id)
);
CREATE INDEX pinned_peers_peer ON pinned_peers (peer_id);

-- The newest checked key card of each peer written to or heard from.
CREATE TABLE key_cards (
    peer_id    TEXT PRIMARY KEY NOT NULL,
    card       BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);

-- Every message sent or received. Incoming rows name the sending peer;
-- outgoing rows have peer_id ''. A letter is stored once per sender.
CREATE TABLE messages (
    row_id      INTEGER PRIMARY KEY,
    chat        TEXT NOT NULL,
    letter_id   TEXT NOT NULL,
    outgoing    INTEGER NOT NULL,
    peer_id     TEXT NOT NULL,
    from_user   TEXT,
    verified    INTEGER NOT NULL,
    text        TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    stored_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    state       TEXT NOT NULL,
    note        TEXT,
    UNIQUE (outgoing, peer_id, letter_id)
);
CREATE INDEX messages_chat ON messages (chat, sent_at, seq);
CREATE INDEX messages_letter ON messages (letter_id);

-- Sealed copies waiting for delivery, one per recipient peer.
CREATE TABLE outbox (
    letter_id  TEXT NOT NULL,
    to_peer    TEXT NOT NULL,
    envelope   BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    next_try   INTEGER NOT NULL,
    mailed     INTEGER NOT NULL,
    PRIMARY KEY (letter_id, to_peer)
);
CREATE INDEX outbox_next_try ON outbox (next_try);
