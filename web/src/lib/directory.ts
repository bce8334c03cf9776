// Finding people: by handle here, by handle@domain anywhere (WebFinger), or by key.
// Nothing the directory says is trusted until the key's own signature checks out.
import { ApiError, fetchUser, lookupHandle, lookupPrimary, originOf, sentence, webfinger } from "./api";
import { checkHandle } from "./handle";
import { parsePrimary } from "./identity";
import { checkLogged } from "./logwatch";
import { BindingError, type Envelope, type VerifiedUser, verifyUserBody } from "./registration";
import type { LogProof } from "./log";

export type Query = { kind: "handle"; handle: string; domain: string } | { kind: "primary"; primary: string };

const USER_REL = "https://kez.chat/rel/user";
const PRIMARY_PROPERTY = "https://kez.chat/ns/primary";

/** What the person typed, as a query; `home` is this server's domain. Throws a sentence. */
export function parseQuery(input: string, home: string): Query {
  const text = input.trim().replace(/^@/, "");
  if (text.startsWith("ed25519:")) {
    const primary = text.toLowerCase();
    if (!parsePrimary(primary)) throw new ApiError("invalid_primary_key", sentence("invalid_primary_key", ""));
    return { kind: "primary", primary };
  }
  const at = text.lastIndexOf("@");
  const handle = (at < 0 ? text : text.slice(0, at)).toLowerCase();
  const domain = (at < 0 ? home : text.slice(at + 1)).toLowerCase();
  const check = checkHandle(handle);
  if (!check.ok && check.reason !== "reserved") {
    throw new ApiError("invalid_handle", handle === "" ? "Type a handle, handle@domain or a key." : `“${handle}” is not a handle. ${check.message}`);
  }
  if (!/^[a-z0-9.-]+(:\d{1,5})?$|^\[::1\](:\d{1,5})?$/.test(domain)) {
    throw new ApiError("invalid_domain", `“${domain}” is not a domain name.`);
  }
  return { kind: "handle", handle, domain };
}

/**
 * A lookup (or registration) answer, checked twice: the binding is signed by its key
 * (`verifyUserBody`), and it is in the server's transparency log, consistent with what this
 * app saw of that log before (`checkLogged`; a lie raises the alarm). Errors are sentences.
 */
export async function verifyLogged(body: unknown, expect: { server: string; handle?: string; primary?: string }, home: string): Promise<VerifiedUser> {
  const user = verifyUserBody(body, expect);
  await checkLogged(body as { envelope: Envelope; log?: LogProof | null }, user.server, home);
  return user;
}

/** Looks a person up and verifies the binding. Errors are ApiError, BindingError or LogError sentences. */
export async function find(query: Query, home: string): Promise<VerifiedUser> {
  if (query.kind === "primary") {
    return verifyLogged(await lookupPrimary(query.primary), { server: home, primary: query.primary }, home);
  }
  if (query.domain === home.toLowerCase()) {
    return verifyLogged(await lookupHandle(query.handle), { server: home, handle: query.handle }, home);
  }
  const jrd = (await webfinger(query.handle, query.domain)) as {
    links?: { rel?: string; href?: string }[];
    properties?: Record<string, string>;
  };
  const href = jrd.links?.find((l) => l.rel === USER_REL)?.href;
  if (typeof href !== "string" || !href.startsWith(`${originOf(query.domain)}/`)) {
    throw new BindingError(`${query.domain} did not point to a kez-chat user on its own server.`);
  }
  const user = await verifyLogged(await fetchUser(href), { server: query.domain, handle: query.handle }, home);
  if (jrd.properties?.[PRIMARY_PROPERTY] !== user.primary) {
    throw new BindingError(`${query.domain} gave two different keys for ${user.fqhn}.`);
  }
  return user;
}
