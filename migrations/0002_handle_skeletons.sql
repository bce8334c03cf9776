-- Lookalike handles (README, "Handles"): each registration stores its handle's skeleton,
-- what it looks like (src/domain/handle.rs `skeleton`), and the UNIQUE index decides, as for
-- the handle itself: of two handles that look alike, only the first is registered; the
-- second gets 409 handle_confusable. Skeletons of handles registered before this migration
-- are computed here with the same steps (a Rust test checks the expression). If two of them
-- already look alike, creating the index fails: rename one first.
ALTER TABLE registrations ADD COLUMN skeleton TEXT;
UPDATE registrations SET skeleton = replace(replace(replace(replace(replace(replace(replace(replace(replace(handle, '-', ''), '_', ''), '0', 'o'), '1', 'l'), 'i', 'l'), '5', 's'), 'rn', 'm'), 'vv', 'w'), 'cl', 'd');
CREATE UNIQUE INDEX registrations_skeleton ON registrations (skeleton);
