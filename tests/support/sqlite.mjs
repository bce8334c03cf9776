import { DatabaseSync } from "node:sqlite";

/**
 * Opens a SQLite file that a running server (workerd's D1, a relay) also has open. Its writes
 * lock the file for a moment; without a busy timeout a test's read or tamper that lands in
 * that moment fails with "database is locked", so this waits for the lock instead.
 */
export function openShared(file, { readOnly = false } = {}) {
  return new DatabaseSync(file, { readOnly, timeout: 30_000 });
}
