-- Search reads the index's in-memory catalogue, never this database (as on
-- SQLite since its migration 0005), so the indexes only search used are
-- dropped, and with them the row id nothing reads: a file row is then
-- written into one heap and one B-tree (peer, file id, name) instead of
-- five. Unpublish and the cascade from peers use that unique index's
-- leading columns.

DROP INDEX IF EXISTS files_file_id;
DROP INDEX IF EXISTS files_name;
DROP INDEX IF EXISTS files_ext_size;
ALTER TABLE files DROP COLUMN IF EXISTS row_id;
