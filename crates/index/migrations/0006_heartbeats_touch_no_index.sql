-- Every heartbeat updates its peer's last_seen, and the index on it made
-- each such update rewrite an index entry too. Nothing needs it any more:
-- the peers a joining peer is given to enter the DHT through come from the
-- in-memory catalogue, and the scans at start and in the sweeps read every
-- peer anyway.

DROP INDEX IF EXISTS peers_last_seen;
