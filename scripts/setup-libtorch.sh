#!/usr/bin/env bash
# Installs libtorch for orz-tch on a fresh machine: a project-local venv (.venv) with
# torch==2.11.0 from PyPI (tch 0.24 expects exactly that version; about 4.6 GB with its CUDA 13
# libraries, about 1-2 minutes on a fast link; the pip cache makes later runs quick). Skips the
# install when the venv already has that version.
#
# Progress goes to stderr; stdout is the environment to build and run with, so:
#   eval "$(./scripts/setup-libtorch.sh)"
#   cargo test -p orz-tch
# (scripts/test.sh does exactly this). ORZ_VENV overrides the venv's location.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
VENV="${ORZ_VENV:-$PWD/.venv}"

has_torch() {
  [ -x "$VENV/bin/python" ] && PYTHONWARNINGS=ignore "$VENV/bin/python" - <<PY 2>/dev/null
import sys, torch
sys.exit(0 if torch.__version__.split("+")[0] == "$TORCH_VERSION" else 1)
PY
}

if has_torch; then
  echo "setup-libtorch: torch $TORCH_VERSION already installed in $VENV" >&2
else
  if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-libtorch: error: python3 (3.10 or newer, with venv) is needed to install libtorch" >&2
    echo "  (PyTorch $TORCH_VERSION from PyPI). Install it (e.g. apt-get install python3 python3-venv)," >&2
    echo "  then run ./scripts/setup-libtorch.sh again." >&2
    exit 1
  fi
  echo "setup-libtorch: installing torch==$TORCH_VERSION into $VENV (about 4.6 GB)" >&2
  start=$(date +%s)
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" >&2
  echo "setup-libtorch: installed in $(( $(date +%s) - start )) s" >&2
  has_torch || { echo "setup-libtorch: error: torch $TORCH_VERSION does not import from $VENV" >&2; exit 1; }
fi

# Gloo's headers, for orz-tch's `c10d` feature (the process groups): the torch wheel ships
# libtorch's c10d headers and Gloo's symbols inside libtorch_cpu.so, but not the Gloo headers
# ProcessGroupGloo.hpp includes. Debian's libgloo-dev has them (BSD-3; 49 kB); it is unpacked
# into the venv, not installed.
GLOO="$VENV/gloo"
if [ ! -f "$GLOO/usr/include/gloo/config.h" ]; then
  if command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
    echo "setup-libtorch: unpacking Gloo's headers (Debian libgloo-dev) into $GLOO" >&2
    tmp=$(mktemp -d)
    # A fresh machine may have no package lists yet: refresh them once if the download fails.
    fetch() { (cd "$tmp" && apt-get download libgloo-dev >/dev/null 2>&1); }
    if { fetch || { apt-get update -qq >/dev/null 2>&1 && fetch; }; } && dpkg -x "$tmp"/libgloo-dev_*.deb "$GLOO"; then
      :
    else
      echo "setup-libtorch: warning: could not fetch libgloo-dev; orz-tch's c10d feature will not build" >&2
    fi
    rm -rf "$tmp"
  else
    echo "setup-libtorch: warning: no apt-get/dpkg to fetch Gloo's headers; orz-tch's c10d feature will not build" >&2
  fi
fi

LIB=$(PYTHONWARNINGS=ignore "$VENV/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
# torch-sys asks `python` (with VIRTUAL_ENV set) for libtorch's headers and libraries. The
# binaries carry an rpath to $LIB (backends/tch/build.rs); LD_LIBRARY_PATH is a fallback for
# binaries of other crates.
cat <<ENV
export LIBTORCH_USE_PYTORCH=1
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:\$PATH"
export LD_LIBRARY_PATH="$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export ORZ_GLOO_INCLUDE="$GLOO/usr/include"
ENV
