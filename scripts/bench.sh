#!/usr/bin/env bash
# The benchmark (not part of the tests): builds the release worker and a bench build
# (extra /__bench/ routes, cargo feature `bench`), then runs benches/run.mjs, which prints
# the table and writes BENCHMARKS.md. Pass its options through: --duration S --connections N.
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
cd "$KEZ_ROOT"
bash scripts/build-worker.sh
KEZ_SKIP_BUILD=0 KEZ_BUILD_DIR=build-bench bash scripts/build-worker.sh -- --features bench >/dev/null
KEZ_SKIP_BUILD=1 node --disable-warning=ExperimentalWarning benches/run.mjs "$@"
