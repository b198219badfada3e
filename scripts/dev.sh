#!/usr/bin/env bash
# The local demo in one command: installs a regtest node if none is present
# (bitcoind is used when installed, Debian's litecoind otherwise), builds
# btcts and runs `btcts dev`. Ctrl-C stops everything. Extra arguments go to
# `btcts dev` (see `btcts dev --help`).
#
# `scripts/dev.sh --consumer [--block-interval S] [--exit-after S]` runs the
# consumer-chain demo instead (scripts/dev-consumer.sh): a btcts-consumerd
# chain with x/btcts fed to btcts and receiving its timestamps over IBC.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'dev: %s\n' "$*"; }
apt_install() {
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v bitcoind >/dev/null 2>&1 && ! command -v litecoind >/dev/null 2>&1; then
  say "no bitcoind or litecoind found: installing Debian's litecoind with apt-get (about a minute)…"
  apt_install litecoind
  say "installed $(litecoind -version | head -n 1)"
fi
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  say "installing make and gcc (the build compiles jemalloc and ring from source)"
  apt_install make gcc libc6-dev
fi
if [ "${1:-}" = "--consumer" ]; then
  shift
  if ! command -v jq >/dev/null 2>&1; then
    say "installing jq (the consumer demo edits the chain's genesis with it)"
    apt_install jq
  fi
  exec scripts/dev-consumer.sh "$@"
fi
# Build with cargo's progress visible: the first build compiles ~350 crates.
say "building btcts (first build takes ~10 minutes on 2 cores; later runs start in seconds)"
started=$SECONDS
cargo build --locked -p btcts
say "built in $((SECONDS - started)) s"
exec "${CARGO_TARGET_DIR:-target}/debug/btcts" dev "$@"
