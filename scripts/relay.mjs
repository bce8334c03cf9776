// Runs local nostr relays (PyPI nostr-relay, as in the tests) on 127.0.0.1 until Ctrl-C or
// SIGTERM, for trying messaging without the internet:
//   ./scripts/relay.sh [PORT ...] [--max-event-size N] [--events-per-second N] [--ready-file PATH]
// One relay per port (default: one on 7447), each with a fresh store in its own temp dir,
// removed when it stops. --max-event-size caps an event's `content` in characters (default
// 262144); --events-per-second turns on nostr-relay's rate limiter (answers `rate-limited:`);
// --ready-file is written once every relay accepts WebSockets (scripts/dev.sh waits for it).
// A port that is already taken is an error, before any relay starts.
import { writeFileSync } from "node:fs";
import { assertPortFree, startRelay } from "../tests/support/relay.mjs";

const USAGE = "usage: relay.mjs [PORT ...] [--max-event-size N] [--events-per-second N] [--ready-file PATH]";

function parseArgs(argv) {
  const ports = [];
  const options = {};
  let readyFile = null;
  const positiveInteger = (flag, value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, not ${value ?? "nothing"}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--max-event-size") options.maxEventSize = positiveInteger(arg, argv[++i]);
    else if (arg === "--events-per-second") options.eventsPerSecond = positiveInteger(arg, argv[++i]);
    else if (arg === "--ready-file") readyFile = argv[++i];
    else if (/^\d+$/.test(arg) && Number(arg) > 0 && Number(arg) < 65536) ports.push(Number(arg));
    else throw new Error(`unexpected argument ${arg}\n${USAGE}`);
  }
  return { ports: ports.length > 0 ? ports : [7447], options, readyFile };
}

const relays = [];
let stopping = null;
function stopAll(code) {
  stopping ??= (async () => {
    for (const relay of relays) await relay.close();
    process.exit(code);
  })();
  return stopping;
}
process.once("SIGINT", () => stopAll(0));
process.once("SIGTERM", () => stopAll(0));

try {
  const { ports, options, readyFile } = parseArgs(process.argv.slice(2));
  if (new Set(ports).size !== ports.length) throw new Error(`a port is given twice: ${ports.join(" ")}`);
  for (const port of ports) await assertPortFree(port);
  for (const port of ports) {
    const relay = await startRelay({ ...options, port });
    relays.push(relay);
    console.log(`nostr relay on ${relay.url} (a fresh store, removed when it stops)`);
  }
  console.log(`${relays.length === 1 ? "it runs" : `${relays.length} relays run`} until Ctrl-C`);
  if (readyFile) writeFileSync(readyFile, `${relays.map((r) => r.url).join(",")}\n`);
} catch (e) {
  console.error(`relay.mjs: ${e.message}`);
  await stopAll(1);
}
