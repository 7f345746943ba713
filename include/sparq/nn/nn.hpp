// sparq::nn - quantized layers, models and the post-training quantization
// workflow. See docs/nn.md for a walk-through.
#pragma once

#include "sparq/nn/adaround.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_frozen.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/io.hpp"
#include "sparq/nn/layers.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/nn/quantized.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/nn/tensor.hpp"
#include "sparq/nn/workflow.hpp"
