// Random FP32 tensors for the nn tests: uniform in [lo, hi), from the
// caller's generator so each test's data is reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "sparq/nn/tensor.hpp"

namespace sparq::test {

template <class Rng>
nn::Tensor random_tensor(std::vector<int64_t> shape, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  nn::Tensor t(std::move(shape));
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& v : t.data) v = u(rng);
  return t;
}

}  // namespace sparq::test
