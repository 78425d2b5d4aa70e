# chart.gp: the benchmark's chart (make bench): four bar charts, one per
# measurement, one bar per path. bench/run.py writes the data file and calls
#   gnuplot -e "datafile='...'; outfile='...'" bench/chart.gp
# Columns: "label" snapshot_rps proxy_cpu_us events_rps sse_added_p99_us.

set terminal pngcairo noenhanced size 1400,900 font "sans,10"
set output outfile
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.8
set key off
set grid ytics
set xtics rotate by -25 scale 0
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0

set multiplot layout 2,2 title "openova-flow-fcgi: every path against the same upstream (make bench)"

set title "snapshot (34 KB) requests/s, higher is better"
plot datafile using 2:xtic(1) linecolor rgb "#3b7dd8", '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7

set title "proxy-layer CPU per snapshot (us, web server + app), lower is better"
plot datafile using 3:xtic(1) linecolor rgb "#d8843b", '' using 0:3:(sprintf("%.0f", $3)) with labels offset 0,0.7

set title "events (256 KiB POST) requests/s, higher is better"
plot datafile using 4:xtic(1) linecolor rgb "#3bb273", '' using 0:4:(sprintf("%.0f", $4)) with labels offset 0,0.7

set title "SSE latency added at p99 (us, path minus direct), lower is better"
set yrange [*:*]
plot datafile using 5:xtic(1) linecolor rgb "#8e5bd8", '' using 0:5:(sprintf("%.0f", $5)) with labels offset 0,0.7

unset multiplot
