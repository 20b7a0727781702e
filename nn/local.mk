nobase_flowgradinclude_HEADERS += nn/nn.h
