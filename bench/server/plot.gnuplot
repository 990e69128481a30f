# Generated tokens/s against concurrent clients, one curve per server, from load.py's JSON lines
# pivoted by bench/server/run.sh into a whitespace table (clients, then one column per server).
# Usage: gnuplot -e "data='bench/results/server.dat'; out='bench/results/server.svg'" bench/server/plot.gnuplot
if (!exists("data")) data = "bench/results/server.dat"
if (!exists("out")) out = "bench/results/server.svg"
set terminal svg size 720,480 dynamic font "sans,13"
set output out
set datafile columnheaders
set logscale x 2
set xlabel "concurrent clients"
set ylabel "generated tokens/s"
set key top left
set grid
columns = int(system(sprintf("head -n 1 '%s' | wc -w", data)))
plot for [c=2:columns] data using 1:c with linespoints linewidth 2 title columnheader(c)
