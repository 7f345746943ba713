// N:M magnitude masks and the transposable 2:4 mask (see sparq/sparse/mask.hpp).
#include "sparq/sparse/mask.hpp"

#include <array>
#include <cmath>

#include "sparse/group_scan.hpp"

namespace sparq {

void NMPattern::validate() const {
  if (m < 2 || m > 16) detail::fail("NMPattern: m ({}) must be in [2, 16] (n={})", m, n);
  if (n < 1 || n >= m) {
    detail::fail("NMPattern: n ({}) must satisfy 1 <= n < m (m={}): n >= m prunes nothing", n, m);
  }
}

void WeightShape::validate(std::size_t elements, const char* who) const {
  if (outputs < 1 || inputs < 1) {
    detail::fail("{}: shape outputs={} inputs={}; expected both >= 1", who, outputs, inputs);
  }
  if (static_cast<int64_t>(elements) != outputs * inputs) {
    detail::fail("{}: weights have {} elements; expected outputs*inputs = {}*{} = {}", who,
                 elements, outputs, inputs, outputs * inputs);
  }
}

namespace detail {

void check_finite_weights(std::span<const float> weights, const WeightShape& shape,
                          const char* who) {
  for (std::size_t e = 0; e < weights.size(); ++e) {
    if (!std::isfinite(weights[e])) {
      const int64_t a = static_cast<int64_t>(e) /
                        (shape.layout == WeightLayout::out_in ? shape.inputs : shape.outputs);
      const int64_t b = static_cast<int64_t>(e) %
                        (shape.layout == WeightLayout::out_in ? shape.inputs : shape.outputs);
      const int64_t o = shape.layout == WeightLayout::out_in ? a : b;
      const int64_t i = shape.layout == WeightLayout::out_in ? b : a;
      fail("{}: weight (output {}, input {}) is {}; expected finite weights", who, o, i,
           weights[e]);
    }
  }
}

int64_t checked_group_count(const WeightShape& shape, const NMPattern& pattern, TailPolicy tail,
                            const char* who) {
  pattern.validate();
  if (shape.inputs % pattern.m != 0 && tail == TailPolicy::refuse) {
    fail(
        "{}: inputs (K={}) is not a multiple of M={}; pad the matrix or pass "
        "TailPolicy::pad_zeros",
        who, shape.inputs, pattern.m);
  }
  return (shape.inputs + pattern.m - 1) / pattern.m;
}

}  // namespace detail

int64_t SparseMask::kept_count() const noexcept {
  int64_t c = 0;
  for (uint8_t k : keep) c += k != 0;
  return c;
}

namespace {
template <class T>
void apply_mask(const SparseMask& mask, std::span<T> w) {
  if (w.size() != mask.keep.size()) {
    detail::fail("SparseMask::apply: weights have {} elements; expected {} (the mask's size)",
                 w.size(), mask.keep.size());
  }
  for (std::size_t e = 0; e < w.size(); ++e) {
    if (!mask.keep[e]) w[e] = T(0);
  }
}
}  // namespace

void SparseMask::apply(std::span<float> weights) const { apply_mask(*this, weights); }
void SparseMask::apply(std::span<int8_t> weights) const { apply_mask(*this, weights); }

bool SparseMask::satisfies_pattern() const noexcept {
  const int64_t m = pattern.m;
  for (int64_t o = 0; o < shape.outputs; ++o) {
    for (int64_t g = 0; g * m < shape.inputs; ++g) {
      int count = 0;
      for (int64_t i = g * m; i < std::min(shape.inputs, g * m + m); ++i) count += kept(o, i);
      if (count > pattern.n) return false;
    }
  }
  return true;
}

bool satisfies_pattern_transposed(const SparseMask& mask) noexcept {
  const WeightShape& s = mask.shape;
  for (int64_t i = 0; i < s.inputs; ++i) {
    for (int64_t g = 0; g * 4 < s.outputs; ++g) {
      int count = 0;
      for (int64_t o = g * 4; o < std::min(s.outputs, g * 4 + 4); ++o) count += mask.kept(o, i);
      if (count > 2) return false;
    }
  }
  return true;
}

SparseMask nm_mask(std::span<const float> weights, const WeightShape& shape,
                   const PruneOptions& options) {
  shape.validate(weights.size(), "nm_mask");
  const NMPattern p = options.pattern;
  const int64_t groups = detail::checked_group_count(shape, p, options.tail, "nm_mask");
  SparseMask mask{shape, p, std::vector<uint8_t>(weights.size())};
  bool bad = false;
  int bad4 = 0;
  uint8_t* keep = mask.keep.data();
  const float* w = weights.data();
  const int64_t k = shape.inputs, outputs = shape.outputs;
  const bool out_in = shape.layout == WeightLayout::out_in;
  // M = 4: full groups take the vectorised path, a partial one the generic.
  const int64_t fast_groups = p.m == 4 ? k / 4 : 0;
  if (fast_groups > 0) {
    std::vector<uint8_t> nib(static_cast<std::size_t>(out_in ? fast_groups : outputs));
    if (out_in) {
      for (int64_t o = 0; o < outputs; ++o) {
        const float* row = w + o * k;
        detail::keep_nibbles4<4>(row, row + 1, row + 2, row + 3, fast_groups, p.n, nib.data(),
                                 bad4);
        uint8_t* dst = keep + o * k;
        for (int64_t g = 0; g < fast_groups; ++g)
          for (int j = 0; j < 4; ++j) dst[4 * g + j] = (nib[g] >> j) & 1u;
      }
    } else {
      for (int64_t g = 0; g < fast_groups; ++g) {
        const float* r = w + 4 * g * outputs;
        detail::keep_nibbles4<1>(r, r + outputs, r + 2 * outputs, r + 3 * outputs, outputs, p.n,
                                 nib.data(), bad4);
        for (int j = 0; j < 4; ++j) {
          uint8_t* dst = keep + (4 * g + j) * outputs;
          for (int64_t o = 0; o < outputs; ++o) dst[o] = (nib[o] >> j) & 1u;
        }
      }
    }
  }
  detail::for_each_group(
      w, shape, p.m, groups,
      [&](int64_t o, int64_t g, const float* v, int r) {
        const unsigned bits = detail::keep_bits(v, r, p.n, bad);
        for (int j = 0; j < r; ++j) keep[shape.index(o, g * p.m + j)] = (bits >> j) & 1u;
      },
      fast_groups);
  if (bad || bad4) detail::check_finite_weights(weights, shape, "nm_mask");
  return mask;
}

std::vector<float> prune_nm(std::span<const float> weights, const WeightShape& shape,
                            const PruneOptions& options) {
  const SparseMask mask = nm_mask(weights, shape, options);
  std::vector<float> out(weights.begin(), weights.end());
  mask.apply(out);
  return out;
}

namespace {

// The 6 pairs of positions in a row of 4, in the documented order.
constexpr std::array<std::array<int, 2>, 6> kPairs{
    {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}}};

// The 90 4x4 patterns with two kept per row and per column, as the pair
// index of each row, in lexicographic order of (row 0, .., row 3).
struct TransposablePatterns {
  std::array<std::array<uint8_t, 4>, 90> rows{};
  int count = 0;
  constexpr TransposablePatterns() {
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 6; ++b)
        for (int c = 0; c < 6; ++c)
          for (int d = 0; d < 6; ++d) {
            int col[4] = {0, 0, 0, 0};
            for (int pr : {a, b, c, d}) {
              ++col[kPairs[pr][0]];
              ++col[kPairs[pr][1]];
            }
            if (col[0] == 2 && col[1] == 2 && col[2] == 2 && col[3] == 2) {
              if (count < 90) {
                rows[count] = {static_cast<uint8_t>(a), static_cast<uint8_t>(b),
                               static_cast<uint8_t>(c), static_cast<uint8_t>(d)};
              }
              ++count;  // counted past 90 so that the static_assert catches it
            }
          }
  }
};
constexpr TransposablePatterns kPatterns{};
static_assert(kPatterns.count == 90 && kPatterns.rows[89][0] == 5,
              "there must be exactly 90 patterns (the last one starting with pair (2,3))");

}  // namespace

