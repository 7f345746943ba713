// `sparq bench model NAME [--int8|--fp32] [--threads N] [--batch B] [--json]`:
// latency and bytes of a whole model (models.hpp builders, random weights).
// Implemented in bench_model.cpp; bench.cpp dispatches "model" here.
#pragma once

#include "command.hpp"

int run_model_bench(const sparq::tool::Args& args);
