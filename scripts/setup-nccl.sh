#!/usr/bin/env bash
# Headers for orz-tch's `nccl` feature (ProcessGroupNCCL in the c10d shim): the torch wheel
# pulls in the CUDA runtime headers (nvidia/cu13/include) and nccl.h (nvidia/nccl/include), but
# not the compiler's crt headers nor CCCL, which cuda_runtime.h includes. This installs those
# two from PyPI into the project venv (./scripts/setup-libtorch.sh makes it) and prints the
# export of ORZ_CUDA_INCLUDE that orz-tch's build.rs reads. No GPU is needed to build; a group
# created with NCCL on a machine without a GPU is an error.
#
#   eval "$(./scripts/setup-libtorch.sh)" && eval "$(./scripts/setup-nccl.sh)"
#   cargo build --release -p orz --features nccl
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VIRTUAL_ENV:-$PWD/.venv}"
py="$venv/bin/python"
[ -x "$py" ] || { echo "setup-nccl: no venv at $venv; run ./scripts/setup-libtorch.sh first" >&2; exit 1; }
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cuda="$site/nvidia/cu13/include"
if [ ! -f "$cuda/crt/host_config.h" ] || [ ! -d "$cuda/cccl" ]; then
  echo "setup-nccl: installing nvidia-cuda-crt and nvidia-cuda-cccl 13.0 into $venv" >&2
  "$py" -m pip install --quiet "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" >&2
fi
for f in "$cuda/cuda_runtime_api.h" "$cuda/crt/host_config.h" "$site/nvidia/nccl/include/nccl.h"; do
  [ -f "$f" ] || { echo "setup-nccl: $f is missing after the install" >&2; exit 1; }
done
echo "export ORZ_CUDA_INCLUDE=\"$cuda:$cuda/cccl:$site/nvidia/nccl/include\""
