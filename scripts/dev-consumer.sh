#!/usr/bin/env bash
# The consumer-chain demo (`scripts/dev.sh --consumer`): fast unbonding end to
# end on one machine, everything on 127.0.0.1 in a temporary directory.
#
#   1. a regtest node (bitcoind if installed, else litecoind) with a wallet
#      `btcts` and 101 blocks, then a block mined every --block-interval seconds;
#   2. a single-validator `btcts-consumerd` chain `demo-1` (x/btcts, 1 s blocks,
#      staking unbonding_time 10 s, k 3, max_hold 3600 s, trusted Bitcoin
#      header = the regtest tip);
#   3. btcts with a token for demo-1 and IBC delivery to it: `btcts ibc setup`,
#      `btcts serve`, and `btcts feed` submitting every block of demo-1.
#
# It prints copy-paste commands to delegate, unbond and watch the release, and
# where the logs are. Ctrl-C (or --exit-after) stops everything and removes
# the directory. Keys and tokens are files of mode 600, never arguments.
#
# Usage: scripts/dev-consumer.sh [--block-interval SECONDS] [--exit-after SECONDS]
# Prebuilt binaries: DEMO_BTCTS_BIN=… DEMO_CONSUMERD_BIN=… (else both are built;
# not BTCTS_*: btcts reads those as configuration).
set -euo pipefail
umask 077

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHAIN_ID=demo-1
K=3
UNBONDING_TIME=10s
MAX_HOLD=3600s
DENOM=stake
GAS_PRICES=0.0025$DENOM

BLOCK_INTERVAL=5
EXIT_AFTER=
usage() {
  echo "usage: scripts/dev-consumer.sh [--block-interval SECONDS] [--exit-after SECONDS]"
  echo "  (prebuilt binaries: DEMO_BTCTS_BIN=... DEMO_CONSUMERD_BIN=...)"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --block-interval) BLOCK_INTERVAL=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --block-interval=*) BLOCK_INTERVAL=${1#*=}; shift ;;
    --exit-after) EXIT_AFTER=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --exit-after=*) EXIT_AFTER=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "dev-consumer: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$BLOCK_INTERVAL" "${EXIT_AFTER:-1}"; do
  case "$n" in '' | *[!0-9]* | 0) echo "dev-consumer: expected a positive number of seconds, got '$n'" >&2; exit 2 ;; esac
done

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

for tool in curl jq xxd base64 sha256sum od; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool is needed (Debian: apt-get install -y curl jq xxd coreutils)"
done
if command -v bitcoind >/dev/null 2>&1; then
  NODE=bitcoind CLI=bitcoin-cli NETWORK=regtest
elif command -v litecoind >/dev/null 2>&1; then
  NODE=litecoind CLI=litecoin-cli NETWORK=litecoin-regtest
else
  die "no regtest node: run scripts/setup-tests.sh (installs litecoind)"
fi
command -v "$CLI" >/dev/null 2>&1 || die "$CLI is needed next to $NODE"

# --- binaries -----------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BTCTS=${DEMO_BTCTS_BIN:-}
if [ -z "$BTCTS" ]; then
  say "building btcts (cargo build --locked -p btcts)…"
  (cd "$ROOT" && cargo build --locked -q -p btcts)
  BTCTS=$TARGET/debug/btcts
fi
CONSUMERD=${DEMO_CONSUMERD_BIN:-}
if [ -z "$CONSUMERD" ]; then
  # As the test harness does (tests/src/chain/binary.rs): Go's build cache
  # under target/go/build, the binary replaced by rename so a running chain
  # keeps its executable, one build at a time.
  command -v go >/dev/null 2>&1 || die "Go is needed to build btcts-consumerd (see scripts/setup-tests.sh)"
  say "building btcts-consumerd (go build, cached in $TARGET/go)…"
  mkdir -p "$TARGET/go/build"
  (
    flock 9
    cd "$ROOT/ibc-relay/go"
    go build -buildvcs=false -o "$TARGET/go/build/btcts-consumerd" ./cmd/btcts-consumerd
    cp "$TARGET/go/build/btcts-consumerd" "$TARGET/go/btcts-consumerd.$$.tmp"
    chmod 755 "$TARGET/go/btcts-consumerd.$$.tmp"
    mv "$TARGET/go/btcts-consumerd.$$.tmp" "$TARGET/go/btcts-consumerd"
  ) 9>"$TARGET/go/build.lock"
  CONSUMERD=$TARGET/go/btcts-consumerd
