#!/usr/bin/env bash
# Builds everything `wrangler deploy` and `wrangler dev` ship: the release worker (build/)
# and the web app (public/). wrangler's [build] command runs this.
set -euo pipefail
here="$(dirname "$0")"
bash "$here/build-worker.sh"
bash "$here/build-web.sh"
