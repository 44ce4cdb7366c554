#!/usr/bin/env bash
# The GPU truth run, prepared on the CPU machine and run on a lent GPU machine in one go.
#
#   scripts/gpu-check.sh --pack DIR            on the CPU machine: builds the stripped release
#                                              binaries and stages everything the run needs in DIR
#                                              (at most 64 MiB), then checks that they start and
#                                              find libtorch when pointed at a torch install
#   scripts/gpu-check.sh --run DIR [--steps S] on the GPU machine (python3 with torch 2.11+cu130,
#                                              transformers; no Rust, no network): runs the steps
#                                              below, each under its own time limit, never stopping
#                                              on a failure, and writes every result into $OUT
#                                              (or DIR/out)
#
# Steps (--steps takes a comma list; default all, in this order; a 10-minute command fits
# `conformance,ceilings,speed` or `iteration,report`):
#   conformance  orz-tch's conformance matrix on cuda:0 in f32 and in bf16
#   ceilings     the device's measured copy bandwidth and bf16 matrix throughput (torch)
#   speed        side by side with PyTorch + transformers on the GPU, bf16, a random
#                Qwen2.5-0.5B-shaped model: generation at batch 1, 64, 256 and the train step
#   iteration    one ORZ iteration of the orz-0.5b preset at its real lengths on that model
#                (8 prompts x 8 samples), with the dry run's plan and the peak GPU memory
#   nccl         orz-tch's process group with NCCL on cuda:0 (a world of one: an all-reduce of a
#                CUDA tensor, host values through Gloo), the staged c10d test binary
#   report       summary.md: the figures side by side, and the fractions of the physical limits
#
# With a lent device (tool `run`): pack here into target/gpu-pack, carry it, and run
#   bash scripts/gpu-check.sh --run target/gpu-pack --steps conformance,ceilings,speed
#   bash scripts/gpu-check.sh --run target/gpu-pack --steps iteration,nccl,report
set -uo pipefail
cd "$(dirname "$0")/.."

MAX_BYTES=$((64 * 1024 * 1024))
BINARIES=(orz vs_pytorch orz-conformance c10d)

die() { echo "gpu-check: error: $*" >&2; exit 1; }

pack() {
  local dir=$1
  set -e
  local env
  env=$(./scripts/setup-libtorch.sh) || die "./scripts/setup-libtorch.sh failed"
  eval "$env"
  ./scripts/qwen-tokenizer.sh >/dev/null || die "./scripts/qwen-tokenizer.sh failed"
  env=$(./scripts/setup-nccl.sh) || die "./scripts/setup-nccl.sh failed"
  eval "$env"
  echo "gpu-check: building release binaries with orz-tch (orz with NCCL)" >&2
  cargo build --release -p orz --features tch,nccl --bin orz
  cargo build --release -p orz-bench --features tch --bin vs_pytorch
  cargo build --release -p orz-conformance --features tch --bin orz-conformance
  # The c10d test binary: the NCCL check (its path is the last executable cargo reports).
  local c10d
  c10d=$(cargo test --release -p orz-tch --features nccl --test c10d --no-run --message-format=json \
    | python -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
  rm -rf "$dir" && mkdir -p "$dir/bin"
  for b in orz vs_pytorch orz-conformance; do
    strip --strip-all -o "$dir/bin/$b" "target/release/$b"
  done
  strip --strip-all -o "$dir/bin/c10d" "$c10d"
  cp scripts/bench_vs_pytorch.py scripts/gpu_report.py "$dir/"
  cp .cache/qwen2.5-tokenizer/tokenizer.json "$dir/tokenizer.json"
  git rev-parse HEAD > "$dir/commit.txt" 2>/dev/null || echo unknown > "$dir/commit.txt"
  local bytes
  bytes=$(du -sb "$dir" | cut -f1)
  echo "gpu-check: staged $(du -sh "$dir" | cut -f1) in $dir:" >&2
  ls -l "$dir" "$dir/bin" >&2
  [ "$bytes" -le "$MAX_BYTES" ] || die "$dir holds $bytes bytes, more than the 64 MiB a run can carry"
  set +e
  check_staged "$dir" "$(dirname "$(python -c 'import torch; print(torch.__file__)')")/lib"
}

# The staged binaries start and resolve every library against the torch install at $2.
check_staged() {
  local dir=$1 lib=$2 failed=0
  for b in "${BINARIES[@]}"; do
    if LD_LIBRARY_PATH="$lib" ldd "$dir/bin/$b" | grep -q "not found"; then
      echo "gpu-check: $b: unresolved libraries:" >&2
      LD_LIBRARY_PATH="$lib" ldd "$dir/bin/$b" | grep "not found" >&2
      failed=1
    fi
  done
  # Without libtorch_cuda.so among its NEEDED libraries a binary sees no GPU (the linker drops
  # it unless told otherwise: backends/tch/link_libtorch.rs).
  if [ -f "$lib/libtorch_cuda.so" ]; then
    for b in "${BINARIES[@]}"; do
      readelf -d "$dir/bin/$b" | grep -q "libtorch_cuda.so" \
        || { echo "gpu-check: $b does not link libtorch_cuda.so: CUDA would be invisible to it" >&2; failed=1; }
    done
  fi
  LD_LIBRARY_PATH="$lib" "$dir/bin/orz" --version >/dev/null || { echo "gpu-check: orz does not start" >&2; failed=1; }
  LD_LIBRARY_PATH="$lib" "$dir/bin/orz" presets >/dev/null || { echo "gpu-check: orz presets failed" >&2; failed=1; }
  local out
  out=$(LD_LIBRARY_PATH="$lib" "$dir/bin/vs_pytorch" 2>&1)
  grep -q "usage: vs_pytorch" <<<"$out" || { echo "gpu-check: vs_pytorch does not start: $out" >&2; failed=1; }
  # On a machine without a GPU the CUDA run must stop with libtorch's own answer, not a crash.
  out=$(LD_LIBRARY_PATH="$lib" "$dir/bin/orz-conformance" report --dtype f32 --device cuda:0 2>&1)
  if ! grep -q -e "CUDA is not available" -e "conformance" <<<"$out"; then
    echo "gpu-check: orz-conformance on cuda:0 gave: $out" >&2
    failed=1
  fi
  [ "$failed" = 0 ] || die "the staged binaries do not run here"
  echo "gpu-check: the staged binaries start and find libtorch ($lib)" >&2
}

# Runs step NAME under LIMIT seconds, its output in $OUT/NAME.txt, its status in steps.txt.
step() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "gpu-check: $name (at most $limit s)" >&2
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - start))" >>"$OUT/steps.txt"
  tail -3 "$OUT/$name.txt" >&2
}

