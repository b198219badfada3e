#!/usr/bin/env bash
# Installs what the test suite needs, once: the regtest node (litecoind, see
# ../shared/NODE.md) and the Rust components used by the checks.
# Safe to re-run: every step is skipped when already done.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo "$@"; else
      echo "setup: '$*' needs root (run as root or install sudo)" >&2; exit 1
    fi
  else
    "$@"
  fi
}

if ! command -v litecoind >/dev/null 2>&1; then
  echo "setup: installing litecoind (the regtest node used by the tests)"
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq litecoind >/dev/null
fi
litecoind -version | head -n 1

# A C compiler and make: the btcts binary links jemalloc (tikv-jemalloc-sys
# builds it from source with both); ring needs the compiler too.
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  echo "setup: installing make and gcc (to build jemalloc and ring)"
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make gcc libc6-dev >/dev/null
fi

# jq: the consumer-chain demo (scripts/dev-consumer.sh, smoke-tested) edits
# the chain's genesis with it.
if ! command -v jq >/dev/null 2>&1; then
  echo "setup: installing jq (used by the consumer-chain demo)"
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
fi

# chromium: the status page is checked in a real headless browser
# (api/tests/dev.rs, api/tests/status_page).
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (headless, for the status page test; ~2 minutes)"
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# promtool (Debian's prometheus package): api/tests/metrics.rs checks
# contrib/prometheus/alerts.yml with `promtool check rules`.
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing prometheus (for promtool, checking the alert rules)"
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi

# systemd-analyze and groff: the packaging test (api/tests/packaging.rs)
# verifies contrib/systemd/btcts.service and renders the man pages.
for tool_pkg in systemd-analyze:systemd groff:groff-base; do
  if ! command -v "${tool_pkg%%:*}" >/dev/null 2>&1; then
    echo "setup: installing ${tool_pkg#*:} (for ${tool_pkg%%:*}, used by the packaging test)"
    need_root apt-get update -qq
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool_pkg#*:}" >/dev/null
  fi
done

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    echo "setup: installing rustup component ${component}"
    rustup component add "${component}"
  fi
done

# The fuzz smoke (scripts/fuzz.sh): cargo-fuzz on the nightly toolchain
# (libFuzzer and the address sanitizer need nightly's -Z flags).
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "setup: installing the nightly Rust toolchain (for cargo-fuzz)"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Go, for the consumer chain (ibc-relay/go: x/btcts and btcts-consumerd on
# the Cosmos SDK and ibc-go). Debian's golang is too old for go.mod's line,
# so an adequate Go must already be on PATH (the project's machines have
# it); modules come from the Go module proxy on first build.
GO_MIN=$(sed -n 's/^go \([0-9.]*\)$/\1/p' ibc-relay/go/go.mod)
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go ${GO_MIN} or newer is needed on PATH (https://go.dev/dl/); Debian's golang package is too old" >&2
  exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -n 1)" != "$GO_MIN" ]; then
  echo "setup: Go ${have} is older than the ${GO_MIN} that ibc-relay/go/go.mod needs" >&2
  exit 1
fi
go version
if [ ! -f "$(go env GOMODCACHE)/cache/download/github.com/cosmos/ibc-go/v11/@v/list" ]; then
  echo "setup: downloading the consumer chain's Go modules"
fi
(cd ibc-relay/go && go mod download)

# Python tools nobody on this team wrote, pinned, in a project venv:
# schemathesis checks the HTTP API against its OpenAPI spec; the
# OpenTimestamps client (`ots`) and library check our .ots files and calendar.
VENV=.venv
REQUIREMENTS=scripts/requirements-tests.txt
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating the Python venv $VENV"
  python3 -m venv "$VENV"
fi
if ! cmp -s "$REQUIREMENTS" "$VENV/.installed-requirements" 2>/dev/null; then
  echo "setup: installing $REQUIREMENTS into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/.installed-requirements"
fi
"$VENV/bin/schemathesis" --version
"$VENV/bin/ots" --version
