-- Search moved out of SQLite into the index's in-memory catalogue and its
-- text index (rebuilt from this store at every start), so the full-text
-- tables, their triggers and the indexes only search read are dropped:
-- a join is now plain inserts into `files` and its one unique index.

DROP TRIGGER IF EXISTS files_words_insert;
DROP TRIGGER IF EXISTS files_words_delete;
DROP TRIGGER IF EXISTS files_words_update;
DROP TABLE IF EXISTS files_words;

DROP TRIGGER IF EXISTS files_trigrams_insert;
DROP TRIGGER IF EXISTS files_trigrams_delete;
DROP TRIGGER IF EXISTS files_trigrams_update;
DROP TABLE IF EXISTS files_trigrams;

DROP INDEX IF EXISTS files_file_id;
DROP INDEX IF EXISTS files_name;
DROP INDEX IF EXISTS files_ext_size;