run() {
  local dir=$1 steps=$2
  OUT=${OUT:-$dir/out}
  mkdir -p "$OUT"
  local lib
  lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') \
    || die "python3 cannot import torch"
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local work=${GPU_CHECK_WORK:-/tmp/orz-gpu-check}
  mkdir -p "$work"
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
  python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name(0))' \
    >"$OUT/versions.txt" 2>&1
  cp "$dir/commit.txt" "$OUT/" 2>/dev/null
  local bin=$dir/bin
  for s in ${steps//,/ }; do
    case $s in
      conformance)
        step conformance-f32 150 "$bin/orz-conformance" report --dtype f32 --device cuda:0
        step conformance-bf16 150 "$bin/orz-conformance" report --dtype bf16 --device cuda:0
        ;;
      ceilings) step ceilings 60 python3 "$dir/gpu_report.py" ceilings "$OUT" ;;
      speed)
        [ -f "$work/model/config.json" ] || step prepare 120 "$bin/vs_pytorch" prepare "$work" --shape qwen2.5-0.5b
        step speed 300 python3 "$dir/bench_vs_pytorch.py" --bin "$bin/vs_pytorch" --dir "$work" \
          --systems orz-tch,pytorch --device cuda:0 --dtype bf16 --rounds 2 --json "$OUT/speed.json"
        ;;
      iteration)
        [ -f "$work/model/config.json" ] || step prepare 120 "$bin/vs_pytorch" prepare "$work" --shape qwen2.5-0.5b
        cp "$dir/tokenizer.json" "$work/model/tokenizer.json"
        local args=(train --preset orz-0.5b --backend tch --device cuda:0 --dtype bf16 --model "$work/model"
          --data data/orz/orz_math_57k_subset.json --iterations 1 --set rollout_batch_size=8
          --set train.n_samples_per_prompt=8 --quiet --out "$work/run")
        step dry-run 60 "$bin/orz" "${args[@]}" --dry-run
        rm -rf "$work/run"
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/memory-trace.txt" 2>&1 &
        local poll=$!
        step iteration 420 "$bin/orz" "${args[@]}"
        kill "$poll" 2>/dev/null
        cp "$work/run/metrics.jsonl" "$OUT/iteration-metrics.jsonl" 2>/dev/null
        ;;
      nccl) step nccl 120 "$bin/c10d" --exact nccl_groups_need_the_feature_and_a_gpu --nocapture ;;
      report) step report 60 python3 "$dir/gpu_report.py" summary "$OUT" ;;
      *) echo "gpu-check: unknown step $s" >&2 ;;
    esac
  done
  cat "$OUT/steps.txt" >&2
  [ -f "$OUT/summary.md" ] && cat "$OUT/summary.md"
  return 0
}

case ${1:-} in
  --pack) [ $# -ge 2 ] || die "--pack DIR"; pack "$2" ;;
  --run)
    [ $# -ge 2 ] || die "--run DIR [--steps S]"
    steps=conformance,ceilings,speed,iteration,report
    [ "${3:-}" = "--steps" ] && steps=${4:-$steps}
    run "$2" "$steps"
    ;;
  *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
