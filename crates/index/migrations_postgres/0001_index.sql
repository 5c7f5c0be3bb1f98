-- The index's schema on PostgreSQL: the final schema of the SQLite
-- migrations in ../migrations (0001 to 0004) in one step, with identity
-- columns where SQLite has INTEGER PRIMARY KEY (ids only grow), BYTEA for
-- letters' envelopes, and no full-text or trigram structures (search does
-- not read this database). Times are milliseconds since the Unix epoch
-- (BIGINT). Every text column uses the "C" collation, so ORDER BY sorts by
-- bytes as SQLite's BINARY collation does, whatever the database's locale;
-- comparisons are case-sensitive, as in SQLite.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    -- The UTS #39 confusable skeleton of the name: only one name of each
    -- skeleton may exist. NULL only for accounts the index has not filled in.
    skeleton      TEXT COLLATE "C"
);
CREATE UNIQUE INDEX users_skeleton ON users (skeleton);

-- Only a hash of each bearer token is kept.
CREATE TABLE sessions (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The open join challenge of each (user, peer id); used at most once.
CREATE TABLE join_challenges (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    peer_id    TEXT COLLATE "C" NOT NULL,
    nonce      TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, peer_id)
);
CREATE INDEX join_challenges_expiry ON join_challenges (expires_at);

-- A peer is online while left_at is NULL and last_seen is recent enough.
-- message_key: its signed messaging key card (base64 text), set or cleared
-- by each join.
CREATE TABLE peers (
    peer_id     TEXT COLLATE "C" PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    addrs       TEXT COLLATE "C" NOT NULL,
    joined_at   BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    left_at     BIGINT,
    message_key TEXT COLLATE "C"
);
CREATE INDEX peers_user ON peers (user_id);
CREATE INDEX peers_last_seen ON peers (last_seen);

-- One row per (peer, file id, name): a peer may hold the same bytes under two names.
CREATE TABLE files (
    row_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    peer_id TEXT COLLATE "C" NOT NULL REFERENCES peers (peer_id) ON DELETE CASCADE,
    file_id TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    size    BIGINT NOT NULL,
    ext     TEXT COLLATE "C" NOT NULL,
    UNIQUE (peer_id, file_id, name)
);
CREATE INDEX files_file_id ON files (file_id);
CREATE INDEX files_name ON files (name);
CREATE INDEX files_ext_size ON files (ext, size);

-- Every operation: who, what, when, and how it ended. Names, not ids, so the
-- record outlives an unregistered account.
CREATE TABLE audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    user_name TEXT COLLATE "C",
    peer_id   TEXT COLLATE "C",
    action    TEXT COLLATE "C" NOT NULL,
    outcome   TEXT COLLATE "C" NOT NULL,
    detail    TEXT COLLATE "C",
    client    TEXT COLLATE "C"
);
CREATE INDEX audit_at ON audit (at);

-- One sealed letter for one recipient peer, until it is acknowledged or
-- expires. The index never sees plaintext: an envelope is opaque bytes. Ids
-- only grow (an identity column never hands out an id twice), and letters
-- for one peer are stored one transaction at a time (the store locks the
-- recipient's peers row first), so a recipient paging with `after` never
-- misses one.
CREATE TABLE letters (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    to_peer      TEXT COLLATE "C" NOT NULL REFERENCES peers (peer_id) ON DELETE CASCADE,
    to_user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_user    TEXT COLLATE "C" NOT NULL,
    envelope     BYTEA NOT NULL,
    stored_at    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX letters_to_peer ON letters (to_peer, id);
CREATE INDEX letters_to_user ON letters (to_user_id);
CREATE INDEX letters_sender ON letters (from_user_id, to_peer);
CREATE INDEX letters_expiry ON letters (expires_at);

-- Each configured admin name and the account its rights are bound to: the
-- account that held the name when the index first saw the setting, or the
-- first to register it after. Not a foreign key on purpose: the row outlives
-- the account, so a deleted admin's name stays reserved until the operator
-- drops the name from the settings and adds it again.
CREATE TABLE admins (
    name     TEXT COLLATE "C" PRIMARY KEY,
    user_id  BIGINT NOT NULL,
    bound_at BIGINT NOT NULL
);
