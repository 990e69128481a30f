#!/usr/bin/env bash
# Builds the fuzz preset (clang, AddressSanitizer + UBSan, libFuzzer) and fuzzes each target for
# <seconds> from its committed seed corpus, then prints one line per target: executions, time,
# corpus size and findings. A finding (a crash, a leak, a sanitizer report, a failed check, a
# timeout) is written to build/fuzz/findings/<target>/ and makes the script fail once every target
# has run. With RECORD=<file> the lines are also appended to <file>.
#   fuzz/run.sh <seconds> [target...]
#   targets: gguf llama2c tokenizer bank capi safetensors tokenizer_json request (default: all)
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 <seconds-per-target> [target...]" >&2
  exit 2
fi
seconds=$1
shift
cd "$(dirname "$0")/.."

# target -> "<binary under build/fuzz> <committed seed folder>"
declare -A targets=(
  [gguf]="examples/llama/fuzz/esamp_gguf_fuzz examples/llama/fuzz/seeds/gguf"
  [llama2c]="examples/llama/fuzz/esamp_llama2c_fuzz examples/llama/fuzz/seeds/llama2c"
  [tokenizer]="examples/llama/fuzz/esamp_tokenizer_fuzz examples/llama/fuzz/seeds/tokenizer"
  [bank]="fuzz/esamp_bank_fuzz fuzz/seeds/bank"
  [capi]="fuzz/esamp_capi_fuzz fuzz/seeds/capi"
  [safetensors]="examples/embed/fuzz/esamp_safetensors_fuzz examples/embed/fuzz/seeds/safetensors"
  [tokenizer_json]="examples/embed/fuzz/esamp_tokenizer_json_fuzz examples/embed/fuzz/seeds/tokenizer_json"
  [request]="examples/server/fuzz/esamp_request_fuzz examples/server/fuzz/seeds/request"
)
order=(gguf llama2c tokenizer bank capi safetensors tokenizer_json request)
[ $# -gt 0 ] && order=("$@")

# The targets that read paths write their files under TMPDIR; on a memory file system the fsync
# of every bank save (BankState::save) costs nothing, where on a disk it dominated the capi target.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

build=build/fuzz
cmake --preset fuzz >/dev/null
binaries=()
for target in "${order[@]}"; do
  [ -n "${targets[$target]:-}" ] || { echo "unknown target: $target" >&2; exit 2; }
  read -r binary _ <<<"${targets[$target]}"
  binaries+=("$(basename "$binary")")
done
cmake --build "$build" --target "${binaries[@]}"

failed=0
summary=()
for target in "${order[@]}"; do
  read -r binary seeds <<<"${targets[$target]}"
  corpus="$build/corpus/$target" findings="$build/findings/$target" log="$build/logs/$target.log"
  rm -rf "$findings"  # this run's findings only; the grown corpus is kept
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  echo "== fuzzing $target for $seconds s"
  status=0
  # New inputs go to the first folder (the build's corpus); the committed seeds stay as they are.
  "$build/$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$findings/" -print_final_stats=1 "$corpus" "$seeds" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  time=$(sed -n 's/^stat::.*//;s/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
  found=$(find "$findings" -type f | wc -l)
  line="$target: ${execs:-?} executions in ${time:-$seconds} s, corpus $(find "$corpus" -type f | wc -l) (+ $(find "$seeds" -type f | wc -l) seeds), findings $found"
  echo "$line"
  summary+=("$line")
  if [ "$status" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed=1
    echo "!! $target: libFuzzer exited with $status; see $log and $findings/" >&2
    grep -E "ERROR|SUMMARY|_fuzz: " "$log" | head -n 20 >&2 || true
  fi
done
echo "== fuzzing summary ($seconds s per target)"
printf '%s\n' "${summary[@]}"
if [ -n "${RECORD:-}" ]; then
  for line in "${summary[@]}"; do echo "$(date -u +%Y-%m-%dT%H:%MZ) $line" >>"$RECORD"; done
fi
exit "$failed"
