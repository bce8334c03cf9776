#!/usr/bin/env bash
# Builds the release worker into build/ (scripts/build.sh, wrangler's [build] command, runs this).
# KEZ_BUILD_DIR picks another output folder; arguments go on to worker-build (the benchmark
# builds with KEZ_BUILD_DIR=build-bench and `-- --features bench`).
# KEZ_SKIP_BUILD=1 skips it when the caller has just built (the tests do).
set -euo pipefail
source "$(dirname "$0")/env.sh"
out="${KEZ_BUILD_DIR:-build}"
if [ "${KEZ_SKIP_BUILD:-0}" = 1 ] && [ -f "$KEZ_ROOT/$out/index.js" ]; then
    exit 0
fi
kez_install_toolchain
cd "$KEZ_ROOT"
# Unminified, so that scripts/lib/plain-entry.mjs can give it a plain module export (and
# minify it then).
NO_MINIFY=1 worker-build --release --out-dir "$out" "$@"
node "$KEZ_ROOT/scripts/lib/plain-entry.mjs" "$out/index.js"
# Drop the names section that worker-build keeps (~90 KB raw, ~25 KB gzip): the worker
# ships without it. Same feature set as worker-build's own wasm-opt run.
wasm-opt "$out/index_bg.wasm" -o "$out/index_bg.wasm" --strip-debug \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
    --enable-multivalue --enable-reference-types --enable-exception-handling
