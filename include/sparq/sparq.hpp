// Umbrella header: everything a user of sparq needs.
#pragma once

#include "sparq/error.hpp"
#include "sparq/isa.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/quant/requantize.hpp"
#include "sparq/sparse/sparse.hpp"
