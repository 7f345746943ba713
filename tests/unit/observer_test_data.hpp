// Test data and FP64 reference computations shared by the observer tests.
// The references are deliberately plain loops over the raw values, written
// without looking at the observer code paths (no kernels, no grid tricks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace sparq::testing {

/// n draws of `dist` from a generator seeded with `seed`.
template <class Distribution>
std::vector<float> random_data(std::size_t n, Distribution dist, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> uniform_data(std::size_t n, float lo, float hi, uint64_t seed) {
  return random_data(n, std::uniform_real_distribution<float>(lo, hi), seed);
}

inline std::vector<float> normal_data(std::size_t n, float mean, float sigma, uint64_t seed) {
  return random_data(n, std::normal_distribution<float>(mean, sigma), seed);
}

/// Sprinkles NaN, +Inf, -Inf and signed zeros at random positions; returns
/// the number of NaN and Inf written.
struct Poison {
  int64_t nan = 0, inf = 0;
};
inline Poison poison(std::vector<float>& v, uint64_t seed, int every = 17) {
  std::mt19937_64 rng(seed);
  Poison p;
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            -0.0f,
                            0.0f,
                            -std::numeric_limits<float>::quiet_NaN()};
  for (auto& x : v) {
    if (rng() % every != 0) continue;
    const float s = specials[rng() % 6];
    x = s;
    if (std::isnan(s)) ++p.nan;
    if (std::isinf(s)) ++p.inf;
  }
  return p;
}

struct RefMinMax {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  int64_t nan = 0, inf = 0;
  bool any() const { return min <= max; }
};

inline RefMinMax ref_minmax(const float* x, std::size_t n, std::size_t stride = 1) {
  RefMinMax r;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i * stride];
    if (std::isnan(v)) {
      ++r.nan;
    } else if (std::isinf(v)) {
      ++r.inf;
    } else {
      r.min = std::min(r.min, v);
      r.max = std::max(r.max, v);
    }
  }
  return r;
}

/// A file name in the test temp dir, unique per process and tag.
inline std::filesystem::path temp_file(const std::string& tag) {
  return std::filesystem::temp_directory_path() /
         ("sparq_observer_" + tag + "_" + std::to_string(::getpid()) + ".bin");
}

}  // namespace sparq::testing
