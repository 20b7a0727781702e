# examples

# GEMM benchmark (OpenBLAS is opened at run time as a yardstick, never linked).
noinst_PROGRAMS += examples/bench/bench_gemm
examples_bench_bench_gemm_SOURCES = examples/bench/bench_gemm.c
examples_bench_bench_gemm_LDADD = libflowgrad.la $(BLIS_LIBS) -ldl -lm
BENCH_THREADS ?= 1
.PHONY: bench bench-gemm
bench-gemm: examples/bench/bench_gemm$(EXEEXT)
	./examples/bench/bench_gemm --threads $(BENCH_THREADS)
bench: bench-gemm
