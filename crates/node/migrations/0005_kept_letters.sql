-- Letters this peer keeps for others while they are away (it is one of the
-- DHT nodes closest to the recipient). Only sealed envelopes: never readable here.
CREATE TABLE kept_letters (
    to_peer    TEXT NOT NULL,
    from_peer  TEXT NOT NULL,
    letter_id  TEXT NOT NULL,
    envelope   BLOB NOT NULL,
    size       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    kept_at    INTEGER NOT NULL,
    PRIMARY KEY (to_peer, from_peer, letter_id)
);
CREATE INDEX kept_letters_from ON kept_letters (from_peer);
CREATE INDEX kept_letters_expiry ON kept_letters (expires_at);

-- Letters their recipient signed for: never kept again until they expire.
CREATE TABLE delivered_letters (
    to_peer    TEXT NOT NULL,
    letter_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (to_peer, letter_id)
);
