#!/usr/bin/env bash
# Runs a local nostr relay on ws://127.0.0.1:${1:-7447} until Ctrl-C (installs it once).
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
kez_install_relay
exec node --disable-warning=ExperimentalWarning "$KEZ_ROOT/scripts/relay.mjs" "$@"
