#!/usr/bin/env node
// A minimal kez-chat NATS client: logs in with a registered KEZ identity (its key is the
// NATS user nkey; the auth callout checks it against the registry), then either listens
// on its inbox or sends one message to another user's inbox.
//
//   node scripts/nats-inbox.mjs --key alice-identity.json                 # listen
//   node scripts/nats-inbox.mjs --key bob-identity.json --to alice --text hi  # send
//
// --to takes a handle on the home server at --url (default http://127.0.0.1:8787).
// Messages here are plain text for the demo; the web client seals them end to end.
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { kezAuthenticator } from "./lib/nats.mjs";
import { identity } from "./lib/registration.mjs";

const { values } = parseArgs({
  options: {
    key: { type: "string", default: "kez-identity.json" },
    nats: { type: "string", default: "nats://127.0.0.1:4222" },
    url: { type: "string", default: "http://127.0.0.1:8787" },
    to: { type: "string" },
    text: { type: "string", default: "hello" },
  },
});
const me = identity(JSON.parse(readFileSync(values.key, "utf8")).seed_hex);
const myHex = me.primary.slice("ed25519:".length);
const nc = await connect({ servers: values.nats, authenticator: kezAuthenticator(me), name: "kez-nats-inbox" });

if (values.to) {
  const response = await fetch(`${values.url.replace(/\/+$/, "")}/v1/u/${encodeURIComponent(values.to)}`);
  const user = await response.json();
  if (!response.ok) throw new Error(`${values.to}: ${user.message}`);
  const subject = `kez.inbox.${user.primary.slice("ed25519:".length)}.${myHex}.${randomBytes(8).toString("hex")}`;
  nc.publish(subject, values.text);
  await nc.flush();
  console.log(`sent to ${user.fqhn} on ${subject}`);
  await nc.close();
} else {
  console.log(`connected as ${me.primary}; listening on kez.inbox.${myHex}.> (Ctrl-C to stop)`);
  for await (const message of nc.subscribe(`kez.inbox.${myHex}.>`)) {
    const sender = message.subject.split(".")[3];
    console.log(`from ed25519:${sender}: ${message.string()}`);
  }
}
