nobase_flowgradinclude_HEADERS += nn/nn.h nn/io.h nn/distributed.h nn/trainer.h nn/step_guard.h
libflowgrad_core_la_SOURCES += \
	nn/naming.c nn/conv.c nn/zero_conv.c nn/linear.c \
	nn/params.c nn/optim.c nn/adam.c nn/adamax.c nn/schedule.c nn/ema.c \
	nn/step_guard.c nn/snapshot.c nn/guarded_step.c \
	nn/json.h nn/json.c nn/atomic_file.c nn/atomic_stale.c nn/safetensors.c nn/safetensors_read.c \
	nn/dataset.c nn/dataset_idx.c nn/dataset_cifar.c nn/dataset_synthetic.c \
	nn/dataset_transform.c \
	nn/png.c nn/jpeg.c nn/image.c nn/image_codecs.h nn/image_fit.c \
	nn/dataset_folder.h nn/dataset_folder.c nn/dataset_folder_scan.c nn/dataset_folder_load.c \
	nn/dataset_folder_cache.c

check_PROGRAMS += tests/test_nn
TESTS += tests/test_nn
tests_test_nn_SOURCES = tests/test_nn.c
tests_test_nn_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_nn_LDADD = $(FG_TEST_LIBS) $(ZLIB_LIBS) $(PNG_LIBS)

# Image files and folders as datasets; a config that trains on one.
check_PROGRAMS += tests/test_image_folder
TESTS += tests/test_image_folder
tests_test_image_folder_SOURCES = tests/test_image_folder.c
tests_test_image_folder_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_image_folder_LDADD = $(FG_TEST_LIBS) $(ZLIB_LIBS) $(PNG_LIBS) $(JPEG_LIBS)

# Data-parallel training over MPI (a one-process stand-in without it).
libflowgrad_core_la_SOURCES += nn/distributed.c nn/distributed_shard.c

# The trainer: one step, and the loop that calls back around it.
libflowgrad_core_la_SOURCES += nn/trainer_internal.h nn/trainer_step.c nn/trainer_split.c \
	nn/trainer_loop.c
AM_CPPFLAGS += $(MPI_CFLAGS)
libflowgrad_core_la_LIBADD += $(MPI_LIBS)
