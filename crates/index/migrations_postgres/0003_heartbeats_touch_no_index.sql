-- Every heartbeat updates its peer's last_seen. With an index on it, each
-- update wrote a new row version into every index of peers; without one,
-- PostgreSQL can update the row in place on its page (a HOT update), which
-- a lower fill factor leaves room for. Nothing needs the index any more:
-- the peers a joining peer is given to enter the DHT through come from the
-- in-memory catalogue (as on SQLite, migration 0006).

DROP INDEX IF EXISTS peers_last_seen;
ALTER TABLE peers SET (fillfactor = 80);
