# gnuplot memory-vs-depth.gp: peak RSS of a Glow training step against K.
set terminal pngcairo size 800,500
set output 'memory-vs-depth.png'
set title 'Peak RSS of a training step (Glow L=2, hidden 256, batch 64)'
set xlabel 'steps per level K'
set ylabel 'peak RSS (MiB)'
set logscale xy 2
set xtics (8, 16, 32)
set key top left
set grid
plot 'memory-vs-depth.dat' using 1:2 with linespoints lw 2 title 'PyTorch yardstick', \
     '' using 1:3 with linespoints lw 2 title 'flowgrad, memory: store', \
     '' using 1:4 with linespoints lw 2 title 'flowgrad, memory: invert'
