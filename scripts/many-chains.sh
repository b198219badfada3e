#!/usr/bin/env bash
# The "many chains" benchmark of docs/BENCHMARKS.md (issue 18, target 5):
# a litecoind regtest node mining a block every 10 s, a release `btcts serve`
# configured with N chains (one token each), and the open-loop load of
# api/examples/many_chains.rs: every chain POSTs one record per second.
# Prints the load's per-minute table; everything is removed afterwards
# (KEEP=1 keeps the directory, with the server's log).
#
#   cargo build --release -p btcts --bin btcts --example many_chains
#   scripts/many-chains.sh [CHAINS] [SECONDS]        # default 1000 600
#
# Environment: PORT (HTTP, default 18080), CACHE_MB (the server's
# `[store] cache_mb`, default 64 as docs/operations.md sets for this
# deployment), BLOCK_SECS (default 10),
# REPORT_SECS (default 60), RUN_ARGS (more `many_chains run` flags, e.g.
# --duplicates), TRACE=1 (keeps the directory; every 5 s scrapes the
# server's store write timings and request durations into trace.prom and
# `vmstat` into vmstat.txt; `contrib/bench/store_trace.py DIR` prints them
# per interval).
set -euo pipefail
cd "$(dirname "$0")/.."

chains=${1:-1000}
seconds=${2:-600}
port=${PORT:-18080}
block_secs=${BLOCK_SECS:-10}
report_secs=${REPORT_SECS:-60}
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d /tmp/btcts-many-chains.XXXXXX)
node_dir=$work/node
mkdir -p "$node_dir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rpc_port=$(free_port)
cli() { litecoin-cli -regtest -datadir="$node_dir" -rpcport="$rpc_port" "$@"; }

node_pid= serve_pid= miner_pid= trace_pids=
[ "${TRACE:-0}" = 1 ] && KEEP=1
cleanup() {
  [ -n "$miner_pid" ] && kill "$miner_pid" 2>/dev/null || true
  [ -n "$trace_pids" ] && kill $trace_pids 2>/dev/null || true
  if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$node_pid" ]; then cli stop >/dev/null 2>&1 || true; wait "$node_pid" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Cookie authentication: the node writes regtest/.cookie, btcts reads it.
litecoind -regtest -daemon=0 -datadir="$node_dir" -rpcport="$rpc_port" -port="$(free_port)" \
  -rpcbind=127.0.0.1 -rpcallowip=127.0.0.1 -listen=0 -connect=0 -dnsseed=0 -upnp=0 \
  -discover=0 -txindex=1 -fallbackfee=0.0001 -keypool=10 -printtoconsole=0 \
  -vbparams=mweb:-2:-2 -mempoolreplacement=1 -rpcserialversion=1 >/dev/null 2>&1 &
node_pid=$!
for _ in $(seq 100); do cli getblockcount >/dev/null 2>&1 && break; sleep 0.2; done
cli createwallet btcts >/dev/null
spk=$(cli getaddressinfo "$(cli getnewaddress)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["scriptPubKey"])')
cli generatetodescriptor 101 "raw($spk)" >/dev/null

"$bin/examples/many_chains" write-config --dir "$work" --chains "$chains" \
  --listen "127.0.0.1:$port" --node-url "http://127.0.0.1:$rpc_port" \
  --node-cookie-file "$node_dir/regtest/.cookie" --cache-mb "${CACHE_MB:-64}"
"$bin/btcts" serve --config "$work/btcts.toml" 2>"$work/btcts.log" &
serve_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { tail "$work/btcts.log"; exit 1; }

if [ "${TRACE:-0}" = 1 ]; then
  ( while sleep 5; do
      echo "# $(date +%s.%N)"
      curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^btcts_(store_(write|commit|disk)|http_request_duration_seconds)' || true
    done ) >"$work/trace.prom" &
  trace_pids=$!
  vmstat -n -t 5 >"$work/vmstat.txt" &
  trace_pids="$trace_pids $!"
fi

( while sleep "$block_secs"; do cli generatetodescriptor 1 "raw($spk)" >/dev/null; done ) &
miner_pid=$!

echo "btcts pid $serve_pid, node pid $node_pid; $(uptime)"
"$bin/examples/many_chains" run --url "http://127.0.0.1:$port" --tokens "$work/tokens" \
  --seconds "$seconds" --report-secs "$report_secs" --server-pid "$serve_pid" ${RUN_ARGS:-}
echo "blocks: $(cli getblockcount); server metrics:"
curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^btcts_(api_records_accepted_total|store_pending_records|store_disk_bytes|anchor_sealed_total|anchor_transactions_total)' || true
echo "server log: $(grep -c . "$work/btcts.log") lines, $(grep -ciE 'warn|error' "$work/btcts.log") warn/error"
