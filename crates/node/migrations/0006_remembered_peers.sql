-- Peers known at the last run, so a restart finds the network again even
-- when its bootstrap peers are gone.
CREATE TABLE remembered_peers (
    peer_id   TEXT PRIMARY KEY NOT NULL,
    addrs     TEXT NOT NULL,
    last_seen INTEGER NOT NULL
);
