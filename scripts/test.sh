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
cargo test --workspace --locked
