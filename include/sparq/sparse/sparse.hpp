// Umbrella header of sparq's N:M structured sparsity: masks, channel
// permutations, the compressed format, prune-then-quantize and statistics.
#pragma once

#include "sparq/sparse/compressed.hpp"
#include "sparq/sparse/mask.hpp"
