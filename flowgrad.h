/* flowgrad: one include for the whole public API. */
#ifndef FLOWGRAD_H
#define FLOWGRAD_H
#include "tensor/tensor.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "nn/io.h"
#include "nn/distributed.h"
#include "nn/trainer.h"
#include "nn/step_guard.h"
#include "flows/flow.h"
#include "models/config.h"
#include "models/model.h"
#include "models/layer_kind.h"
#include "models/checkpoint.h"
#include "models/train.h"
#include "models/eval.h"
#include "models/run_metrics.h"
#include "models/train_memory.h"
#include "models/classifier.h"
#include "models/vector_flow.h"
#include "models/toy2d.h"
#include "models/model_check.h"
#endif
