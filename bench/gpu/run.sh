#!/usr/bin/env bash
# shellcheck disable=SC2317  # the functions that step runs look unreachable to it
# The GPU check of esamp (issue 28) in one device call of at most 8 minutes: runs what
# bench/gpu/build.sh built for sm_90 on the development machine (build/gpu-device, carried with
# the call; nothing is built here), each step under its own time limit, with its log in OUT_DIR:
#   env         the GPU, the driver, the libraries the programs load
#   cuda_tests  every CUDA test: kernels against their CPU twins, 50 backend steps against the
#               CPU bank, the CUDA sampler against the CPU sampler, graph replays, β between replays
#   capi        the C API test, and esamp_sampler_create_cuda driven through the C API
#   memcheck_*  compute-sanitizer memcheck on every CUDA test (kernels, then whole steps)
#   racecheck   compute-sanitizer racecheck on one captured step (the β-between-replays test)
#   kernels     esamp's step alone per shape (esamp_bench_kernels)
#   overhead    esamp's overhead in a Llama-3-8B decode step (esamp_bench_overhead_gpu)
# and prints a pass/fail table with each step's figures LAST (bench/gpu/README.md reads it).
# Usage: bench/gpu/run.sh [OUT_DIR]   (default: $OUT)   BIN_DIR: default build/gpu-device.
set -uo pipefail

out_dir="${1:-${OUT:-}}"
if [[ -z "$out_dir" ]]; then
  echo "usage: $0 OUT_DIR (or set OUT)" >&2
  exit 2
fi
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="${BIN_DIR:-$root/build/gpu-device}"
bin="$bin_dir/bin"
tests="$bin/esamp_cuda_tests"
export PATH="/usr/local/cuda/bin:$PATH"
export LD_LIBRARY_PATH="$bin_dir/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary=()
failures=0

# step NAME LIMIT_S FIGURES COMMAND...: runs COMMAND (a program or a function below) under
# `timeout LIMIT_S` with its output in NAME.log, then FIGURES (a function of the log, may print
# nothing) for the table. A step whose log says a program saw no CUDA device fails.
step() {
  local name="$1" limit="$2" figures="$3"
  shift 3
  local log="$out_dir/$name.log" start rc result
  start=$(date +%s)
  echo "+ $*" >"$log"
  timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" >>"$log" 2>&1
  rc=$?
  case $rc in
    0) result=PASS ;;
    124 | 137) result="TIMEOUT(${limit}s)" ;;
    *) result="FAIL(rc=$rc)" ;;
  esac
  if [[ $rc -eq 0 ]] && grep -q 'SKIPPED: no CUDA device' "$log"; then
    rc=1
    result="FAIL(skipped)"
  fi
  if [[ $rc -ne 0 ]]; then
    failures=$((failures + 1))
    echo "--- $name: $result; the end of $log:"
    tail -n 25 "$log"
  fi
  summary+=("$(printf '%-16s %-14s %4ss  %s' "$name" "$result" "$(($(date +%s) - start))" "$("$figures" "$log")")")
}

# Figures read off each log.
no_figures() { :; }
catch_figures() { grep -E '^(all [0-9]+ checks passed|All tests passed|test cases:)' "$1" | tr '\n' ' '; }
sanitizer_figures() { grep -E '(ERROR|RACECHECK) SUMMARY' "$1" | tail -n 1; }
env_figures() { grep -E '^(GPU|missing):' "$1" | tr '\n' ' '; }
overhead_figures() { grep -E '^(checks|FAIL):' "$1" | tr '\n' ' '; }

check_env() {
  cat "$bin_dir/BUILD_INFO"
  nvidia-smi || return 1
  echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | head -n 1)"
  command -v compute-sanitizer
  local missing
  missing="$(ldd "$bin"/* | grep 'not found' | sort -u)"
  [[ -z "$missing" ]] || { echo "missing: $missing"; return 1; }
}

capi() { "$bin/esamp_capi_test" "$(mktemp -d)" && "$tests" "[capi]" --durations yes; }

export bin bin_dir tests
export -f check_env capi

echo "esamp GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ); logs in $out_dir"
if [[ ! -x "$tests" ]]; then
  echo "FAIL: $tests not found: run bench/gpu/build.sh on the development machine and carry build/gpu-device"
  exit 1
fi
step env 20 env_figures check_env
step cuda_tests 100 catch_figures "$tests" --durations yes
step capi 20 catch_figures capi
# memcheck in two parts, each with its limit: the kernels' tests, then the tests of whole steps.
# Not the [capi] test: it makes cudaSetDevice fail on purpose, which the sanitizer reports as an
# API error (the steps it runs are the sampler tests' steps).
memcheck=(compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 20 "$tests")
step memcheck_kernels 60 sanitizer_figures "${memcheck[@]}" \
  "[gpu]~[backend]~[sampler]~[graph]~[capi]~[beta]" --durations yes
step memcheck_steps 70 sanitizer_figures "${memcheck[@]}" "[backend],[sampler],[graph],[beta]" \
  --durations yes
step racecheck 45 sanitizer_figures compute-sanitizer --tool racecheck --racecheck-report all \
  --error-exitcode 1 --print-limit 20 "$tests" "[gpu][graph][beta]" --durations yes
step kernels 30 no_figures "$bin/esamp_bench_kernels"
step overhead 150 overhead_figures "$bin/esamp_bench_overhead_gpu"

echo
echo "== esamp GPU check: $(head -n 1 "$bin_dir/BUILD_INFO"); $(grep -E '^GPU:' "$out_dir/env.log")"
echo "step             result         time  figures"
printf '%s\n' "${summary[@]}"
echo
sed -n '/^device:/,$p' "$out_dir/kernels.log"
echo
grep -E '^(device|decode attention|\|)' "$out_dir/overhead.log"
echo "failures: $failures"
exit $((failures > 0))
