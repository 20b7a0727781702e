# libFuzzer targets for the readers of outside input (make fuzz), built with
# clang, AddressSanitizer and UndefinedBehaviorSanitizer apart from the
# normal build: the library's sources are compiled again into
# tests/fuzz/libfg-fuzz.a with coverage instrumentation.
#   make fuzz                      build tests/fuzz/fuzz_{config,safetensors,idx,cifar,checkpoint,image}
#   make fuzz-smoke                each for FUZZ_SECONDS (20) from its seed corpus,
#                                  then replays tests/fuzz/regressions/
#   tests/fuzz/fuzz_config -max_total_time=3600 CORPUSDIR SEEDDIR   a longer run
FUZZ_CC = clang
FUZZ_SECONDS = 20
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=c11 -g -O1 -fno-omit-frame-pointer -fopenmp=libgomp -w \
	$(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_CPPFLAGS = $(AM_CPPFLAGS)
FUZZ_LIBS = $(BLIS_LIBS) $(YAML_LIBS) $(ZLIB_LIBS) $(PNG_LIBS) $(JPEG_LIBS) $(MPI_LIBS) -lgomp -lm -lpthread
FUZZ_TARGETS = config safetensors idx cifar checkpoint image
EXTRA_DIST += tests/fuzz/local.mk tests/fuzz/fuzz_mem.h tests/fuzz/fuzz_config.c \
	tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz_idx.c tests/fuzz/fuzz_cifar.c \
	tests/fuzz/fuzz_checkpoint.c tests/fuzz/fuzz_image.c \
	tests/fuzz/make_seeds.sh tests/fuzz/regressions
CLEANFILES += tests/fuzz/libfg-fuzz.a tests/fuzz/fuzz_config tests/fuzz/fuzz_safetensors \
	tests/fuzz/fuzz_idx tests/fuzz/fuzz_cifar tests/fuzz/fuzz_checkpoint tests/fuzz/fuzz_image

.PHONY: fuzz fuzz-smoke
tests/fuzz/libfg-fuzz.a: $(libflowgrad_core_la_SOURCES)
	@$(MKDIR_P) tests/fuzz/obj
	@echo "  CLANG    library for fuzzing"
	@for f in $(libflowgrad_core_la_SOURCES); do \
	  case $$f in *.c) echo "$$f";; esac; \
	done | xargs -P 2 -I{} sh -c 'o=tests/fuzz/obj/$$(echo {} | tr / _).o; \
	  $(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -c $(srcdir)/{} -o $$o' || exit 1
	@rm -f $@ && ar rcs $@ tests/fuzz/obj/*.o

fuzz: tests/fuzz/libfg-fuzz.a
	@for t in $(FUZZ_TARGETS); do \
	  echo "  CLANG    tests/fuzz/fuzz_$$t"; \
	  $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_CPPFLAGS) \
	    $(srcdir)/tests/fuzz/fuzz_$$t.c tests/fuzz/libfg-fuzz.a $(FUZZ_LIBS) \
	    -o tests/fuzz/fuzz_$$t || exit 1; \
	done

# Seeds: the project's configs and checkpoint fixtures, and small IDX,
# CIFAR, PNG and JPEG files made by make_seeds.sh. Regressions replay first; a failure
# there or a crash in the timed run fails the target.
fuzz-smoke: fuzz
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  seeds=tests/fuzz/seeds/$$t; rm -rf $$seeds tests/fuzz/corpus/$$t; \
	  $(MKDIR_P) $$seeds tests/fuzz/corpus/$$t; \
	  sh $(srcdir)/tests/fuzz/make_seeds.sh $$t $(srcdir) $$seeds || exit 1; \
	  reg=$(srcdir)/tests/fuzz/regressions/$$t; \
	  if ls $$reg/* >/dev/null 2>&1; then \
	    echo "fuzz_$$t: replaying $$(ls $$reg | wc -l) regression inputs"; \
	    ./tests/fuzz/fuzz_$$t -rss_limit_mb=2048 $$reg/* >tests/fuzz/$$t-regressions.log 2>&1 \
	      || { echo "FAIL: fuzz_$$t regressions (tests/fuzz/$$t-regressions.log)"; fail=1; }; \
	  fi; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  ./tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=tests/fuzz/crash-$$t- \
	    tests/fuzz/corpus/$$t $$seeds >tests/fuzz/$$t.log 2>&1 \
	    && echo "PASS: fuzz_$$t ($$(grep -o 'Done [0-9]* runs' tests/fuzz/$$t.log))" \
	    || { echo "FAIL: fuzz_$$t (tests/fuzz/$$t.log)"; tail -n 30 tests/fuzz/$$t.log; fail=1; }; \
	done; exit $$fail
