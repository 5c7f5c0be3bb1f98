-- Accounts: user names' look-alike keys and admin rights bound to accounts.

-- The UTS #39 confusable skeleton of each user name: two names with the same
-- skeleton look alike, so only one of them may exist. NULL for accounts made
-- before this migration until the index fills it in.
ALTER TABLE users ADD COLUMN skeleton TEXT;
CREATE UNIQUE INDEX users_skeleton ON users (skeleton);

-- Each configured admin name and the account its rights are bound to: the
-- account that held the name when the index first saw the setting, or the
-- first to register it after. Not a foreign key on purpose: the row outlives
-- the account, so a deleted admin's name stays reserved until the operator
-- drops the name from the settings and adds it again.
CREATE TABLE admins (
    name     TEXT   PRIMARY KEY,
    user_id  BIGINT NOT NULL,
    bound_at BIGINT NOT NULL
);
