-- The device and inode a file had when it was hashed: a file swapped for
-- another with the same size and mtime while the daemon was stopped is
-- hashed again, not trusted. NULL for rows written before this column
-- existed (filled in at the next scan that finds the file unchanged).
ALTER TABLE hash_cache ADD COLUMN device INTEGER;
ALTER TABLE hash_cache ADD COLUMN inode INTEGER;
