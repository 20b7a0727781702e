nobase_flowgradinclude_HEADERS += tensor/tensor.h
libflowgrad_la_SOURCES +=
libflowgrad_la_SOURCES += tensor/gemm.c
