-- The transparency log (docs/TRANSPARENCY.md): every accepted statement in order, the hash
-- of every complete subtree of the RFC 9162 tree over them, and the newest signed checkpoint.

-- A statement's entry is written in the same transaction as the statement itself: idx is the
-- next one, so D1's primary orders the log and nothing is accepted without being logged.
CREATE TABLE log_entries (
    idx   INTEGER PRIMARY KEY CHECK (idx >= 0),
    -- the statement envelope exactly as stored (JCS); its UTF-8 bytes are the log entry
    entry TEXT NOT NULL
);

-- Complete subtrees, written once when their last leaf is hashed: key = level << 56 | index.
CREATE TABLE log_nodes (
    key  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);

-- The tree as hashed so far: its size, its right edge (the hex of the hashes of its complete
-- subtrees, largest first) and its signed checkpoint (NULL until the first step).
CREATE TABLE log_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       INTEGER NOT NULL,
    edge       TEXT NOT NULL,
    checkpoint TEXT
);
INSERT INTO log_state (id, size, edge, checkpoint) VALUES (1, 0, '', NULL);

-- The statement that set the binding a lookup shows.
ALTER TABLE registrations ADD COLUMN log_index INTEGER;

-- Registrations made before the log are its first entries, in the order they were made; the
-- first step after this migration hashes them.
INSERT INTO log_entries (idx, entry)
    SELECT row_number() OVER (ORDER BY registered_at, rowid) - 1, envelope FROM registrations;
UPDATE registrations SET log_index = (SELECT idx FROM log_entries WHERE entry = registrations.envelope);
