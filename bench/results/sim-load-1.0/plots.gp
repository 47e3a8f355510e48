set terminal pngcairo size 900,500 font 'sans,10'
set output 'utilization.png'
set title 'Card utilization'
set xlabel 'simulated time (h)'
set ylabel 'busy cards (%)'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'fragmentation.png'
set title 'Fragmentation: free cards with no free linked neighbour'
set xlabel 'simulated time (h)'
set ylabel 'stranded / free cards (%)'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'pending.png'
set title 'Jobs waiting'
set xlabel 'simulated time (h)'
set ylabel 'pending jobs'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'locality-time.png'
set title 'Gangs in one link domain, of those that fit one (started in each interval)'
set xlabel 'simulated time (h)'
set ylabel '%'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):(100*$6) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):(100*$6) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):(100*$6) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):(100*$6) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):(100*$6) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):(100*$6) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'wait-1.png'
set title 'Mean wait of jobs started in each interval, 1 card(s) per task'
set xlabel 'simulated time (h)'
set ylabel 'minutes'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):($7/60) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):($7/60) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):($7/60) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):($7/60) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):($7/60) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):($7/60) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'wait-2.png'
set title 'Mean wait of jobs started in each interval, 2 card(s) per task'
set xlabel 'simulated time (h)'
set ylabel 'minutes'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):($8/60) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):($8/60) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):($8/60) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):($8/60) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):($8/60) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):($8/60) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'wait-3-4.png'
set title 'Mean wait of jobs started in each interval, 3-4 card(s) per task'
set xlabel 'simulated time (h)'
set ylabel 'minutes'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):($9/60) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):($9/60) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):($9/60) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):($9/60) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):($9/60) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):($9/60) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'wait-5-8.png'
set title 'Mean wait of jobs started in each interval, 5-8 card(s) per task'
set xlabel 'simulated time (h)'
set ylabel 'minutes'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):($10/60) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):($10/60) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):($10/60) every ::1 with lines lw 2 title 'tiers', 'series-fgd.csv' using ($1/3600):($10/60) every ::1 with lines lw 2 title 'fgd', 'series-extender.csv' using ($1/3600):($10/60) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):($10/60) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'locality.png'
set title 'Locality'
set ylabel '%'
set yrange [0:105]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right
set datafile separator ','
set xlabel ''
plot 'locality.csv' using 2:xtic(1) title 'multi-card pods on linked cards', '' using 3 title 'gangs in one link domain (of those that fit one)', '' using 4 title 'gangs in one rack'
