# Test programs are listed by the folder they test (see */local.mk); this
# file holds what they share.
EXTRA_DIST += tests/check_main.h tests/check_jacobian.h tests/check_leaf.h
AM_TESTS_ENVIRONMENT = srcdir='$(srcdir)'; export srcdir; CK_DEFAULT_TIMEOUT=600; export CK_DEFAULT_TIMEOUT; FLOWGRAD_THREADS=$${FLOWGRAD_THREADS:-2}; export FLOWGRAD_THREADS;
FG_TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
FG_TEST_LIBS = libflowgrad.la $(CHECK_LIBS) $(BLIS_LIBS) -lm
# Tests of internals (what no public header declares) link the objects
# directly, hidden symbols included.
FG_TEST_INTERNAL_LIBS = libflowgrad_core.la $(CHECK_LIBS) $(BLIS_LIBS) -lm

# Whole models against the PyTorch reference (tests/reference/), through
# committed fixtures so that the test needs no Python.
check_PROGRAMS += tests/test_reference
TESTS += tests/test_reference
tests_test_reference_SOURCES = tests/test_reference.c
tests_test_reference_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_reference_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += \
	tests/fixtures/glow-affine-lu.safetensors \
	tests/fixtures/glow-additive-shuffle.safetensors \
	tests/fixtures/flow-plain-reverse-y.safetensors \
	tests/reference/glow.py \
	tests/reference/safetensors_io.py \
	tests/reference/make_fixtures.py

# The installed library as another project uses it: make install into a
# temporary DESTDIR, examples/library_flow.c built with pkg-config alone.
check_PROGRAMS += tests/test_install
TESTS += tests/test_install
tests_test_install_DEPENDENCIES = libflowgrad.la
tests_test_install_SOURCES = tests/test_install.c
tests_test_install_CFLAGS = $(FG_TEST_CFLAGS)
# A library built with sanitizers needs their runtime in the program too.
tests_test_install_CPPFLAGS = $(AM_CPPFLAGS) -DFG_SANITIZER_FLAGS='"$(SANITIZER_FLAGS)"'
tests_test_install_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += examples/library_flow.c
