# flows: the invertible-layer interface and the generic flow layers.
nobase_flowgradinclude_HEADERS += flows/flow.h

libflowgrad_core_la_SOURCES += flows/layer.h flows/flow.c flows/actnorm.c flows/invconv.c \
	flows/invconv_lu.c flows/permute.c flows/coupling.c flows/squeeze.c \
	flows/split.c flows/prior.c flows/sequence.c flows/multiscale.c \
	flows/units.h flows/multiscale_units.c flows/multiscale_invert.c \
	flows/flatten.c flows/coupling_dense.c flows/coupling_map.c flows/autoregressive.c \
	flows/scale_diag.c flows/condition.c \
	flows/state_check.c flows/observe.c

check_PROGRAMS += tests/test_flows
TESTS += tests/test_flows
tests_test_flows_SOURCES = tests/test_flows.c
tests_test_flows_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_flows_LDADD = $(FG_TEST_LIBS)
