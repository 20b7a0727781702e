nobase_flowgradinclude_HEADERS += tensor/tensor.h
libflowgrad_la_SOURCES +=
