-- When the statement in force for a handle (its registration, or its last rotation) says it
-- was signed: its `created_at`, in Unix ms. A rotation or release signed before it is refused
-- (409 statement_superseded), so that a replay of an older statement, within the freshness
-- window, cannot undo a newer one. NULL for rows written before this column: their
-- statements are older than the freshness window, and no replay of them is accepted anyway.
ALTER TABLE registrations ADD COLUMN stated_at_ms INTEGER;
