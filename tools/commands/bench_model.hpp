// `sparq bench model NAME [--int8|--fp32|--both] [--threads N] [--batch B]
// [--repeat R] [--size S] [--seq L] [--json] [--no-peer] [--profile]`:
// median latency and weight bytes of a whole model (models.hpp builders,
// random weights), sparq FP32 and INT8 next to PyTorch (docs/cnn.md).
// Implemented in bench_model.cpp; bench.cpp dispatches "model" here.
#pragma once

#include "command.hpp"

int run_model_bench(const sparq::tool::Args& args);
