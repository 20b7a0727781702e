nobase_flowgradinclude_HEADERS += autograd/autograd.h
EXTRA_DIST += autograd/internal.h
libflowgrad_la_SOURCES += \
	autograd/graph.c \
	autograd/leaf.c \
	autograd/ops_binary.c \
	autograd/ops_unary.c \
	autograd/ops_reduce.c \
	autograd/ops_channel.c \
	autograd/ops_shape.c \
	autograd/ops_matmul.c \
	autograd/ops_linalg.c \
	autograd/ops_loss.c \
	autograd/gradcheck.c
