#!/usr/bin/env bash
# Fuzzes the GGUF reader with libFuzzer for <seconds>, from a seed corpus of small generated models.
# <build-dir> must be configured with clang (CMAKE_CXX_COMPILER=clang++). A finding is written to
# <build-dir>/examples/llama/fuzz/ and makes the script fail.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <build-dir> <seconds>" >&2
  exit 2
fi
build_dir=$1
seconds=$2
cmake --build "$build_dir" --target esamp_gguf_fuzz esamp_gguf_fuzz_seeds
fuzz_dir="$build_dir/examples/llama/fuzz"
corpus="$fuzz_dir/corpus"
mkdir -p "$corpus"
"$fuzz_dir/esamp_gguf_fuzz_seeds" "$corpus"
"$fuzz_dir/esamp_gguf_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$fuzz_dir/" -print_final_stats=1 "$corpus"
