#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after the other, each for
# SECONDS (default 20: the smoke in scripts/test.sh), on one core, with the
# committed seeds (fuzz/corpus/<target>, read only) and a working corpus
# kept between runs in fuzz/target/corpus/<target> (git-ignored). Fails on
# the first crash, leak, timeout (> 10 s for one input) or input using more
# than 512 MB; libFuzzer leaves the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   scripts/fuzz.sh 600                      # the acceptance run, ~50 min
#   scripts/fuzz.sh 3600 ots_parse_replay    # one target, longer
#
# Needs the nightly toolchain and cargo-fuzz (scripts/setup-tests.sh
# installs both). The build is cached in fuzz/target. docs/fuzzing.md
# explains the targets, the limits and how to reproduce a crash.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-20}
shift || true
all=(ots_parse_replay proof_json_verify packet_verify config_parse submission_body)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

# Longest input per target: a few times its largest seed.
max_len() {
  case "$1" in
    ots_parse_replay) echo 16384 ;;  # a 4 KiB message and room to branch
    proof_json_verify) echo 16384 ;; # seeds are ~2.6 KB of JSON
    packet_verify) echo 16384 ;;     # seeds are ~3 KB of protobuf
    config_parse) echo 16384 ;;      # the example config is ~5 KB
    submission_body) echo 8192 ;;    # a few records of JSON
    *) echo "fuzz.sh: unknown target $1" >&2; exit 2 ;;
  esac
}

# The targets on the daemon crate build it (axum, tokio, reqwest...) with
# `--features api`; the others need only the core crates.
features() {
  case "$1" in
    config_parse | submission_body) echo "--features=api" ;;
    *) echo "--no-default-features" ;;
  esac
}

for t in "${targets[@]}"; do
  echo "== cargo +nightly fuzz build $t"
  # shellcheck disable=SC2046
  cargo +nightly fuzz build $(features "$t") "$t"
done
for t in "${targets[@]}"; do
  len=$(max_len "$t")
  mkdir -p "target/corpus/$t" "corpus/$t"
  echo "== fuzz $t: ${seconds}s, max_len $len"
  log="target/fuzz-$t.log"
  # shellcheck disable=SC2046
  if ! cargo +nightly fuzz run $(features "$t") "$t" "target/corpus/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len="$len" -rss_limit_mb=512 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $t failed; the input is in fuzz/artifacts/$t/ (full log: fuzz/$log)" >&2
    exit 1
  fi
  # The summary: executions, speed, corpus, peak memory.
  grep -E '^(stat::|#[0-9]+.*DONE)' "$log" | tr '\n' ' ' | sed 's/stat:://g'
  echo
done
