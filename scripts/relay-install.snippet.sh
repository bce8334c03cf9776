# To merge into scripts/env.sh (needs KEZ_ROOT, KEZ_TOOLS_DIR and kez_log from there).
# nostr-relay for local relays in the browser tests, from PyPI, with every dependency
# pinned by tests/relay-requirements.txt (nostr-relay itself leaves them unpinned).
NOSTR_RELAY_VERSION="1.14"

kez_install_relay() {
    local relay="$KEZ_TOOLS_DIR/nostr-relay-$NOSTR_RELAY_VERSION"
    if [ ! -x "$relay/bin/nostr-relay" ]; then
        kez_log "installing nostr-relay $NOSTR_RELAY_VERSION (PyPI, pinned by tests/relay-requirements.txt)"
        python3 -m venv "$relay"
        "$relay/bin/pip" install --quiet --disable-pip-version-check --no-deps \
            -r "$KEZ_ROOT/tests/relay-requirements.txt"
    fi
    export KEZ_NOSTR_RELAY_BIN="$relay/bin/nostr-relay"
}
