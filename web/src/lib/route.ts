// The app's address bar: which view the main pane shows. Deep links open a chat
// (`/chat/<key>`) or, for a handle, the new-chat view looking it up (`/chat/<handle>`); the
// worker's single-page fallback serves the app at every such path.

export type Route =
  | { view: "home" }
  | { view: "chat"; peer: string }
  | { view: "new"; query?: string }
  | { view: "settings" };

const KEY = /^ed25519:[0-9a-f]{64}$/;

export function routeOf(pathname: string): Route {
  const [, first, rest] = /^\/([^/]*)\/?(.*)$/.exec(pathname) ?? [];
  let value = "";
  try {
    value = decodeURIComponent(rest ?? "");
  } catch {
    // A malformed escape: as if nothing followed.
  }
  switch (first) {
    case "chat":
      if (KEY.test(value)) return { view: "chat", peer: value };
      return value ? { view: "new", query: value } : { view: "home" };
    case "new":
      return value ? { view: "new", query: value } : { view: "new" };
    case "settings":
      return { view: "settings" };
    default:
      return { view: "home" };
  }
}

export function pathOf(route: Route): string {
  switch (route.view) {
    case "chat":
      return `/chat/${route.peer}`;
    case "new":
      return route.query ? `/new/${encodeURIComponent(route.query)}` : "/new";
    case "settings":
      return "/settings";
    default:
      return "/";
  }
}
