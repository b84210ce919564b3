#!/usr/bin/env bash
# The main job on the bundled default: set-up, then the full pipeline on MiniLM layer 2 over fortunes.
# Extra arguments go to `qkdb run` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
mkdir -p out
exec .build/release/qkdb run --store out/minilm-l2.qkdb "$@"
