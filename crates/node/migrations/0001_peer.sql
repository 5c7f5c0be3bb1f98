-- The peer's own state: hashes of shared files and the downloads it runs.
CREATE TABLE hash_cache (
    path       TEXT PRIMARY KEY NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    piece_len  INTEGER NOT NULL,
    file_id    TEXT NOT NULL,
    leaves     BLOB NOT NULL
);

CREATE TABLE downloads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    source      TEXT NOT NULL,
    state       TEXT NOT NULL,
    error       TEXT,
    path        TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX downloads_by_file ON downloads (file_id, state);
