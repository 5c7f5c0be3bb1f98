-- How a download is fetched, chosen when it is asked for: pieces in file
-- order (to preview media), and its own rate limit in bytes per second.
ALTER TABLE downloads ADD COLUMN sequential INTEGER NOT NULL DEFAULT 0;
ALTER TABLE downloads ADD COLUMN max_rate INTEGER;
