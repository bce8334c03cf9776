#!/usr/bin/env bash
# Runs the server locally on http://127.0.0.1:8787 (PORT to change it): installs the
# toolchain if missing, applies the D1 migrations to the local database (.wrangler/),
# then starts wrangler dev, which builds the worker and the web app and serves both.
#
# Unless you name relays (`--var NOSTR_RELAYS:...`, a NOSTR_RELAYS environment variable or a
# NOSTR_RELAYS line in .dev.vars), it first starts three local nostr relays (PyPI
# nostr-relay) on ws://127.0.0.1:7447, 7448 and 7449, limited like strfry's default (64 KiB
# of event content), and points the app at them; each keeps its events in a fresh temp dir
# that is deleted when dev.sh stops (Ctrl-C or SIGTERM stops the relays too).
#
# The transparency log's signing key (LOG_SIGNING_SEED) is made on the first run and kept in
# .dev.vars (git-ignored), so the local log is signed with the same key from run to run.
#
# Environment: PORT (default 8787); KEZ_RELAY_PORTS (default "7447 7448 7449");
# KEZ_PERSIST_DIR keeps the local D1 there instead of .wrangler/ (the tests use a temp dir).
set -euo pipefail
source "$(dirname "$0")/env.sh"
kez_install_toolchain
cd "$KEZ_ROOT"

if ! { [ -f .dev.vars ] && grep -q '^LOG_SIGNING_SEED=' .dev.vars; }; then
    # Appended on a line of its own, whatever the file held.
    if [ -s .dev.vars ] && [ -n "$(tail -c1 .dev.vars)" ]; then echo >> .dev.vars; fi
    (umask 077 && echo "LOG_SIGNING_SEED=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >> .dev.vars)
    echo "dev.sh: made the local log's signing key (LOG_SIGNING_SEED in .dev.vars)" >&2
fi

read -r -a RELAY_PORTS <<< "${KEZ_RELAY_PORTS:-7447 7448 7449}"
persist=()
if [ -n "${KEZ_PERSIST_DIR:-}" ]; then persist=(--persist-to "$KEZ_PERSIST_DIR"); fi

# Did the user name the relays? (wrangler's --var takes NAME:VALUE words after it.)
user_relays=no
for arg in "$@"; do
    case "$arg" in
        NOSTR_RELAYS:* | --var=NOSTR_RELAYS:*) user_relays=yes ;;
    esac
done
args=("$@")
if [ "$user_relays" = no ] && [ -n "${NOSTR_RELAYS+set}" ]; then
    user_relays=yes
    args=(--var "NOSTR_RELAYS:$NOSTR_RELAYS" "${args[@]}")
fi
if [ "$user_relays" = no ] && [ -f .dev.vars ] && grep -q '^NOSTR_RELAYS=' .dev.vars; then
    user_relays=yes
fi

# Local only, so no need to confirm (CI=true keeps wrangler from prompting).
CI=true wrangler d1 migrations apply DB --local "${persist[@]}"

if [ "$user_relays" = yes ]; then
    # Extra arguments go to wrangler dev (for example --var NOSTR_RELAYS:ws://127.0.0.1:7447).
    exec wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "${persist[@]}" "${args[@]}"
fi

kez_install_relay
relays_pid=""
wrangler_pid=""
ready_dir="$(mktemp -d)"
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$wrangler_pid" ]; then
        kill -TERM "$wrangler_pid" 2>/dev/null || true
        wait "$wrangler_pid" 2>/dev/null || true
    fi
    if [ -n "$relays_pid" ]; then
        kill -TERM "$relays_pid" 2>/dev/null || true
        wait "$relays_pid" 2>/dev/null || true
    fi
    rm -rf "$ready_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kez_log "starting local nostr relays on ports ${RELAY_PORTS[*]} (NOSTR_RELAYS or --var NOSTR_RELAYS:... to use others)"
node --disable-warning=ExperimentalWarning scripts/relay.mjs "${RELAY_PORTS[@]}" \
    --max-event-size 65536 --ready-file "$ready_dir/ready" &
relays_pid=$!
until [ -s "$ready_dir/ready" ]; do
    if ! kill -0 "$relays_pid" 2>/dev/null; then
        relays_pid=""
        kez_log "the local relays did not start (see above); stop what uses the port, or pass --var NOSTR_RELAYS:..."
        exit 1
    fi
    sleep 0.2
done
relays="$(cat "$ready_dir/ready")"

# Not exec: dev.sh stays to stop the relays when wrangler ends. `<&0` keeps the terminal
# as wrangler's input (its hotkeys) although it runs in the background.
wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "${persist[@]}" --var "NOSTR_RELAYS:$relays" "${args[@]}" <&0 &
wrangler_pid=$!
set +e
wait "$wrangler_pid"
status=$?
set -e
wrangler_pid=""
exit "$status"
