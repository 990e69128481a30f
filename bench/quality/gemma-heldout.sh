#!/usr/bin/env bash
# The held-out quality run on Gemma 3 270M (bench/results/quality-gemma.md): esamp without the warm
# start (the hypothesis of bench/results/gemma-loops.md, section 5) at β 0.5 and 1, against
# temperature and min-p sampling, on the held-out prompts of bench/prompts/gemma-heldout.txt,
# through llama.cpp. The defaults here (32 prompts, 8 samples, 64 tokens, one seed) are what fits
# a session on 2 cores; the issue's bar is --prompts 64 --samples 16 --tokens 128 --seeds 1,2. Writes the CSV, every sample (JSON lines) and
# the Markdown summary (with the matched-perplexity headline) under $OUT, and the plot.
#   bench/quality/gemma-heldout.sh [esamp-eval options...]   (appended: a later value wins; a --curve adds to the grid)
# Env: OUT (build/quality-gemma), ESAMP_EVAL (build/default/examples/eval/esamp-eval), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-build/quality-gemma}
eval_bin=${ESAMP_EVAL:-build/default/examples/eval/esamp-eval}
model=$(scripts/fetch-gemma)
mkdir -p "$out"
"$eval_bin" --model "$model" --engine llama.cpp --threads "${THREADS:-2}" \
  --prompts-file bench/prompts/gemma-heldout.txt --prompts 32 --samples 8 --tokens 64 --seeds 1 \
  --curve 'temperature: T=0.6,0.8,1' \
  --curve 'min-p: T=1; min_p=0.05,0.2' \
  --curve 'esamp-cold: T=1; beta=0.5,1; warm_start=0' \
  --csv "$out/quality-gemma.csv" --texts "$out/texts.jsonl" "$@" | tee "$out/summary.md"
if command -v gnuplot >/dev/null; then
  gnuplot -e "csv='$out/quality-gemma.csv'; out='$out/quality-gemma.svg'" bench/quality/plot.gnuplot
fi
