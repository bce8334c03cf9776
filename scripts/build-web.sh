#!/usr/bin/env bash
# Builds the web app (web/, Svelte + TypeScript) into public/, the worker's static assets.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# KEZ_SKIP_BUILD=1: the caller has just built it (the tests do).
if [ "${KEZ_SKIP_BUILD:-0}" = 1 ] && [ -f "$KEZ_ROOT/public/index.html" ]; then
    exit 0
fi
kez_install_toolchain
cd "$KEZ_ROOT"
bash scripts/build-erasure.sh
node scripts/lib/emoji-data.mjs
vite build --config web/vite.config.ts --logLevel warn