SparseMask transposable_mask(std::span<const float> weights, const WeightShape& shape,
                             TailPolicy tail) {
  shape.validate(weights.size(), "transposable_mask");
  const NMPattern p{2, 4};
  detail::checked_group_count(shape, p, tail, "transposable_mask");
  if (shape.outputs % 4 != 0 && tail == TailPolicy::refuse) {
    detail::fail(
        "transposable_mask: outputs ({}) is not a multiple of 4; pad the matrix or pass "
        "TailPolicy::pad_zeros",
        shape.outputs);
  }
  detail::check_finite_weights(weights, shape, "transposable_mask");
  SparseMask mask{shape, p, std::vector<uint8_t>(weights.size())};
  for (int64_t ob = 0; ob < shape.outputs; ob += 4) {
    for (int64_t ib = 0; ib < shape.inputs; ib += 4) {
      // pair[r][q]: kept |w| of row r (output ob + r) if it keeps pair q.
      float a[4][4] = {};
      for (int r = 0; r < 4 && ob + r < shape.outputs; ++r)
        for (int c = 0; c < 4 && ib + c < shape.inputs; ++c)
          a[r][c] = std::fabs(weights[shape.index(ob + r, ib + c)]);
      float pair[4][6];
      for (int r = 0; r < 4; ++r)
        for (int q = 0; q < 6; ++q) pair[r][q] = a[r][kPairs[q][0]] + a[r][kPairs[q][1]];
      int best = 0;
      float best_sum = -1.0f;
      for (int t = 0; t < 90; ++t) {
        const auto& pr = kPatterns.rows[t];
        // Left-to-right sum in a fixed order: ties compare equal exactly.
        const float sum = pair[0][pr[0]] + pair[1][pr[1]] + pair[2][pr[2]] + pair[3][pr[3]];
        if (sum > best_sum) {
          best_sum = sum;
          best = t;
        }
      }
      for (int r = 0; r < 4 && ob + r < shape.outputs; ++r) {
        for (int c : kPairs[kPatterns.rows[best][r]]) {
          if (ib + c < shape.inputs) mask.keep[shape.index(ob + r, ib + c)] = 1;
        }
      }
    }
  }
  return mask;
}

}  // namespace sparq
