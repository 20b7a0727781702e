# Test programs are listed by the folder they test (see */local.mk); this
# file holds what they share.
EXTRA_DIST += tests/check_main.h
AM_TESTS_ENVIRONMENT = srcdir='$(srcdir)'; export srcdir; CK_DEFAULT_TIMEOUT=600; export CK_DEFAULT_TIMEOUT; FLOWGRAD_THREADS=$${FLOWGRAD_THREADS:-2}; export FLOWGRAD_THREADS;
FG_TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
FG_TEST_LIBS = libflowgrad.la $(CHECK_LIBS) $(BLIS_LIBS) -lm
