#!/usr/bin/env bash
# The test command: prepares everything the suite needs on a fresh machine and runs all of it.
# CI (.ci/run) calls exactly this script. Run it from anywhere: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# A one-off build gains nothing from incremental caches, which cost gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "format: cargo fmt --check"
cargo fmt --all -- --check

step "core without std: cargo build -p orz-core --no-default-features --features libm"
cargo build -p orz-core --no-default-features --features libm

step "core without std or libm must fail with a message that says why"
if out=$(cargo build -p orz-core --no-default-features 2>&1); then
  echo "error: orz-core built with neither std nor libm; it must refuse" >&2
  exit 1
fi
grep -q "orz-core needs floating-point functions" <<<"$out" || {
  echo "error: the no-std-no-libm build failed without the expected message:" >&2
  echo "$out" | tail -20 >&2
  exit 1
}
echo "refused, with the expected message"

step "libtorch for orz-tch: ./scripts/setup-libtorch.sh (a project-local venv with torch==2.11.0)"
# Sets LIBTORCH_USE_PYTORCH=1, VIRTUAL_ENV, PATH (the venv's python first) and LD_LIBRARY_PATH;
# orz-tch's build.rs links with -Wl,--no-as-needed -ltorch_cuda -ltorch and an rpath to libtorch.
# (Assigned first: `eval "$(...)"` alone would hide a failed install from `set -e`.)
libtorch_env=$(./scripts/setup-libtorch.sh) || {
  echo "error: ./scripts/setup-libtorch.sh failed (see above); orz-tch cannot build without libtorch" >&2
  exit 1
}
eval "$libtorch_env"

step "Qwen2.5's tokenizer for the tests: ./scripts/qwen-tokenizer.sh (into .cache/qwen2.5-tokenizer)"
./scripts/qwen-tokenizer.sh >/dev/null

step "lints: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "docs: cargo doc --workspace --no-deps (warnings, e.g. broken links, are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "tests: cargo test --workspace"
cargo test --workspace

step "scale-out over libtorch's c10d (Gloo): orz-tch --features c10d, 2 and 4 processes"
cargo clippy -p orz-tch -p orz --features orz-tch/c10d,orz/c10d --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -p orz-tch -p orz --features orz-tch/c10d,orz/c10d --no-deps
cargo test -p orz-tch --features c10d --test c10d
cargo test -p orz --features c10d --test launch

step "NCCL in the c10d shim (compiled against the venv's CUDA and NCCL headers; no GPU here, so a NCCL group must be an error that says so)"
nccl_env=$(./scripts/setup-nccl.sh) || {
  echo "error: ./scripts/setup-nccl.sh failed (see above)" >&2
  exit 1
}
eval "$nccl_env"
cargo clippy -p orz-tch -p orz --features orz-tch/nccl,orz/nccl --all-targets -- -D warnings
cargo test -p orz-tch --features nccl --test c10d nccl

step "benches with orz-tch: cargo test -p orz-bench --features tch (every workload once, tiny sizes)"
cargo test -p orz-bench --features tch --lib

step "the backend registry with every CPU backend: orz-backends and the conformance report with --features candle,tch,plain"
cargo clippy -p orz-backends -p orz-conformance --features orz-backends/candle,orz-backends/tch,orz-backends/plain,orz-conformance/candle,orz-conformance/tch,orz-conformance/plain --all-targets -- -D warnings
cargo test -p orz-backends --features candle,tch,plain

step "all checks passed"