fi
[ -x "$BTCTS" ] || die "not an executable: $BTCTS"
[ -x "$CONSUMERD" ] || die "not an executable: $CONSUMERD"

# --- the temporary world, removed on exit --------------------------------------
DIR=$(mktemp -d "${TMPDIR:-/tmp}/btcts-demo.XXXXXX")
NODE_DIR=$DIR/node
CHAIN_HOME=$DIR/chain
mkdir -p "$NODE_DIR" "$DIR/feed"
NODE_PID='' CHAIN_PID='' SERVE_PID='' FEED_PID='' MINER_PID=''

# Sends SIGTERM to a process we started and waits up to $2 seconds for it,
# then SIGKILL.
stop_pid() {
  local pid=$1 secs=$2 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$MINER_PID" 2
  stop_pid "$FEED_PID" 10
  stop_pid "$SERVE_PID" 15
  stop_pid "$CHAIN_PID" 15
  if [ -n "$NODE_PID" ]; then
    node_cli stop >/dev/null 2>&1 || true
    stop_pid "$NODE_PID" 30
  fi
  rm -rf "$DIR"
  say "stopped; the regtest node, the chain, btcts and $DIR are gone."
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The last lines of a log, to explain a failure.
fail_with_log() {
  local what=$1 log=$2
  printf 'demo: %s; the last lines of %s:\n' "$what" "$log" >&2
  tail -n 30 "$log" >&2 || true
  exit 1
}

# Sets FOUND to a free loopback port not handed out before, from 20000 up
# to the kernel's ephemeral range: a port in that range can be taken as the
# source port of an outgoing connection (an RPC call, curl) between the
# check here and the listener's bind, and the chain's gRPC server then fails
# to listen while the node goes on making blocks.
read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPHEMERAL_LOW=32768
[ "$EPHEMERAL_LOW" -gt 21000 ] || EPHEMERAL_LOW=50000
PICKED=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % (EPHEMERAL_LOW - 20000)))
    case "$PICKED" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      PICKED="$PICKED$p "
      FOUND=$p
      return
    fi
  done
}
free_port; NODE_RPC=$FOUND
free_port; NODE_P2P=$FOUND
free_port; CHAIN_RPC=$FOUND
free_port; CHAIN_P2P=$FOUND
free_port; CHAIN_GRPC=$FOUND
free_port; PORT=$FOUND
URL=http://127.0.0.1:$PORT
CHAIN_NODE=tcp://127.0.0.1:$CHAIN_RPC

# Sleeps in the background so a signal runs the trap at once.
nap() {
  sleep "$1" &
  wait $! || true
}

# --- 1. the regtest node ---------------------------------------------------------
node_cli() { "$CLI" -regtest -datadir="$NODE_DIR" -rpcport="$NODE_RPC" "$@"; }
say "starting a regtest $NODE and mining 101 blocks to a fresh wallet…"
node_args=(-regtest -daemon=0 -datadir="$NODE_DIR" -rpcport="$NODE_RPC" -port="$NODE_P2P"
  -rpcbind=127.0.0.1 -rpcallowip=127.0.0.1 -listen=0 -connect=0 -dnsseed=0 -upnp=0
  -discover=0 -txindex=1 -fallbackfee=0.0001 -keypool=10 -printtoconsole=1 -nodebuglogfile)
if [ "$NODE" = litecoind ]; then
  # ../shared/NODE.md: MWEB stays off, RBF on, no MWEB data in raw RPC output.
  node_args+=(-vbparams=mweb:-2:-2 -mempoolreplacement=1 -rpcserialversion=1)
