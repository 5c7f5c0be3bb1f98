-- The index's schema. Times are milliseconds since the Unix epoch (BIGINT),
-- booleans are avoided, and everything but the full-text table below is plain
-- SQL that PostgreSQL accepts as well (its migrations will swap INTEGER PRIMARY
-- KEY for an identity column and the FTS5 table for a tsvector index).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

-- Only a hash of each bearer token is kept.
CREATE TABLE sessions (
    token_hash TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The open join challenge of each (user, peer id); used at most once.
CREATE TABLE join_challenges (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    peer_id    TEXT   NOT NULL,
    nonce      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, peer_id)
);
CREATE INDEX join_challenges_expiry ON join_challenges (expires_at);

-- A peer is online while left_at is NULL and last_seen is recent enough.
CREATE TABLE peers (
    peer_id   TEXT   PRIMARY KEY,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    addrs     TEXT   NOT NULL,
    joined_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    left_at   BIGINT
);
CREATE INDEX peers_user ON peers (user_id);
CREATE INDEX peers_last_seen ON peers (last_seen);

-- One row per (peer, file id, name): a peer may hold the same bytes under two names.
CREATE TABLE files (
    row_id  INTEGER PRIMARY KEY,
    peer_id TEXT    NOT NULL REFERENCES peers (peer_id) ON DELETE CASCADE,
    file_id TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    size    BIGINT  NOT NULL,
    ext     TEXT    NOT NULL,
    UNIQUE (peer_id, file_id, name)
);
CREATE INDEX files_file_id ON files (file_id);
CREATE INDEX files_name ON files (name);
CREATE INDEX files_ext_size ON files (ext, size);

-- Word search (SQLite only): an external-content FTS5 index over files.name.
CREATE VIRTUAL TABLE files_words USING fts5 (
    name,
    content = 'files',
    content_rowid = 'row_id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER files_words_insert AFTER INSERT ON files BEGIN
    INSERT INTO files_words (rowid, name) VALUES (new.row_id, new.name);
END;
CREATE TRIGGER files_words_delete AFTER DELETE ON files BEGIN
    INSERT INTO files_words (files_words, rowid, name) VALUES ('delete', old.row_id, old.name);
END;
CREATE TRIGGER files_words_update AFTER UPDATE OF name ON files BEGIN
    INSERT INTO files_words (files_words, rowid, name) VALUES ('delete', old.row_id, old.name);
    INSERT INTO files_words (rowid, name) VALUES (new.row_id, new.name);
END;

-- Every operation: who, what, when, and how it ended. Names, not ids, so the
-- record outlives an unregistered account.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        BIGINT  NOT NULL,
    user_name TEXT,
    peer_id   TEXT,
    action    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    detail    TEXT,
    client    TEXT
);
CREATE INDEX audit_at ON audit (at);
