#!/usr/bin/env bash
# Builds orz-candle with `--features cuda` (and its conformance test binary) on a machine without
# a GPU, as ../shared/CUDA_BUILD.md describes: the CUDA 13.0 compiler from PyPI into the project's
# .venv, CUDA_COMPUTE_CAP=90 (H100/H200), and a link folder with unversioned symlinks to the CUDA
# libraries plus a stub libcuda.so (soname libcuda.so.1; the real driver library replaces it at run
# time on a GPU machine). Run it from anywhere: ./scripts/build-candle-cuda.sh
#
# At run time on a GPU machine, point LD_LIBRARY_PATH at the directory holding libcublas.so.13,
# libcurand.so.10, libcudart.so.13 and libnvrtc.so.13 (this venv's nvidia/cu13/lib, or the
# machine's PyTorch install); libcuda.so.1 comes with the driver.
#
# With --nccl it builds orz-candle's `nccl` feature as well (NCCL process groups through cudarc):
# NCCL from PyPI (nvidia-nccl-cu13 2.28.9, the version PyTorch 2.11 ships) into the same venv,
# a libnccl.so -> libnccl.so.2 link in the link folder (the wheel ships only libnccl.so.2), the
# NCCL test binary (tests/nccl.rs, run on a GPU machine only) and the orz program with its
# `candle-nccl` feature. At run time add the venv's (or PyTorch's) nvidia/nccl/lib to
# LD_LIBRARY_PATH as well.
set -euo pipefail
NCCL=0
case "${1:-}" in
  "") ;;
  --nccl) NCCL=1 ;;
  *) echo "usage: $0 [--nccl]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "CUDA 13.0 toolkit pieces from PyPI into .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check \
  nvidia-cuda-nvcc==13.0.88 "nvidia-cuda-cccl==13.0.*" nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-cublas==13.*" "nvidia-curand==10.*"
[ "$NCCL" = 0 ] || .venv/bin/pip install --quiet --disable-pip-version-check nvidia-nccl-cu13==2.28.9
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CU13=$SITE/nvidia/cu13
[ -x "$CU13/bin/nvcc" ] || { echo "error: no nvcc at $CU13/bin/nvcc" >&2; exit 1; }
"$CU13/bin/nvcc" --version | tail -2

export PATH=$CU13/bin:$PATH CUDA_ROOT=$CU13 CUDA_PATH=$CU13 CUDA_COMPUTE_CAP=90
# The workspace's test profile has opt-level 1; building the library with the same settings lets
# `cargo test` reuse its artifacts instead of compiling candle's CUDA kernels a second time.
export CARGO_PROFILE_DEV_OPT_LEVEL=1

step "link folder target/cuda-link: unversioned symlinks"
LINK=$ROOT/target/cuda-link
mkdir -p "$LINK"
for lib in cublas cublasLt curand cudart nvrtc; do
  found=$(find "$SITE/nvidia" -name "lib$lib.so.*" -not -name "*.alt.*" | sort | head -1)
  [ -n "$found" ] || { echo "error: lib$lib.so.* not found under $SITE/nvidia" >&2; exit 1; }
  ln -sf "$found" "$LINK/lib$lib.so"
  echo "lib$lib.so -> $found"
done
if [ "$NCCL" = 1 ]; then
  found=$(find "$SITE/nvidia" -name "libnccl.so.2" | sort | head -1)
  [ -n "$found" ] || { echo "error: libnccl.so.2 not found under $SITE/nvidia" >&2; exit 1; }
  ln -sf "$found" "$LINK/libnccl.so"
  echo "libnccl.so -> $found"
fi
export LIBRARY_PATH=$LINK${LIBRARY_PATH:+:$LIBRARY_PATH}
FEATURES=cuda
[ "$NCCL" = 0 ] || FEATURES=nccl

step "cargo build -p orz-candle --features $FEATURES (compiles candle's CUDA kernels with nvcc)"
cargo build -p orz-candle --features "$FEATURES"

step "stub libcuda.so (soname libcuda.so.1) from the cu* symbols cudarc references"
RLIB=$(ls -t target/debug/deps/libcudarc-*.rlib | head -1)
nm --undefined-only "$RLIB" 2>/dev/null | awk '{print $NF}' | grep -E '^cu[A-Z]' | sort -u >"$LINK/cuda-symbols.txt"
[ -s "$LINK/cuda-symbols.txt" ] || { echo "error: no cu* symbols found in $RLIB" >&2; exit 1; }
sed 's/.*/void &(void) {}/' "$LINK/cuda-symbols.txt" >"$LINK/libcuda-stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$LINK/libcuda-stub.c"
echo "$(wc -l <"$LINK/cuda-symbols.txt") symbols from $RLIB"

step "cargo test -p orz-candle --features $FEATURES --no-run (links the test binaries)"
cargo test -p orz-candle --features "$FEATURES" --no-run

if [ "$NCCL" = 1 ]; then
  step "cargo build -p orz --features candle-nccl (the orz program with candle's NCCL groups)"
  cargo build -p orz --features candle-nccl
fi

echo
echo "built in $(($(date +%s) - start)) s; run the tests on a GPU machine with"
echo "  LD_LIBRARY_PATH=<dir of libcublas.so.13 etc.> cargo test -p orz-candle --features $FEATURES"
if [ "$NCCL" = 1 ]; then
  echo "and the NCCL test (one rank per GPU: two ranks on a machine with two GPUs, one rank on one GPU) with"
  echo "  LD_LIBRARY_PATH=<...>:<dir of libnccl.so.2> cargo test -p orz-candle --features nccl --test nccl -- --ignored --nocapture"
fi
