# Pass@k against k, one curve per configuration, from esamp-passk's CSV (bench/results/passk-gemma.md).
# Usage: gnuplot -e "csv='bench/results/passk-gemma.csv'; out='bench/results/passk-gemma.svg'" bench/passk/plot.gnuplot
# Error bars: the 95% bootstrap intervals over problems.
if (!exists("csv")) csv = "bench/results/passk-gemma.csv"
if (!exists("out")) out = "bench/results/passk-gemma.svg"

set datafile separator ","
set datafile columnheaders
# The terminal follows the output's extension: .png (cairo) or else SVG.
if (strlen(out) > 4 && out[strlen(out)-3:] eq ".png") {
  set terminal pngcairo size 900,600 font "sans,11"
} else {
  set terminal svg size 900,600 dynamic font "sans,13"
}
set output out
set termoption noenhanced  # "@" in titles is text

# Configuration names in order of first appearance among the pass_at_k rows; names hold no spaces.
curves = system(sprintf("awk -F, '$1 == \"pass_at_k\" && !seen[$2]++ { print $2 }' '%s'", csv))
n = words(curves)
on_curve(i) = strcol("table") eq "pass_at_k" && strcol("config") eq word(curves, i) ? 1 : NaN

set key bottom right
set grid
set logscale x 2
set xtics (1, 2, 4, 8, 16, 32, 64)
set offsets graph 0.03, graph 0.03, 0, 0
set yrange [0:1]
set xlabel "k (samples drawn from the n of a problem)"
set ylabel "Pass@k (unbiased estimator, mean over problems)"
set title "Pass@k against k (95% bootstrap intervals over problems)"
plot for [i=1:n] csv using (on_curve(i) * column("k")):"estimate":"lo":"hi" \
       with yerrorbars lt i pt 7 ps 0.5 notitle, \
     for [i=1:n] csv using (on_curve(i) * column("k")):"estimate" \
       with linespoints lt i pt 7 lw 2 title word(curves, i)
