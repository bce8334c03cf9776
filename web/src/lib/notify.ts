// Desktop notifications for new messages while the tab is hidden. Off until the person turns
// them on (the browser asks for permission then, never before). A notification names the chat
// and says "New message": the text stays in the app unless the person chose to show it, since
// notifications may show on a locked screen or be kept by the system.
import * as store from "./store";

export type NotifyMode = "off" | "on" | "with-text";

export async function notifyMode(): Promise<NotifyMode> {
  const mode = await store.getSetting("notify");
  return mode === "on" || mode === "with-text" ? mode : "off";
}

/** Turns notifications on or off; on asks the browser first, and stays off if it says no. */
export async function setNotifyMode(mode: NotifyMode): Promise<NotifyMode> {
  if (mode !== "off") {
    if (typeof Notification === "undefined") return "off";
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission !== "granted") mode = "off";
  }
  await store.putSetting("notify", mode);
  return mode;
}

/** One notification per chat that has new messages; clicking it shows the app on that chat. */
export function notifyNew(mode: NotifyMode, chats: { primary: string; name: string; last?: { text?: string } }[]) {
  if (mode === "off" || typeof Notification === "undefined" || Notification.permission !== "granted") return;
  for (const chat of chats) {
    const body = mode === "with-text" && chat.last?.text !== undefined ? chat.last.text.slice(0, 200) : "New message";
    const notification = new Notification(chat.name, { body, tag: chat.primary });
    notification.onclick = () => {
      window.focus();
      history.pushState(null, "", `/chat/${chat.primary}`);
      dispatchEvent(new PopStateEvent("popstate"));
      notification.close();
    };
  }
}
