#!/usr/bin/env bash
# Builds the release worker into build/ (wrangler's [build] command runs this).
# KEZ_SKIP_BUILD=1 skips it when the caller has just built (the tests do).
set -euo pipefail
source "$(dirname "$0")/env.sh"
if [ "${KEZ_SKIP_BUILD:-0}" = 1 ] && [ -f "$KEZ_ROOT/build/index.js" ]; then
    exit 0
fi
kez_install_toolchain
cd "$KEZ_ROOT"
worker-build --release
