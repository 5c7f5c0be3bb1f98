-- Substring search (SQLite only): an external-content FTS5 index of every
-- three-character sequence of files.name, so `mode=substring` with three or
-- more characters reads an index instead of scanning every name. PostgreSQL
-- would use a pg_trgm GIN index on files.name instead.

CREATE VIRTUAL TABLE files_trigrams USING fts5 (
    name,
    content = 'files',
    content_rowid = 'row_id',
    tokenize = 'trigram',
    detail = 'full'
);
INSERT INTO files_trigrams (files_trigrams) VALUES ('rebuild');

CREATE TRIGGER files_trigrams_insert AFTER INSERT ON files BEGIN
    INSERT INTO files_trigrams (rowid, name) VALUES (new.row_id, new.name);
END;
CREATE TRIGGER files_trigrams_delete AFTER DELETE ON files BEGIN
    INSERT INTO files_trigrams (files_trigrams, rowid, name) VALUES ('delete', old.row_id, old.name);
END;
CREATE TRIGGER files_trigrams_update AFTER UPDATE OF name ON files BEGIN
    INSERT INTO files_trigrams (files_trigrams, rowid, name) VALUES ('delete', old.row_id, old.name);
    INSERT INTO files_trigrams (rowid, name) VALUES (new.row_id, new.name);
END;
