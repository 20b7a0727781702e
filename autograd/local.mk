nobase_flowgradinclude_HEADERS += autograd/autograd.h
