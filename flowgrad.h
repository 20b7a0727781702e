/* flowgrad: one include for the whole public API. */
#ifndef FLOWGRAD_H
#define FLOWGRAD_H
#include "tensor/tensor.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "flows/flow.h"
#include "models/config.h"
#include "models/model.h"
#include "models/checkpoint.h"
#endif
