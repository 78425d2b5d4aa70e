# soak.gp: the soak's chart (make soak): the app's RSS, open descriptors,
# threads and the streams open, over the run, one panel each; the
# baseline window shaded, the baseline and the limit (baseline x limit)
# drawn across. The three watched panels are zoomed on the baseline (15 %
# below it up to the limit or the highest sample), so a creep shows; the first
# samples of the warm-up lie below. bench/soak_report.py writes the data file and calls
#   gnuplot -e "datafile='...'; outfile='...'; base_lo=..; base_hi=..;
#               limit=..; rss_base=..; fds_base=..; threads_base=..;
#               seconds=..; streams=.." bench/soak.gp
# Columns: t rss_mib fds threads upstream_streams.

set terminal pngcairo noenhanced size 1400,900 font "sans,10"
set output outfile
set key bottom right opaque
set grid ytics xtics
set xrange [0:seconds]
set xlabel "seconds since the stable streams were open"
set style rect fc rgb "#eeeeee" fs solid 1.0 noborder
set object 1 rect from base_lo, graph 0 to base_hi, graph 1 behind

set multiplot layout 2,2 title "openova-flow-fcgi soak: nginx + app, 1,000 streams with churn, snapshot and events load (make soak)"

set title "app RSS (VmRSS, MiB; zoomed)"
set yrange [rss_base * 0.85:*]
plot datafile using 1:2 with linespoints pt 7 ps 0.5 lc rgb "#3b7dd8" title "RSS", \
     rss_base with lines dt 2 lc rgb "#555555" title "baseline (shaded window)", \
     rss_base * limit with lines dt 3 lw 2 lc rgb "#d83b3b" title "limit"

set title "app open descriptors (/proc/PID/fd; zoomed)"
set yrange [fds_base * 0.85:*]
plot datafile using 1:3 with linespoints pt 7 ps 0.5 lc rgb "#d8843b" title "descriptors", \
     fds_base with lines dt 2 lc rgb "#555555" title "baseline", \
     fds_base * limit with lines dt 3 lw 2 lc rgb "#d83b3b" title "limit"

set title "app threads (zoomed)"
set yrange [threads_base * 0.85:*]
plot datafile using 1:4 with linespoints pt 7 ps 0.5 lc rgb "#3bb273" title "threads", \
     threads_base with lines dt 2 lc rgb "#555555" title "baseline", \
     threads_base * limit with lines dt 3 lw 2 lc rgb "#d83b3b" title "limit"

set title "streams open at the upstream"
set yrange [0:streams * 1.15]
plot datafile using 1:5 with linespoints pt 7 ps 0.5 lc rgb "#8e5bd8" title "streams"

unset multiplot
