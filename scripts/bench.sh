#!/usr/bin/env bash
# The benchmark (not part of the tests): builds the release worker and a bench build
# (extra /__bench/ routes, cargo feature `bench`), then runs benches/run.mjs, which prints
# the table and writes BENCHMARKS.md, then benches/log.mjs (proof sizes and the app's
# verification time at 1,000 and 1,000,000 entries). Pass options through: --duration S --connections N.
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
cd "$KEZ_ROOT"
bash scripts/build-worker.sh
KEZ_SKIP_BUILD=0 KEZ_BUILD_DIR=build-bench bash scripts/build-worker.sh -- --features bench >/dev/null
KEZ_SKIP_BUILD=1 node --disable-warning=ExperimentalWarning benches/run.mjs "$@"
# The transparency log from a client's side, appended to the report (not with --throughput-only).
case " $* " in
    *" --throughput-only "* | *" --out "*) ;;
    *) { echo; echo "## Transparency log, from a client's side (\`benches/log.mjs\`)"; echo; node benches/log.mjs; } >> BENCHMARKS.md ;;
esac
