#!/usr/bin/env bash
# Runs the test suite: set-up as needed (libraries, bundled models, corpus), then `swift test`.
set -uo pipefail
cd "$(dirname "$0")/.."
QKDB_SKIP_BUILD=1 tools/setup.sh || exit 1
# The report's DOM test renders pages in headless Chromium; install it when absent (the test
# skips cleanly if it still cannot run).
if ! command -v chromium >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "note: could not install chromium; the report DOM test will be skipped" >&2
fi
# The schema test reads a tensor with Python's sqlite3, zstandard and numpy (tools/store/read_tensor.py);
# the README quick-start and CSV tests load exports in DuckDB and pandas, as a researcher would;
# the Parquet tests read the writer's files back with pyarrow and DuckDB.
if command -v python3 >/dev/null 2>&1 && ! python3 -c "import zstandard, numpy, duckdb, pandas, pyarrow" >/dev/null 2>&1; then
    python3 -m pip install -q zstandard numpy duckdb pandas pyarrow >/dev/null 2>&1 || pip install -q --break-system-packages zstandard numpy duckdb pandas pyarrow >/dev/null 2>&1 \
        || echo "note: could not install zstandard/numpy/duckdb/pandas/pyarrow; the schema decoding, CSV and Parquet tests will fail" >&2
fi
log=$(mktemp)
# Per-test "started/passed" lines are dropped to keep the log readable; failures and totals stay.
swift test 2>&1 | tee "$log" | grep --line-buffered -Ev "^Test Case .* (passed|started)|^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking)"
status=${PIPESTATUS[0]}
# XCTest's last "Executed N tests, with K tests skipped and M failures" line is the whole suite;
# restate it as one plain closing line (swift test ends with Swift Testing's own, empty, summary).
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with" "$log" | tail -n 1)
if [ -n "$summary" ]; then
  total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
  # Count failing tests, not failed assertions (one test may fail many).
  failed=$(grep -cE "^Test Case .* failed" "$log" || true)
  skipped=0
  if grep -q "skipped" <<<"$summary"; then skipped=$(sed -E 's/.*with ([0-9]+) tests? skipped.*/\1/' <<<"$summary"); fi
  echo "tests: $((total - failed - skipped)) passed, ${failed} failed, ${skipped} skipped"
fi
rm -f "$log"
exit "$status"
