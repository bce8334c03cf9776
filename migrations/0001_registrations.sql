-- The handle registry. The UNIQUE constraints (the primary key on handle, UNIQUE on
-- primary_key) are what decide concurrent registrations: the worker never reads before
-- it writes, so exactly one of N racing inserts wins and the others get 409.
CREATE TABLE registrations (
    handle        TEXT PRIMARY KEY NOT NULL CHECK (length(handle) BETWEEN 3 AND 32),
    -- "ed25519:" followed by 64 lowercase hex digits
    primary_key   TEXT NOT NULL UNIQUE CHECK (length(primary_key) = 72),
    -- RFC 3339 UTC, server time at registration
    registered_at TEXT NOT NULL,
    -- the whole signed registration envelope, JCS-canonical, so clients can verify the
    -- handle-to-key binding without trusting this server
    envelope      TEXT NOT NULL
);
