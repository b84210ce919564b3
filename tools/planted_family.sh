#!/usr/bin/env bash
# Scores qkdb's defaults on the planted family (issue 13's yardstick) with the release binary:
#
#   tools/planted_family.sh [extra qkdb run options]     e.g. tools/planted_family.sh --sparsity 1e-4
#
# Runs `qkdb run --d-hidden 128 --train-tokens 400000 [options]` (step 2 at its default 1024
# mask sequences; the debug-build test gives fewer tokens and sequences) on every configuration of
# Tests/Fixtures/planted_family through PlantedFamilyTests (the same scorer as the test suite, so
# the numbers are the ones the test asserts on), then prints one line per configuration and a
# markdown table. A repeated option's last value wins, so `--train-tokens N` or `--d-hidden N`
# here replaces the default. Environment: QKDB_PLANTED_ONLY=gpt2_a,llama_b runs only those;
# QKDB_PLANTED_TOKENS and QKDB_PLANTED_MASK_SEQUENCES set the budgets (400000, 1024). Exit status: the test's (0 = all pass).
set -uo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qkdb >/dev/null || exit 1
# The scorer lives in the test target; only its harness is a debug build, the training is release.
swift build --build-tests >/dev/null || exit 1
args=$(printf '%s\n' "$@")
log=$(mktemp)
QKDB_BINARY="$PWD/.build/release/qkdb" QKDB_PLANTED_ARGS="$args" QKDB_PLANTED_TOKENS="${QKDB_PLANTED_TOKENS:-400000}" \
    QKDB_PLANTED_MASK_SEQUENCES="${QKDB_PLANTED_MASK_SEQUENCES:-1024}" \
    swift test --skip-build --filter PlantedFamilyTests 2>&1 | tee "$log" | grep --line-buffered -E "^(planted|  missed|  …)"
status=${PIPESTATUS[0]}
echo
grep -E "^\|" "$log"
rm -f "$log"
exit "$status"
