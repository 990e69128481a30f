#!/usr/bin/env bash
# The held-out quality run on Gemma 3 270M (bench/results/quality-gemma.md): esamp without the warm
# start (the hypothesis of bench/results/gemma-loops.md, section 5), at rank 128 and 64, and the
# library's current defaults, against temperature and min-p sampling, on the 64 held-out prompts of
# bench/prompts/gemma-heldout.txt, through llama.cpp. Writes the CSV, every sample (JSON lines) and
# the Markdown summary (with the matched-perplexity headline) under $OUT, and the plot.
#   bench/quality/gemma-heldout.sh [esamp-eval options...]   (appended: e.g. --samples 16 --tokens 128 --seeds 1,2)
# Env: OUT (build/quality-gemma), ESAMP_EVAL (build/default/examples/eval/esamp-eval), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-build/quality-gemma}
eval_bin=${ESAMP_EVAL:-build/default/examples/eval/esamp-eval}
model=$(scripts/fetch-gemma)
mkdir -p "$out"
"$eval_bin" --model "$model" --engine llama.cpp --threads "${THREADS:-2}" \
  --prompts-file bench/prompts/gemma-heldout.txt --prompts 64 --samples 8 --tokens 80 --seeds 1 \
  --curve 'temperature: T=0.5,0.7,0.85,1' \
  --curve 'min-p: T=1; min_p=0.03,0.1,0.25' \
  --curve 'esamp-cold: T=1; beta=0.5,1; warm_start=0' \
  --curve 'esamp-cold-r64: T=1; beta=0.5; warm_start=0; rank=64' \
  --curve 'esamp-default: T=1; beta=0.5' \
  --csv "$out/quality-gemma.csv" --texts "$out/texts.jsonl" "$@" | tee "$out/summary.md"
if command -v gnuplot >/dev/null; then
  gnuplot -e "csv='$out/quality-gemma.csv'; out='$out/quality-gemma.svg'" bench/quality/plot.gnuplot
fi
