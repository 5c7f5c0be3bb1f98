-- Messaging: each peer's messaging key card and the mailboxes of sealed
-- letters waiting for their recipient peer. The index never sees plaintext:
-- a key card is opaque text and an envelope opaque bytes, sealed by peers.
-- Plain SQL as in 0001 (PostgreSQL would use BYTEA for the BLOB and an
-- identity column for the id).

-- A peer's signed messaging key card (base64 text), set or cleared by each join.
ALTER TABLE peers ADD COLUMN message_key TEXT;

-- One sealed letter for one recipient peer, until it is acknowledged or
-- expires. AUTOINCREMENT: ids only grow, even after the newest letters are
-- deleted, so a recipient paging with `after` never misses one.
CREATE TABLE letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    to_peer      TEXT    NOT NULL REFERENCES peers (peer_id) ON DELETE CASCADE,
    to_user_id   BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_user_id BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_user    TEXT    NOT NULL,
    envelope     BLOB    NOT NULL,
    stored_at    BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX letters_to_peer ON letters (to_peer, id);
CREATE INDEX letters_to_user ON letters (to_user_id);
CREATE INDEX letters_sender ON letters (from_user_id, to_peer);
CREATE INDEX letters_expiry ON letters (expires_at);
