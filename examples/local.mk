# examples

# GEMM benchmark (OpenBLAS is opened at run time as a yardstick, never linked);
# it picks GEMM kernel paths, an internal of the library.
noinst_PROGRAMS += examples/bench/bench_gemm
examples_bench_bench_gemm_SOURCES = examples/bench/bench_gemm.c
examples_bench_bench_gemm_LDADD = libflowgrad_core.la $(BLIS_LIBS) -ldl -lm
BENCH_THREADS ?= 1
.PHONY: bench bench-gemm
bench-gemm: examples/bench/bench_gemm$(EXEEXT)
	./examples/bench/bench_gemm --threads $(BENCH_THREADS)
bench: bench-gemm

# Glow training and sampling against the PyTorch yardstick, alternating runs.
noinst_PROGRAMS += examples/bench/bench_glow
examples_bench_bench_glow_SOURCES = examples/bench/bench_glow.c
examples_bench_bench_glow_LDADD = libflowgrad.la $(BLIS_LIBS) -lm
EXTRA_DIST += examples/bench/compare_glow.py
BENCH_GLOW_ARGS ?=
.PHONY: bench-glow
bench-glow: examples/bench/bench_glow$(EXEEXT)
	/usr/bin/python3 $(srcdir)/examples/bench/compare_glow.py \
	    --flowgrad ./examples/bench/bench_glow \
	    --torch $(abs_top_srcdir)/../shared/bench/torch_glow.py $(BENCH_GLOW_ARGS)
bench: bench-glow

# Bandwidth of a memcpy and of the elementwise kernels of a Glow step.
noinst_PROGRAMS += examples/bench/bench_kernels
examples_bench_bench_kernels_SOURCES = examples/bench/bench_kernels.c
examples_bench_bench_kernels_LDADD = libflowgrad.la $(BLIS_LIBS) -lm

# A convolutional Fashion-MNIST classifier (models/classifier.h) trained by
# the library trainer.
noinst_PROGRAMS += examples/classify
examples_classify_SOURCES = examples/classify.c
examples_classify_LDADD = libflowgrad.la $(BLIS_LIBS) -lm

# 2-D toy densities (two moons, eight Gaussians, checkerboard) fitted by a
# flow of dense affine couplings (models/toy2d.h).
noinst_PROGRAMS += examples/toy2d
examples_toy2d_SOURCES = examples/toy2d.c examples/toy2d_png.c examples/toy2d_png.h
examples_toy2d_LDADD = libflowgrad.la $(BLIS_LIBS) -lm

# The flowgrad command line: one source file per subcommand.
bin_PROGRAMS += examples/flowgrad
examples_flowgrad_SOURCES = examples/flowgrad.c examples/cli.h examples/cli.c \
	examples/cmd_train.c examples/cmd_eval.c examples/cmd_sample.c \
	examples/cmd_reconstruct.c examples/cmd_interpolate.c examples/cmd_manipulate.c \
	examples/cmd_check.c examples/cmd_info.c examples/cmd_ablate.c \
	examples/ablate.h examples/ablate_report.c examples/ablate_run.c \
	examples/cmd_plot.c examples/gnuplot.h examples/gnuplot.c \
	examples/plots.h examples/plot_curves.c examples/plot_histogram.c
examples_flowgrad_LDADD = libflowgrad.la $(BLIS_LIBS) -lm

# End-to-end tests of the command line (they run examples/flowgrad).
check_PROGRAMS += tests/test_cli
# The test runs the program, so make check builds it first.
tests_test_cli_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_cli
tests_test_cli_SOURCES = tests/test_cli.c
tests_test_cli_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_cli_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += tests/configs/cli-tiny.yaml

# Stop requests by signal and weight-health checks of flowgrad train.
examples_flowgrad_SOURCES += examples/train_guard.c examples/train_guard.h \
	examples/train_run.c examples/train_run.h

# FLOWGRAD_TRACE: per-layer log-determinants and per-group gradient norms.
examples_flowgrad_SOURCES += examples/train_trace.c examples/train_trace.h

# The memory a training run needs, from measured steps (flowgrad info --batch,
# and the check flowgrad train makes before it starts); its test compares the
# estimate with the peak RSS of real runs.
check_PROGRAMS += tests/test_memory
tests_test_memory_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_memory
tests_test_memory_SOURCES = tests/test_memory.c
tests_test_memory_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_memory_LDADD = $(FG_TEST_LIBS)

# flowgrad train under faults: kills, stop signals, full disk, blow-ups.
check_PROGRAMS += tests/test_reliability
tests_test_reliability_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_reliability
tests_test_reliability_SOURCES = tests/test_reliability.c
tests_test_reliability_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_reliability_LDADD = $(FG_TEST_LIBS)

# Checkpoints and outputs from a hostile world: files that mean something
# impossible are refused by every command that loads them; --out never
# replaces a device, fifo or directory; killed writers' temporaries go.
check_PROGRAMS += tests/test_checkpoint
tests_test_checkpoint_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_checkpoint
tests_test_checkpoint_SOURCES = tests/test_checkpoint.c
tests_test_checkpoint_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_checkpoint_LDADD = $(FG_TEST_LIBS)

# Data-parallel training (mpirun -np N flowgrad train) and its test, which
# compares N ranks with one process; skipped when mpirun is missing.
examples_flowgrad_SOURCES += examples/train_dist.c examples/train_dist.h
check_PROGRAMS += tests/test_mpi
tests_test_mpi_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_mpi
tests_test_mpi_SOURCES = tests/test_mpi.c
tests_test_mpi_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_mpi_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += tests/configs/mpi-init.yaml

# flowgrad ablate on a tiny grid (it runs examples/flowgrad).
check_PROGRAMS += tests/test_ablate
tests_test_ablate_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_ablate
tests_test_ablate_SOURCES = tests/test_ablate.c
tests_test_ablate_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_ablate_LDADD = $(FG_TEST_LIBS)

# The default ablation grid's result, shown in the README.
EXTRA_DIST += examples/ablation-fmnist/summary.md examples/ablation-fmnist/results.csv \
	examples/ablation-fmnist/plot.png examples/ablation-fmnist/4-epochs/summary.md \
	examples/ablation-fmnist/4-epochs/results.csv examples/ablation-fmnist/4-epochs/plot.png \
	examples/ablation-fmnist/unbounded-prior/summary.md \
	examples/ablation-fmnist/unbounded-prior/results.csv \
	examples/ablation-fmnist/unbounded-prior/plot.png

# flowgrad eval's outputs and flowgrad plot end to end (it runs
# examples/flowgrad), and the library's metrics.csv reader.
check_PROGRAMS += tests/test_eval_plot
tests_test_eval_plot_DEPENDENCIES = examples/flowgrad$(EXEEXT) libflowgrad.la
TESTS += tests/test_eval_plot
tests_test_eval_plot_SOURCES = tests/test_eval_plot.c
tests_test_eval_plot_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_eval_plot_LDADD = $(FG_TEST_LIBS)

# The README's figures of flowgrad eval --histogram and flowgrad plot.
EXTRA_DIST += examples/eval-ood/histogram.png \
	examples/curves-fmnist/curves.png examples/curves-fmnist/metrics.csv
