// Umbrella header: everything a user of sparq needs.
#pragma once

#include "sparq/error.hpp"
#include "sparq/isa.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/quant/requantize.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/threads.hpp"
#include "sparq/observe/observers.hpp"
#include "sparq/sparse/sparse.hpp"
#include "sparq/gemm/sparse_gemm.hpp"
#include "sparq/nn/nn.hpp"
