// Runs read-check-writes of one named record alone, so that two in flight (a server chooses
// when each of its answers arrives) cannot each pass against the same old value and then
// overwrite one another.

/** Updates waiting their turn, by name (where the browser has no Web Locks). */
const turns = new Map<string, Promise<unknown>>();

/**
 * Runs `update` once every earlier update of `name` has ended (fulfilled or not), across this
 * app's tabs with Web Locks, else within the page. `update` must read what it changes afresh,
 * and must not wait on another update of the same name (it would wait for itself).
 */
export function exclusively<T>(name: string, update: () => Promise<T>): Promise<T> {
  if (typeof navigator !== "undefined" && "locks" in navigator) return navigator.locks.request(`kez-chat ${name}`, update);
  const run = (turns.get(name) ?? Promise.resolve()).then(update, update);
  turns.set(name, run.catch(() => {}));
  return run;
}
