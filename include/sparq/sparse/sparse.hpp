// Umbrella header of sparq's N:M structured sparsity: masks, channel
// permutations, the compressed format, prune-then-quantize and statistics.
// docs/sparsity.md walks through the whole flow.
#pragma once

#include "sparq/sparse/compressed.hpp"
#include "sparq/sparse/mask.hpp"
#include "sparq/sparse/permutation.hpp"
#include "sparq/sparse/stats.hpp"
#include "sparq/sparse/prune_quantize.hpp"
