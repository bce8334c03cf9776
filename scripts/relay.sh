#!/usr/bin/env bash
# Runs local nostr relays on ws://127.0.0.1:PORT until Ctrl-C (installs nostr-relay once):
#   ./scripts/relay.sh [PORT ...] [--max-event-size N] [--events-per-second N]
# (default: one relay on 7447; see scripts/relay.mjs).
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
kez_install_relay
exec node --disable-warning=ExperimentalWarning "$KEZ_ROOT/scripts/relay.mjs" "$@"