fi
"$NODE" "${node_args[@]}" >"$DIR/node.log" 2>&1 &
NODE_PID=$!
for ((i = 0; ; i++)); do
  node_cli getblockcount >/dev/null 2>&1 && break
  kill -0 "$NODE_PID" 2>/dev/null || fail_with_log "$NODE exited during start-up" "$DIR/node.log"
  [ "$i" -lt 300 ] || die "$NODE did not answer RPC within 30 s"
  sleep 0.1
done
node_cli createwallet btcts >/dev/null
MINE_ADDR=$(node_cli -rpcwallet=btcts getnewaddress)
node_cli generatetoaddress 101 "$MINE_ADDR" >/dev/null
TIP=$(node_cli getblockcount)
TIP_HEADER=$(node_cli getblockheader "$(node_cli getblockhash "$TIP")" false | xxd -r -p | base64 -w0)
COOKIE=$NODE_DIR/regtest/.cookie

# --- 2. the consumer chain ----------------------------------------------------------
chaind() { "$CONSUMERD" "$@" --home "$CHAIN_HOME"; }
KEYS=(--keyring-backend test)
say "setting up the consumer chain $CHAIN_ID (btcts-consumerd, one validator)…"
chaind init demo --chain-id "$CHAIN_ID" >/dev/null 2>&1
chaind keys add validator "${KEYS[@]}" --output json >/dev/null 2>&1
chaind keys add relayer "${KEYS[@]}" --output json >/dev/null 2>&1
VALIDATOR=$(chaind keys show validator -a "${KEYS[@]}")
VALOPER=$(chaind keys show validator -a --bech val "${KEYS[@]}")
RELAYER=$(chaind keys show relayer -a "${KEYS[@]}")
chaind genesis add-genesis-account "$VALIDATOR" "100000000000000$DENOM" >/dev/null
chaind genesis add-genesis-account "$RELAYER" "100000000000$DENOM" >/dev/null
GENESIS=$CHAIN_HOME/config/genesis.json
jq --arg denom "$DENOM" --arg unbonding "$UNBONDING_TIME" --arg network "$NETWORK" \
  --arg chain "$CHAIN_ID" --argjson k "$K" --arg hold "$MAX_HOLD" \
  --argjson height "$TIP" --arg header "$TIP_HEADER" '
  .app_state.staking.params.bond_denom = $denom
  | .app_state.staking.params.unbonding_time = $unbonding
  | .app_state.btcts.params += {
      network: $network, source_chains: [$chain], k: $k, max_hold: $hold,
      trusted_header: {height: $height, header: $header}}' \
  "$GENESIS" >"$GENESIS.new"
mv "$GENESIS.new" "$GENESIS"
chaind genesis gentx validator "1000000000$DENOM" --chain-id "$CHAIN_ID" "${KEYS[@]}" >/dev/null 2>&1
chaind genesis collect-gentxs >/dev/null 2>&1
sed -i -e 's/^timeout_commit = .*/timeout_commit = "1s"/' \
  -e 's/^pex = .*/pex = false/' -e 's/^addr_book_strict = .*/addr_book_strict = false/' \
  -e 's/^pprof_laddr = .*/pprof_laddr = ""/' "$CHAIN_HOME/config/config.toml"
sed -i -e "s|^chain-id = .*|chain-id = \"$CHAIN_ID\"|" -e 's/^keyring-backend = .*/keyring-backend = "test"/' \
  -e "s|^node = .*|node = \"$CHAIN_NODE\"|" "$CHAIN_HOME/config/client.toml"
# The relayer account btcts pays its IBC transactions from.
echo y | chaind keys export relayer --unarmored-hex --unsafe "${KEYS[@]}" >"$DIR/relayer.key" 2>/dev/null

"$CONSUMERD" start --home "$CHAIN_HOME" --log_no_color \
  --rpc.laddr "$CHAIN_NODE" --p2p.laddr "tcp://127.0.0.1:$CHAIN_P2P" \
  --grpc.enable --grpc.address "127.0.0.1:$CHAIN_GRPC" --grpc-web.enable=false \
  --api.enable=false --minimum-gas-prices "$GAS_PRICES" >"$DIR/chain.log" 2>&1 &
CHAIN_PID=$!

