#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a fresh machine with CUDA and a GPU: configures and builds
# (Release, sm_90), runs every test (ctest), the CUDA tests alone (they must not skip), the same
# under compute-sanitizer (memcheck, racecheck, initcheck), and the step benchmark. Logs and
# summary.txt go to OUT_DIR.
# Usage: bench/gpu/run.sh [OUT_DIR]   (default: $OUT)
#   BUILD_DIR (default build/gpu), CUDA_ARCH (default 90), SANITIZER_TIMEOUT (s, default 2400).
set -uo pipefail

out_dir="${1:-${OUT:-}}"
if [[ -z "$out_dir" ]]; then
  echo "usage: $0 OUT_DIR (or set OUT)" >&2
  exit 2
fi
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build/gpu}"
arch="${CUDA_ARCH:-90}"
sanitizer_timeout="${SANITIZER_TIMEOUT:-2400}"
summary="$out_dir/summary.txt"
export PATH="/usr/local/cuda/bin:$PATH"
: >"$summary"
failures=0

note() { echo "$*" | tee -a "$summary"; }

# run_step NAME COMMAND...: runs COMMAND with its output in NAME.log; records rc and seconds.
run_step() {
  local name="$1"
  shift
  local log="$out_dir/$name.log" start rc
  start=$(date +%s)
  echo "+ $*" >"$log"
  "$@" >>"$log" 2>&1
  rc=$?
  note "$(printf '%-12s rc=%-3s %5ss  %s' "$name" "$rc" "$(($(date +%s) - start))" "$log")"
  if [[ $rc -ne 0 ]]; then
    failures=$((failures + 1))
    tail -n 30 "$log" | sed 's/^/    /' | tee -a "$summary"
  fi
  return $rc
}

note "esamp GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  note "FAIL: nvidia-smi not found: no NVIDIA driver on this machine"
  exit 1
fi
nvidia-smi >"$out_dir/nvidia-smi.txt" 2>&1
note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -n 1)"
note "nvcc: $(nvcc --version 2>/dev/null | tail -n 1)"

run_step configure cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DESAMP_BUILD_EXAMPLES=OFF -DESAMP_BUILD_BENCH=ON ||
  { note "FAILED: configure"; exit 1; }
run_step build cmake --build "$build" -j "$(nproc)" || { note "FAILED: build"; exit 1; }

# One GPU: tests run one at a time.
run_step ctest ctest --test-dir "$build" --output-on-failure
tests="$build/tests/cuda/esamp_cuda_tests"
run_step cuda_tests "$tests" --durations yes
if grep -q "SKIPPED: no CUDA device" "$out_dir/cuda_tests.log"; then
  note "FAIL: the [gpu] tests skipped: the CUDA runtime sees no device"
  failures=$((failures + 1))
fi

sanitizer="$(command -v compute-sanitizer || true)"
[[ -z "$sanitizer" && -x /usr/local/cuda/bin/compute-sanitizer ]] && sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [[ -z "$sanitizer" ]]; then
  note "FAIL: compute-sanitizer not found (install the CUDA toolkit's sanitizer)"
  failures=$((failures + 1))
else
  # memcheck: out-of-bounds and misaligned accesses, API errors; racecheck: shared-memory hazards
  # (the GEMM tiles, the block reductions and scans); initcheck: reads of never-written memory.
  run_step memcheck timeout "$sanitizer_timeout" "$sanitizer" --tool memcheck --error-exitcode 1 \
    "$tests" "[gpu]"
  run_step racecheck timeout "$sanitizer_timeout" "$sanitizer" --tool racecheck \
    --racecheck-report all --error-exitcode 1 "$tests" "[gpu]"
  run_step initcheck timeout "$sanitizer_timeout" "$sanitizer" --tool initcheck --error-exitcode 1 \
    "$tests" "[gpu]"
fi

if [[ -x "$build/bench/esamp_bench_kernels" ]]; then
  run_step bench "$build/bench/esamp_bench_kernels" && sed 's/^/    /' "$out_dir/bench.log" | tee -a "$summary"
fi

note "failures: $failures"
exit $((failures > 0))
