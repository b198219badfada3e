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

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    echo "setup: installing rustup component ${component}"
    rustup component add "${component}"
  fi
done

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