chain_height() {
  curl -sf "http://127.0.0.1:$CHAIN_RPC/status" | jq -r '.result.sync_info.latest_block_height // 0'
}
for ((i = 0; ; i++)); do
  h=$(chain_height 2>/dev/null || echo 0)
  grpc=no
  (exec 3<>"/dev/tcp/127.0.0.1/$CHAIN_GRPC") 2>/dev/null && grpc=yes
  if [ "${h:-0}" -ge 2 ] && [ "$grpc" = yes ]; then break; fi
  kill -0 "$CHAIN_PID" 2>/dev/null || fail_with_log "btcts-consumerd exited during start-up" "$DIR/chain.log"
  # The SDK keeps the node making blocks when its gRPC server cannot listen.
  [ "$i" -lt 600 ] ||
    fail_with_log "the chain was not ready within 60 s (height ${h:-?}, gRPC on 127.0.0.1:$CHAIN_GRPC answering: $grpc)" "$DIR/chain.log"
  sleep 0.1
done
say "chain $CHAIN_ID is making blocks (trusted Bitcoin header: $NETWORK block $TIP)"

# --- 3. btcts: config, IBC setup, serve, feed -----------------------------------------
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$DIR/solo.key"
TOKEN=btcts_$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
printf '%s\n' "$TOKEN" >"$DIR/feed.token"
TOKEN_SHA256=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
unset TOKEN
CONFIG=$DIR/btcts.toml
cat >"$CONFIG" <<EOF
listen = "127.0.0.1:$PORT"
data_dir = "$DIR/btcts-data"
network = "$NETWORK"
confirmations = $K

[node]
url = "http://127.0.0.1:$NODE_RPC"
cookie_file = "$COOKIE"
wallet = "btcts"
poll_ms = 500

[auth.chains]
"$CHAIN_ID" = ["$TOKEN_SHA256"]

[ibc]
key_file = "$DIR/solo.key"
poll_ms = 500

[ibc.chains.$CHAIN_ID]
grpc = "http://127.0.0.1:$CHAIN_GRPC"
account_key_file = "$DIR/relayer.key"
checkpoint_height = $TIP
sources = ["$CHAIN_ID"]
confirmations = $K
fee_denom = "$DENOM"
gas_price = "0.0025"
gas_limit = 4000000
EOF

say "btcts ibc setup --chain $CHAIN_ID (06-solomachine client, connection, channel)…"
"$BTCTS" ibc setup --chain "$CHAIN_ID" --config "$CONFIG" >"$DIR/setup.log" 2>&1 \
  || fail_with_log "btcts ibc setup failed" "$DIR/setup.log"
say "IBC setup complete: btcts is a solo-machine client on $CHAIN_ID with an open channel"

"$BTCTS" serve --config "$CONFIG" >"$DIR/btcts.log" 2>&1 &
SERVE_PID=$!
for ((i = 0; ; i++)); do
  curl -sf "$URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVE_PID" 2>/dev/null || fail_with_log "btcts serve exited during start-up" "$DIR/btcts.log"
  [ "$i" -lt 300 ] || fail_with_log "btcts serve was not ready within 30 s" "$DIR/btcts.log"
  sleep 0.1
done

FEED_ARGS=(--chain-id "$CHAIN_ID" --grpc "http://127.0.0.1:$CHAIN_GRPC" --btcts "$URL"
  --token-file "$DIR/feed.token" --state-dir "$DIR/feed")
"$BTCTS" feed "${FEED_ARGS[@]}" >"$DIR/feed.log" 2>&1 &
FEED_PID=$!

# --- 4. a Bitcoin block every BLOCK_INTERVAL seconds ------------------------------------
(
  trap 'exit 0' TERM
  while :; do
    sleep "$BLOCK_INTERVAL"
    node_cli generatetoaddress 1 "$MINE_ADDR" >/dev/null 2>&1 || true
  done
) &
MINER_PID=$!

# --- 5. what to do with it ----------------------------------------------------------------
C="$CONSUMERD"
H="--home $CHAIN_HOME"
TX="--from validator --keyring-backend test $H --chain-id $CHAIN_ID --node $CHAIN_NODE --gas auto --gas-adjustment 1.5 --gas-prices $GAS_PRICES --yes"
Q="$H --node $CHAIN_NODE -o json"
cat <<EOF

