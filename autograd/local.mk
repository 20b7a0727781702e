nobase_flowgradinclude_HEADERS += autograd/autograd.h
EXTRA_DIST += autograd/internal.h
libflowgrad_core_la_SOURCES += \
	autograd/graph.c \
	autograd/leaf_grads.c \
	autograd/leaf.c \
	autograd/ops_binary.c \
	autograd/ops_unary.c \
	autograd/ops_reduce.c \
	autograd/ops_channel.c \
	autograd/ops_channel_major.c \
	autograd/ops_conv_affine_relu.c \
	autograd/ops_conv_chain.c \
	autograd/ops_coupling.c \
	autograd/ops_spline.c \
	autograd/ops_pool.c \
	autograd/ops_shape.c \
	autograd/ops_matmul.c \
	autograd/ops_linalg.c \
	autograd/ops_loss.c \
	autograd/gradcheck.c

check_PROGRAMS += tests/test_autograd
TESTS += tests/test_autograd
tests_test_autograd_SOURCES = tests/test_autograd.c
tests_test_autograd_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_autograd_LDADD = $(FG_TEST_LIBS)

# The rational-quadratic spline against the float64 reference of
# tests/reference/rq_spline.py, through a committed fixture.
check_PROGRAMS += tests/test_spline
TESTS += tests/test_spline
tests_test_spline_SOURCES = tests/test_spline.c
tests_test_spline_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_spline_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += tests/fixtures/rq-spline.safetensors tests/reference/rq_spline.py

# The convolution chain against finite differences, the ops it replaces,
# and itself on 1 and 2 threads.
check_PROGRAMS += tests/test_conv_chain
TESTS += tests/test_conv_chain
tests_test_conv_chain_SOURCES = tests/test_conv_chain.c
tests_test_conv_chain_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_conv_chain_LDADD = $(FG_TEST_LIBS)
