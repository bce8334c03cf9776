// Small helpers shared by the integration tests.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import { identity, registrationPayload, signEnvelope } from "../../scripts/lib/registration.mjs";

export { identity, registrationPayload, signEnvelope };

/** A handle no other test uses. */
export function uniqueHandle(prefix = "t") {
  return `${prefix}${randomBytes(6).toString("hex")}`;
}

export async function getJson(url, init) {
  const response = await fetch(url, init);
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, body };
}

/** POSTs `body` (an object is sent as JSON, a string or bytes as they are) to /v1/register. */
export function postRegister(base, body, headers = { "content-type": "application/json" }) {
  const payload = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  return getJson(`${base}/v1/register`, { method: "POST", headers, body: payload });
}

/** A valid, freshly signed envelope for a new identity; `edit` may change the payload first. */
export function freshEnvelope(server, { handle = uniqueHandle(), id = identity(), edit = () => {} } = {}) {
  const payload = registrationPayload({ handle, primary: id.primary, server });
  edit(payload);
  return { id, handle, envelope: signEnvelope(id, payload) };
}

/** Asserts the shape of an API error and returns its code. */
export function errorCode(response) {
  const { body } = response;
  if (typeof body !== "object" || body === null) throw new Error(`not a JSON error: ${body}`);
  if (Object.keys(body).sort().join() !== "error,message") throw new Error(`unexpected error body ${JSON.stringify(body)}`);
  if (!/^[a-z_]+$/.test(body.error) || typeof body.message !== "string" || body.message.length < 10) {
    throw new Error(`bad error body ${JSON.stringify(body)}`);
  }
  if (!response.headers.get("content-type").startsWith("application/json")) throw new Error("error is not application/json");
  return body.error;
}

/** The log key of `seedHex` (an Ed25519 seed) and its raw public key. */
function logKeyOf(seedHex) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(seedHex, "hex")]);
  const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  return { key, raw: createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32) };
}

/** The signed-note key ID of `name` and an Ed25519 public key. */
const keyIdOf = (name, raw) => createHash("sha256").update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.from([1]), raw])).digest().subarray(0, 4);

/** The signed-note verifier key of an Ed25519 seed (hex) for key name `name`, made here from C2SP signed-note. */
export function verifierKeyOf(seedHex, name) {
  const { raw } = logKeyOf(seedHex);
  return `${name}+${keyIdOf(name, raw).toString("hex")}+${Buffer.concat([Buffer.from([1]), raw]).toString("base64")}`;
}

/**
 * A C2SP checkpoint of `size` and `root` (bytes) signed as `origin` by the log key of
 * `seedHex`: what a server holding that key can sign, for any history it likes.
 */
export function signCheckpoint(seedHex, origin, size, root) {
  const { key, raw } = logKeyOf(seedHex);
  const text = `${origin}\n${size}\n${Buffer.from(root).toString("base64")}\n`;
  const signature = Buffer.concat([keyIdOf(origin, raw), sign(null, Buffer.from(text), key)]);
  return `${text}\n— ${origin} ${signature.toString("base64")}\n`;
}
