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
# Per-test "started/passed" lines are dropped to keep the log readable; failures and totals stay.
swift test 2>&1 | grep --line-buffered -Ev "^Test Case .* (passed|started)|^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking)"
exit "${PIPESTATUS[0]}"
