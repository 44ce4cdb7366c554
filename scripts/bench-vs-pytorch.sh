#!/usr/bin/env bash
# orz (orz-tch, orz-candle) side by side with PyTorch 2.11 + Hugging Face transformers, from a
# fresh clone, in one command:
#   ./scripts/bench-vs-pytorch.sh [--rounds N] [--threads N]      (output also in target/vs-pytorch/)
# Installs torch (scripts/setup-libtorch.sh) and transformers into the project venv (.venv, from
# PyPI), builds the vs_pytorch binary (release, with orz-tch), writes a random Qwen2 in Hugging
# Face format with the inputs, then runs scripts/bench_vs_pytorch.py: the three systems in turn,
# the forward-logits parity check, and the table of tokens/s and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

TRANSFORMERS_VERSION=5.23.0

libtorch_env=$(./scripts/setup-libtorch.sh) || {
  echo "bench-vs-pytorch: error: ./scripts/setup-libtorch.sh failed (see above)" >&2
  exit 1
}
eval "$libtorch_env"
PY="$VIRTUAL_ENV/bin/python"
if ! "$PY" -c "import transformers, sys; sys.exit(transformers.__version__ != '$TRANSFORMERS_VERSION')" 2>/dev/null; then
  echo "bench-vs-pytorch: installing transformers==$TRANSFORMERS_VERSION into $VIRTUAL_ENV" >&2
  "$VIRTUAL_ENV/bin/pip" install --quiet --disable-pip-version-check "transformers==$TRANSFORMERS_VERSION" >&2
fi

cargo build --release -p orz-bench --features tch --bin vs_pytorch
OUT=target/vs-pytorch
mkdir -p "$OUT"
target/release/vs_pytorch prepare "$OUT"
"$PY" scripts/bench_vs_pytorch.py --bin target/release/vs_pytorch --dir "$OUT" "$@" | tee "$OUT/report.md"
echo "bench-vs-pytorch: the report is in $OUT/report.md" >&2
