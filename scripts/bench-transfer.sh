#!/usr/bin/env bash
# The file-transfer benchmark (not part of the tests): builds the worker and the app, then runs
# benches/transfer.mjs, which sends 5 MB and 10 MB images striped and the naive way over five
# local relays (and with two of them delivering nothing) and prints the times and ratios.
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
kez_install_browser
kez_install_relay
cd "$KEZ_ROOT"
bash scripts/build.sh
KEZ_SKIP_BUILD=1 node --disable-warning=ExperimentalWarning benches/transfer.mjs "$@"
