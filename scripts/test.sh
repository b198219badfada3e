#!/usr/bin/env bash
# The project's one test command: sets up what is missing, then runs the
# format and lint checks and every test (unit, property, golden, store
# crash tests and end-to-end tests against a real regtest node).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-tests.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo ends on its last doc-test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
