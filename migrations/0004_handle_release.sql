-- Key rotation and handle release (README, POST /v1/rotate and /v1/release). A rotation
-- rewrites the row (new key, its statement as the envelope); a release keeps the row, so the
-- handle stays out of reach for the quarantine, and lookups answer 410 with the release.
-- RFC 3339 UTC, server time at release; NULL while the handle is held.
ALTER TABLE registrations ADD COLUMN released_at TEXT;
