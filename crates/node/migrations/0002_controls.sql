-- Controls over downloads: when a queued download tries its source again.
ALTER TABLE downloads ADD COLUMN next_try_ms INTEGER;

-- Shared folders added (shared = 1) or removed (shared = 0) while the daemon ran;
-- applied over the folders named at start.
CREATE TABLE shared_folders (
    path   TEXT PRIMARY KEY NOT NULL,
    shared INTEGER NOT NULL
);

-- Small settings changed at run time (sharing online or offline).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
