set terminal pngcairo size 900,500 font 'sans,10'
set output 'utilization.png'
set title 'Card utilization'
set xlabel 'simulated time (h)'
set ylabel 'busy cards (%)'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'tiers', 'series-extender.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):(100*$2) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'fragmentation.png'
set title 'Fragmentation: free cards with no free linked neighbour'
set xlabel 'simulated time (h)'
set ylabel 'stranded / free cards (%)'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'tiers', 'series-extender.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):(100*$3) every ::1 with lines lw 2 title 'hyperaccel'
set terminal pngcairo size 900,500 font 'sans,10'
set output 'pending.png'
set title 'Jobs waiting'
set xlabel 'simulated time (h)'
set ylabel 'pending jobs'
set datafile separator ','
set key outside right
set grid
plot 'series-random.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'random', 'series-binpack.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'binpack', 'series-tiers.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'tiers', 'series-extender.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'extender', 'series-hyperaccel.csv' using ($1/3600):($4) every ::1 with lines lw 2 title 'hyperaccel'
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
