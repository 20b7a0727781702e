# models: YAML model configs (parsing, validation, preset expansion) and the
# model zoo.
nobase_flowgradinclude_HEADERS += models/config.h models/model.h models/config_edit.h \
	models/checkpoint.h models/train.h models/train_memory.h models/eval.h \
	models/classifier.h models/toy2d.h models/model_check.h models/run_metrics.h \
	models/vector_flow.h models/layer_kind.h
libflowgrad_core_la_SOURCES += \
	models/config_internal.h \
	models/config_tree.c \
	models/config_schema.c \
	models/config_shape.c \
	models/config_flow.c \
	models/config_glow.c \
	models/config_model.c \
	models/config_train.c \
	models/config_load.c \
	models/config_print.c \
	models/config_edit.c \
	models/layer_internal.h \
	models/layer_registry.c \
	models/layer_squeeze.c \
	models/layer_actnorm.c \
	models/layer_invconv.c \
	models/layer_permute.c \
	models/layer_coupling.c \
	models/layer_split.c \
	models/layer_flatten.c \
	models/layer_scale_diag.c \
	models/layer_autoregressive.c \
	models/build.c \
	models/sample_parts.c \
	models/model_size.c \
	models/checkpoint_check.c \
	models/checkpoint.c \
	models/checkpoint_format.h \
	models/checkpoint_state.c \
	models/checkpoint_save.c \
	models/config_data.c \
	models/model_eval.c \
	models/eval_set.c \
	models/run_metrics.c \
	models/eval_csv.c \
	models/eval_summary.c \
	models/model_train.c \
	models/train_memory.c \
	models/classifier.c \
	models/vector_flow.c \
	models/toy2d.c \
	models/model_health.c \
	models/model_check.c

dist_pkgdata_DATA += \
	models/fmnist-quick.yaml \
	models/mnist.yaml \
	models/cifar10.yaml \
	models/generic-example.yaml \
	models/realnvp-fmnist.yaml \
	models/nice-fmnist.yaml \
	models/ablation-fmnist.yaml \
	models/icons.yaml \
	models/fmnist-cond.yaml \
	models/fmnist-quick-cond.yaml

check_PROGRAMS += tests/test_config
TESTS += tests/test_config
tests_test_config_SOURCES = tests/test_config.c
tests_test_config_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_config_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += \
	tests/configs/good-generic.yaml \
	tests/configs/bad-unknown-key.yaml \
	tests/configs/bad-wrong-type.yaml \
	tests/configs/bad-out-of-range.yaml \
	tests/configs/bad-missing-required.yaml \
	tests/configs/bad-too-many-levels.yaml \
	tests/configs/bad-odd-split.yaml \
	tests/configs/bad-odd-coupling.yaml \
	tests/configs/bad-squeeze-in-repeat.yaml \
	tests/configs/bad-split-last.yaml \
	tests/configs/bad-duplicate-key.yaml \
	tests/configs/bad-alias-bomb.yaml \
	tests/configs/bad-deep-nesting.yaml \
	tests/configs/bad-two-documents.yaml \
	tests/configs/bad-syntax.yaml \
	tests/configs/bad-dataset-shape.yaml \
	tests/configs/bad-epochs-and-steps.yaml \
	tests/configs/bad-quoted-number.yaml \
	tests/configs/bad-tag.yaml \
	tests/configs/bad-unknown-layer.yaml \
	tests/configs/bad-additive-scale.yaml \
	tests/configs/bad-lr.yaml

# The layer kinds' registry: schemas, shape rules against built layers,
# option errors, the roles the chain walks by.
check_PROGRAMS += tests/test_layer_registry
TESTS += tests/test_layer_registry
tests_test_layer_registry_SOURCES = tests/test_layer_registry.c
tests_test_layer_registry_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_layer_registry_LDADD = $(FG_TEST_LIBS)

check_PROGRAMS += tests/test_zoo_train
TESTS += tests/test_zoo_train
tests_test_zoo_train_SOURCES = tests/test_zoo_train.c
tests_test_zoo_train_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_zoo_train_LDADD = $(FG_TEST_LIBS)

# The lifecycle: trainer, checkpoints (format 1 included) and bits/dim.
check_PROGRAMS += tests/test_lifecycle
TESTS += tests/test_lifecycle
tests_test_lifecycle_SOURCES = tests/test_lifecycle.c
tests_test_lifecycle_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_lifecycle_LDADD = $(FG_TEST_LIBS)

# The zoo's classifier and 2-D toy flow: a narrower copy of each trains.
check_PROGRAMS += tests/test_classify
TESTS += tests/test_classify
tests_test_classify_SOURCES = tests/test_classify.c
tests_test_classify_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_classify_LDADD = $(FG_TEST_LIBS)
check_PROGRAMS += tests/test_toy2d
TESTS += tests/test_toy2d
tests_test_toy2d_SOURCES = tests/test_toy2d.c
tests_test_toy2d_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_toy2d_LDADD = $(FG_TEST_LIBS)
check_PROGRAMS += tests/test_vector_flow
TESTS += tests/test_vector_flow
tests_test_vector_flow_SOURCES = tests/test_vector_flow.c
tests_test_vector_flow_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_vector_flow_LDADD = $(FG_TEST_LIBS)

# Evaluation image by image: the K-draw bound against a long double
# reference and the evaluation training reports, transforms, sets, tables.
check_PROGRAMS += tests/test_eval
TESTS += tests/test_eval
tests_test_eval_SOURCES = tests/test_eval.c
tests_test_eval_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_eval_LDADD = $(FG_TEST_LIBS)

# Training memory by inversion against the recorded tape, on every shipped
# config.
check_PROGRAMS += tests/test_invert
TESTS += tests/test_invert
tests_test_invert_SOURCES = tests/test_invert.c
tests_test_invert_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_invert_LDADD = $(FG_TEST_LIBS)

# Every allocation of a resume, a step and a save made to fail in turn
# (fg_alloc_fail_at is internal, hence the internal link).
check_PROGRAMS += tests/test_alloc_failure
TESTS += tests/test_alloc_failure
tests_test_alloc_failure_SOURCES = tests/test_alloc_failure.c
tests_test_alloc_failure_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_alloc_failure_LDADD = $(FG_TEST_INTERNAL_LIBS)

check_PROGRAMS += tests/test_conditional_flow
TESTS += tests/test_conditional_flow
tests_test_conditional_flow_SOURCES = tests/test_conditional_flow.c
tests_test_conditional_flow_CFLAGS = $(FG_TEST_CFLAGS)
tests_test_conditional_flow_LDADD = $(FG_TEST_LIBS)
EXTRA_DIST += tests/configs/cond-tiny.yaml tests/configs/cond-tensor.yaml
