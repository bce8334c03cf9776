#!/usr/bin/env bash
# A longer run of the property tests of every parser of untrusted input (src/fuzz.rs,
# crates/kez-nats/src/fuzz.rs): CASES random inputs per property (default 100,000; the test
# command runs 256), plus the committed corpus tests/vectors/nasty-inputs.json.
#   ./scripts/fuzz.sh [CASES]
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
cd "$KEZ_ROOT"
cases="${1:-100000}"
kez_log "property tests, $cases cases per property"
KEZ_FUZZ_CASES="$cases" cargo test --quiet -p kez-chat-server -p kez-nats fuzz
