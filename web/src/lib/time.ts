// How times are written in the app: short in the chat list, by day in a conversation. Local
// time, the browser's locale.

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
