// Runs a local nostr relay (PyPI nostr-relay, as in the tests) on 127.0.0.1 until Ctrl-C,
// for trying messaging without the internet:
//   ./scripts/relay.sh [port]        (default 7447)
import { startRelay } from "../tests/support/relay.mjs";

const port = Number(process.argv[2] ?? 7447);
const relay = await startRelay({ port });
console.log(`nostr relay on ${relay.url} (a fresh store, removed when it stops); Ctrl-C stops it`);
const stop = async () => {
  await relay.close();
  process.exit(0);
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
