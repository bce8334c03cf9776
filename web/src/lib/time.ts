// How times are written in the app: short in the chat list, by day in a conversation. Local
// time, the browser's locale.

import type { StoredMessage } from "./store";

const DAY_MS = 86_400_000;

/** The start of `ms`'s local day. */
function dayStart(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** A message's time of day: "14:05". */
export const clock = (ms: number) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** A chat row's time: the time today, the weekday this week, else the date. */
export function listTime(ms: number, now = Date.now()): string {
  const days = Math.round((dayStart(now) - dayStart(ms)) / DAY_MS);
  if (days <= 0) return clock(ms);
  if (days < 7) return new Date(ms).toLocaleDateString([], { weekday: "short" });
  return new Date(ms).toLocaleDateString([], { day: "numeric", month: "short", year: days > 300 ? "numeric" : undefined });
}

/** A day separator's label: "Today", "Yesterday", else the date. */
export function dayLabel(ms: number, now = Date.now()): string {
  const days = Math.round((dayStart(now) - dayStart(ms)) / DAY_MS);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return new Date(ms).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: days > 300 ? "numeric" : undefined });
}

/** Whether two times fall on different local days (a separator goes between them). */
export const otherDay = (a: number, b: number) => dayStart(a) !== dayStart(b);

/** A message whose signed time is this far from its arrival is shown as delayed. */
export const DELAYED_MS = DAY_MS;

/**
 * Why a received message is flagged as delayed, in words; null when it is not. Signed more than
 * a day after it arrived: its sender's clock or claim. Signed more than a day before it arrived,
 * though the relay it came from had handed over all it stored more than a day after that time:
 * the relay held it back or replayed it, or its sender dated it early. One signed before this
 * device had asked that relay (a device away for days, an identity restored) is not flagged: it
 * may only have waited for the device. One stored before the app kept when the relay was asked
 * is weighed against its arrival alone.
 */
export function delayNote(m: Pick<StoredMessage, "direction" | "sentAt" | "at" | "relayAskedAt">): string | null {
  if (m.direction !== "in") return null;
  const hours = DELAYED_MS / 3_600_000;
  if (m.sentAt - m.at > DELAYED_MS) return `Its signed time is more than ${hours} hours after it arrived: its sender's clock, or what it signed, is off.`;
  if (m.at - m.sentAt <= DELAYED_MS) return null;
  if (m.relayAskedAt === undefined) return `Its signed time is more than ${hours} hours before it arrived: a relay may have held it back or replayed it.`;
  if (m.relayAskedAt === null || m.relayAskedAt - m.sentAt <= DELAYED_MS) return null;
  return `Its signed time is more than ${hours} hours before it arrived, though this device had caught up with the relay it came from since: the relay held it back or replayed it, or its sender dated it early.`;
}
