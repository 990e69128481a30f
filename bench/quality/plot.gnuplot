# Diversity against perplexity, one curve per method, from esamp-eval's CSV (bench/results/quality.md).
# Usage: gnuplot -e "csv='bench/results/quality.csv'; out='bench/results/quality.svg'" bench/quality/plot.gnuplot
# Left: Vendi score of the samples' meaning (MiniLM embeddings, the headline); right: with the word
# n-gram kernel. Error bars are the 95% intervals over prompts of both coordinates.
if (!exists("csv")) csv = "bench/results/quality.csv"
if (!exists("out")) out = "bench/results/quality.svg"

set datafile separator ","
set datafile columnheaders
# The terminal follows the output's extension: .png (cairo) or else SVG.
if (strlen(out) > 4 && out[strlen(out)-3:] eq ".png") {
  set terminal pngcairo size 1400,560 font "sans,11"
} else {
  set terminal svg size 1400,560 dynamic font "sans,13"
}
set output out

# Curve names in order of first appearance; names never hold spaces, so words() splits them.
curves = system(sprintf("tail -n +2 '%s' | cut -d, -f1 | awk '!seen[$0]++'", csv))
n = words(curves)
on_curve(i) = strcol("curve") eq word(curves, i) ? 1 : NaN

set key bottom right
set grid
# Log scale: the curves cross where perplexity is 2-5; temperature runs out to ~14.
set logscale x
set xtics (2, 2.5, 3, 4, 5, 7, 10, 14, 20)
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set xlabel "perplexity under the base model (lower = more coherent)"
set multiplot layout 1,2 title "Diversity vs coherence (mean over prompts, 95% intervals)"

set ylabel "Vendi score, semantic (all-MiniLM-L6-v2)"
plot for [i=1:n] csv using (on_curve(i) * column("perplexity_mean")):"semantic_vendi_mean": \
       "perplexity_lo":"perplexity_hi":"semantic_vendi_lo":"semantic_vendi_hi" \
       with xyerrorbars lt i pt 7 ps 0.5 notitle, \
     for [i=1:n] csv using (on_curve(i) * column("perplexity_mean")):"semantic_vendi_mean" \
       with linespoints lt i pt 7 lw 2 title word(curves, i)

set ylabel "Vendi score, word n-gram kernel"
plot for [i=1:n] csv using (on_curve(i) * column("perplexity_mean")):"ngram_vendi_mean": \
       "perplexity_lo":"perplexity_hi":"ngram_vendi_lo":"ngram_vendi_hi" \
       with xyerrorbars lt i pt 7 ps 0.5 notitle, \
     for [i=1:n] csv using (on_curve(i) * column("perplexity_mean")):"ngram_vendi_mean" \
       with linespoints lt i pt 7 lw 2 title word(curves, i)

unset multiplot
