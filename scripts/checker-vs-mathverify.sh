#!/usr/bin/env bash
# Math-Verify's agreement with the checker's labelled set (core/tests/data/checker_labelled.tsv),
# from a throwaway venv; the checker itself never depends on it.
# Usage: ./scripts/checker-vs-mathverify.sh [VENV_DIR]   (default: target/mathverify-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-target/mathverify-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q math-verify
fi
"$venv/bin/python" scripts/checker_vs_mathverify.py core/tests/data/checker_labelled.tsv
