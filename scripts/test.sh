#!/usr/bin/env bash
# Runs every test: native unit tests of the pure Rust logic and of the web app's TypeScript
# (vitest), then black-box integration tests of the release worker in workerd (wrangler dev)
# with a fresh local D1, over HTTP; of the NATS auth callout with a real nats-server and the
# bridge; and of the web app in headless Chromium.
# Installs the pinned toolchain, Chromium and the local nostr relays first if missing (cached for
# later runs; building nostr-rs-relay takes 13 to 16 minutes once).
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
kez_install_browser
kez_install_relay
kez_install_nostr_rs_relay
cd "$KEZ_ROOT"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

kez_log "formatting and lints (cargo fmt --check, cargo clippy -D warnings)"
cargo fmt --check -p kez-chat-server -p kez-nats -p kez-nats-bridge
cargo clippy --quiet --workspace --all-targets -- -D warnings

kez_log "unit tests (cargo test, native: worker logic, NATS callout, bridge)"
cargo test --quiet --workspace 2>&1 | tee "$logs/unit"

kez_log "fixed vectors, checked independently in Python (cryptography, no project code)"
"$KEZ_VECTOR_PYTHON" tests/vectors/check_messaging.py tests/vectors/messaging.json
"$KEZ_VECTOR_PYTHON" tests/vectors/check_log.py tests/vectors/log.json

kez_log "web app: type check (svelte-check) and unit tests (vitest)"
bash scripts/build-erasure.sh
node scripts/lib/emoji-data.mjs
svelte-check --tsconfig ./tsconfig.json --workspace web --output human --fail-on-warnings
vitest run --config web/vite.config.ts --reporter=default --reporter=json --outputFile.json="$logs/vitest.json"

kez_log "building the release worker, the web app and the NATS bridge"
bash scripts/build.sh
cargo build --quiet --release -p kez-nats-bridge

kez_log "integration tests (node --test, worker in workerd)"
# The tests run the worker they just built; wrangler's [build] is skipped.
KEZ_SKIP_BUILD=1 node --disable-warning=ExperimentalWarning --test --test-reporter=spec --test-concurrency=1 tests/*.test.mjs 2>&1 | tee "$logs/integration"

unit_passed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^passed;?$/) s += $(i-1) } END { print s + 0 }' "$logs/unit")
unit_failed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^failed;?$/) s += $(i-1) } END { print s + 0 }' "$logs/unit")
web_passed=$(node -p "require('$logs/vitest.json').numPassedTests")
web_failed=$(node -p "require('$logs/vitest.json').numFailedTests")
it_passed=$(awk '$1 == "ℹ" && $2 == "pass" { print $3 }' "$logs/integration")
it_failed=$(awk '$1 == "ℹ" && $2 == "fail" { print $3 }' "$logs/integration")
echo
echo "unit (cargo test): $unit_passed passed, $unit_failed failed"
echo "unit (vitest, web app): $web_passed passed, $web_failed failed"
echo "integration (node --test: workerd, nats-server, Chromium): $it_passed passed, $it_failed failed"
echo "total: $((unit_passed + web_passed + it_passed)) passed, $((unit_failed + web_failed + it_failed)) failed"
