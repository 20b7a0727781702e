nobase_flowgradinclude_HEADERS += tensor/tensor.h tensor/export.h
libflowgrad_core_la_SOURCES += tensor/error.c tensor/threads.c tensor/arena.c \
	tensor/arena_trace.c tensor/arena_trace.h \
	tensor/tensor.c tensor/rng.c tensor/elementwise.c tensor/reduce.c \
	tensor/conv.c tensor/conv_columns.c tensor/conv_narrow.c tensor/conv_cm.c tensor/conv_constant.c tensor/conv_pointwise.c tensor/conv_internal.h tensor/alloc_internal.h tensor/simd_math.h tensor/parallel_internal.h \
	tensor/layout.c tensor/rq_spline.c tensor/linalg.c tensor/condition.c tensor/fence.c tensor/profile.c
libflowgrad_core_la_SOURCES += tensor/gemm.c

check_PROGRAMS += tests/test_tensor
TESTS += tests/test_tensor
tests_test_tensor_SOURCES = tests/test_tensor.c
tests_test_tensor_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_tensor_LDADD = $(FG_TEST_LIBS)

# The vectorizable math of tensor/simd_math.h against libm; built with the
# library's -fno-trapping-math, so its loop case runs vectorized.
check_PROGRAMS += tests/test_simd_math
TESTS += tests/test_simd_math
tests_test_simd_math_SOURCES = tests/test_simd_math.c
tests_test_simd_math_CFLAGS = $(FG_TEST_CFLAGS) -fno-trapping-math
tests_test_simd_math_LDADD = $(FG_TEST_LIBS)

# The arena's event traces, replayed at another batch (internal).
check_PROGRAMS += tests/test_arena_trace
TESTS += tests/test_arena_trace
tests_test_arena_trace_SOURCES = tests/test_arena_trace.c
tests_test_arena_trace_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_arena_trace_LDADD = $(FG_TEST_INTERNAL_LIBS)

# GEMM: the entry point and the microkernels it registers into BLIS.
libflowgrad_core_la_SOURCES += tensor/gemm_internal.h \
	tensor/kernels/sgemm_kernels.h tensor/kernels/row_affine.h tensor/kernels/row_affine_avx512.h \
	tensor/kernels/transpose8.h tensor/kernels/lanes_avx2.h tensor/kernels/lanes_avx512.h \
	tensor/kernels/sgemm_scalar.c tensor/kernels/sgemm_avx2.c tensor/kernels/sgemm_unpacked_avx2.c \
	tensor/kernels/sgemm_avx512.c tensor/kernels/sgemm_unpacked_avx512.c \
	tensor/kernels/tile_12x32_avx512.h tensor/kernels/sgemm_packed_avx512.c \
	tensor/kernels/sgemm_dot_avx512.c tensor/kernels/sgemm_amx_bf16x6.c

check_PROGRAMS += tests/test_gemm
TESTS += tests/test_gemm
tests_test_gemm_SOURCES = tests/test_gemm.c
tests_test_gemm_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_gemm_LDADD = $(FG_TEST_INTERNAL_LIBS)