The consumer-chain demo is running: chain $CHAIN_ID (1 s blocks, staking unbonding_time $UNBONDING_TIME,
x/btcts k = $K, max_hold $MAX_HOLD), btcts at $URL, regtest $NODE mining a block every $BLOCK_INTERVAL s.
Every block of $CHAIN_ID is fed to btcts, anchored, and delivered over IBC once $K deep;
x/btcts holds each unbonding until a timestamp of a block at or above it is $K deep.

Delegate, then unbond (validator $VALOPER):

  $C tx staking delegate $VALOPER 1000000$DENOM $TX
  $C tx staking unbond $VALOPER 1000000$DENOM $TX

Watch the unbonding held, then released (the tokens back in the balance):

  $C query btcts holds $Q
  $C query bank balances $VALIDATOR $Q
  $C query staking unbonding-delegations $VALIDATOR $Q

What x/btcts has verified, and what btcts delivered:

  $C query btcts latest-timestamp $CHAIN_ID $Q
  curl -s $URL/v1/chains/$CHAIN_ID/ibc
  curl -s $URL/v1/chains/$CHAIN_ID/status
  $BTCTS feed --status ${FEED_ARGS[*]}

Logs: $DIR/{node,chain,setup,btcts,feed}.log

EOF
if [ -n "$EXIT_AFTER" ]; then
  say "stopping after $EXIT_AFTER s."
else
  say "Ctrl-C stops everything and removes $DIR."
fi

# --- 6. progress until Ctrl-C or --exit-after ------------------------------------------
started=$SECONDS
check_alive() {
  local pid name log
  for pid in "$NODE_PID:$NODE:node" "$CHAIN_PID:btcts-consumerd:chain" \
    "$SERVE_PID:btcts serve:btcts" "$FEED_PID:btcts feed:feed"; do
    IFS=: read -r pid name log <<<"$pid"
    if ! kill -0 "$pid" 2>/dev/null; then
      # After Ctrl-C, which reaches every process at once, the trap runs here.
      nap 1
      fail_with_log "$name stopped" "$DIR/$log.log"
    fi
  done
}
# Prints what changed: the feeder's cursor (every 20 s at most), the
# timestamp of demo-1 that x/btcts verified last, the number of held unbondings.
last_fed_at=-100 last_verified='' last_holds=0
report() {
  local fed verified holds
  if [ $((SECONDS - last_fed_at)) -ge 20 ]; then
    fed=$("$BTCTS" feed --status "${FEED_ARGS[@]}" 2>/dev/null | sed -n 's/^cursor: *\([0-9][0-9]*\)$/\1/p' || true)
    if [ -n "$fed" ]; then
      say "feeder: btcts has every block of $CHAIN_ID up to height $fed"
      last_fed_at=$SECONDS
    fi
  fi
  verified=$(chaind query btcts latest-timestamp "$CHAIN_ID" --node "$CHAIN_NODE" -o json 2>/dev/null \
    | jq -r '.timestamp | select(.height != null)
      | "height \(.height) at depth \(.depth) (anchored in Bitcoin block \(.bitcoin_height))"' \
      2>/dev/null || true)
  if [ -n "$verified" ] && [ "$verified" != "$last_verified" ]; then
    say "x/btcts verified a timestamp of $CHAIN_ID: $verified"
    last_verified=$verified
  fi
  holds=$(chaind query btcts holds --node "$CHAIN_NODE" -o json 2>/dev/null \
    | jq -r '.holds // [] | length' 2>/dev/null || true)
  if [ -n "$holds" ] && [ "$holds" != "$last_holds" ]; then
    if [ "$holds" -lt "$last_holds" ]; then
      say "x/btcts released $((last_holds - holds)) unbonding(s); on hold: $holds"
    else
      say "unbondings on hold: $holds (until a timestamp at or above their height is $K deep)"
    fi
    last_holds=$holds
  fi
}
while :; do
  check_alive
  report
  if [ -n "$EXIT_AFTER" ] && [ $((SECONDS - started)) -ge "$EXIT_AFTER" ]; then
    exit 0
  fi
  nap 2
done
