-- Controls over downloads: when a queued download tries its source again.
ALTER TABLE downloads ADD COLUMN next_try_ms INTEGER;
