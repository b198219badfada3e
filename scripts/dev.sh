#!/usr/bin/env bash
# The local demo in one command: installs a regtest node if none is present
# (bitcoind is used when installed, litecoind otherwise), builds btcts and
# runs `btcts dev`. Ctrl-C stops everything. Extra arguments go to `btcts dev`
# (see `btcts dev --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bitcoind >/dev/null 2>&1 && ! command -v litecoind >/dev/null 2>&1; then
  scripts/setup-tests.sh
fi
exec cargo run --locked -q -p btcts -- dev "$@"
