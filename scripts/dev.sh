#!/usr/bin/env bash
# Runs the server locally on http://127.0.0.1:8787 (PORT to change it): installs the
# toolchain if missing, applies the D1 migrations to the local database (.wrangler/),
# then starts wrangler dev, which builds the worker and the web app and serves both.
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
cd "$KEZ_ROOT"
# Local only, so no need to confirm (CI=true keeps wrangler from prompting).
CI=true wrangler d1 migrations apply DB --local
# Extra arguments go to wrangler dev (for example --var NOSTR_RELAYS:ws://127.0.0.1:7447).
exec wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "$@"
