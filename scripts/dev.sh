#!/usr/bin/env bash
# The local demo in one command: installs a regtest node if none is present
# (bitcoind is used when installed, litecoind otherwise), builds btcts and
# runs `btcts dev`. Ctrl-C stops everything. Extra arguments go to `btcts dev`
# (see `btcts dev --help`).
#
# `scripts/dev.sh --consumer [--block-interval S] [--exit-after S]` runs the
# consumer-chain demo instead (scripts/dev-consumer.sh): a btcts-consumerd
# chain with x/btcts fed to btcts and receiving its timestamps over IBC.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bitcoind >/dev/null 2>&1 && ! command -v litecoind >/dev/null 2>&1; then
  scripts/setup-tests.sh
fi
if [ "${1:-}" = "--consumer" ]; then
  shift
  if ! command -v jq >/dev/null 2>&1; then
    echo "dev: installing jq (the consumer demo edits the chain's genesis with it)"
    sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
  fi
  exec scripts/dev-consumer.sh "$@"
fi
exec cargo run --locked -q -p btcts -- dev "$@"
