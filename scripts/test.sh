#!/usr/bin/env bash
# The project's one test command: sets up what is missing, then runs the
# format and lint checks and every test: Rust (unit, property, golden, store
# crash tests, end-to-end tests against a real regtest node and a real
# ibc-go consumer chain), Go (the consumer chain's x/btcts module, its
# verifier against the shared vectors, the chain app) and Python (the
# benchmark helpers in contrib/bench).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's header says how long the run has taken so far, so a slow CI
# run shows where its time went.
phase() {
  printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$1"
}

scripts/setup-tests.sh

phase "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
phase "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "gofmt -l, go vet (ibc-relay/go)"
unformatted=$(cd ibc-relay/go && gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted: $unformatted" >&2
  exit 1
fi
(cd ibc-relay/go && go vet ./...)

log=$(mktemp)
golog=$(mktemp)
trap 'rm -f "$log" "$golog"' EXIT
phase "go test (ibc-relay/go)"
# -v for the per-test lines counted below; only package results are shown
# (all of the output when something fails).
status=0
(cd ibc-relay/go && go test -count=1 -v ./... >"$golog" 2>&1) || status=$?
grep -E '^(ok|FAIL)\s' "$golog" || true
if [ "$status" -ne 0 ]; then
  tail -n 200 "$golog"
  echo "go test failed" >&2
  exit "$status"
fi

phase "python tests (contrib/bench)"
.venv/bin/python -m unittest discover -s contrib/bench -p 'test_*.py' 2>&1 | tee -a "$log"

phase "cargo test"
cargo test --workspace --locked 2>&1 | tee -a "$log"

# A bounded fuzz smoke (docs/fuzzing.md; the long runs are by hand):
# BTCTS_FUZZ_SECONDS per target (default 20, 0 skips it). By default the
# three targets on the core crates only: the two on the daemon crate
# (config_parse, submission_body) need a cold sanitizer build of axum,
# tokio, reqwest... (~13 min on 2 cores); BTCTS_FUZZ_TARGETS=all runs them too.
fuzz_seconds=${BTCTS_FUZZ_SECONDS:-20}
fuzz_targets=${BTCTS_FUZZ_TARGETS:-ots_parse_replay proof_json_verify packet_verify}
if [ "$fuzz_seconds" -gt 0 ]; then
  phase "fuzz smoke (${fuzz_seconds}s per target: ${fuzz_targets})"
  if [ "$fuzz_targets" = all ]; then
    scripts/fuzz.sh "$fuzz_seconds"
  else
    # shellcheck disable=SC2086
    scripts/fuzz.sh "$fuzz_seconds" $fuzz_targets
  fi
fi
# One closing line for the whole run: cargo's test counts, the Python
# tests and Go's top-level tests (cargo ends on its last doc-test binary).
awk '/^Ran [0-9]+ tests? in/ { p += $2 }
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     FILENAME == ARGV[2] && /^--- PASS/ { p++ } FILENAME == ARGV[2] && /^--- FAIL/ { f++ }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log" "$golog"
phase "done"
