// Helpers shared by the tests/unit/sparse_*_test.cpp suites.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "sparq/sparse/mask.hpp"

namespace sparq::testing {

/// The N:M patterns the sparse suites sweep: 2:4 and its neighbours, the
/// edges N = 1 and N = M - 1, a non-power-of-two M (3:5) and the largest M
/// that NMPattern allows (16).
inline constexpr NMPattern kPatterns[] = {{2, 4}, {1, 4}, {3, 4},  {1, 2},  {2, 8},  {3, 8},
                                          {4, 8}, {3, 5}, {1, 16}, {5, 16}, {15, 16}};

/// Random weights; with `few_values` they are drawn from {-2,-1,0,1,2} so
/// that equal magnitudes (ties) and zeros are frequent.
inline std::vector<float> random_weights(int64_t count, uint32_t seed, bool few_values = false) {
  std::mt19937 rng(seed);
  std::vector<float> w(static_cast<std::size_t>(count));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-2, 2);
  for (float& x : w) x = few_values ? static_cast<float>(small(rng)) : normal(rng);
  return w;
}

/// The same matrix in the other layout.
template <class T>
std::vector<T> transpose_layout(const std::vector<T>& w, const WeightShape& s) {
  const WeightShape t{
      s.outputs, s.inputs,
      s.layout == WeightLayout::out_in ? WeightLayout::in_out : WeightLayout::out_in};
  std::vector<T> out(w.size());
  for (int64_t o = 0; o < s.outputs; ++o)
    for (int64_t i = 0; i < s.inputs; ++i) out[t.index(o, i)] = w[s.index(o, i)];
  return out;
}

}  // namespace sparq::testing
