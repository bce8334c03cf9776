// Gives the worker built by worker-build (unminified: NO_MINIFY=1) a plain module export,
// then minifies it. worker-build's shim makes the default export a Proxy of a
// WorkerEntrypoint class: every request constructs an instance, a Proxy with a spread handler
// object, and a Proxy and an extra promise around `fetch`, which cost a tenth of a cached
// lookup (BENCHMARKS.md). The plain export keeps what that machinery is for: a trap in the
// wasm (a panic) marks the instance broken, and the next request starts a fresh one
// (worker-build's own `checkReinitialize`/`handleMaybeCritical`). Nothing uses RPC on the class.
//
//   node scripts/lib/plain-entry.mjs build/index.js
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const file = process.argv[2];
const source = readFileSync(file, "utf8");
const proxied = "var shim_default = new Proxy(Entrypoint, classProxyHooks);";
for (const needed of [proxied, "function checkReinitialize()", "function handleMaybeCritical(e)", "Entrypoint.prototype.fetch = function"]) {
  if (source.split(needed).length !== 2) throw new Error(`${file}: expected exactly one "${needed}" (has worker-build's shim changed?)`);
}
// The class's fetch only hands `this.env` and `this.ctx` to wasm-bindgen's `fetch`: the
// plain export calls that function itself, with no object made for `this`.
const forward = /Entrypoint\.prototype\.fetch = function \w*\(arg\) \{\s*return (\w+)\.call\(this, arg, this\.env, this\.ctx\);\s*\};/.exec(source);
if (forward === null) throw new Error(`${file}: Entrypoint.prototype.fetch is not the expected forward to wasm-bindgen's fetch (has worker-build's shim changed?)`);
const plain = `var shim_default = {
  fetch(request, env, ctx) {
    checkReinitialize();
    try {
      const response = ${forward[1]}(request, env, ctx);
      return response instanceof Promise ? response.catch(rethrowCritical) : response;
    } catch (e) {
      return rethrowCritical(e);
    }
  },
};
function rethrowCritical(e) {
  handleMaybeCritical(e);
  throw e;
}`;
writeFileSync(file, source.replace(proxied, plain));
// Bundling again drops what nothing references any more (the class proxy hooks).
// KEZ_KEEP_NAMES=1 leaves it unminified, for a profile that names the JS functions.
execFileSync(process.env.ESBUILD_BIN ?? "esbuild", [
  file, "--bundle", ...(process.env.KEZ_KEEP_NAMES === "1" ? [] : ["--minify"]), "--format=esm", "--allow-overwrite", `--outfile=${file}`,
  "--external:./index_bg.wasm", "--external:cloudflare:workers", "--log-level=warning",
], { stdio: "inherit" });
