// Channel permutation search for N:M pruning (see sparq/sparse/permutation.hpp).
#include "sparq/sparse/permutation.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sparq {

void check_permutation(std::span<const int64_t> perm, int64_t size, const char* who) {
  if (static_cast<int64_t>(perm.size()) != size) {
    detail::fail("{}: permutation has {} entries; expected {}", who, perm.size(), size);
  }
  std::vector<uint8_t> seen(static_cast<std::size_t>(size), 0);
  for (std::size_t j = 0; j < perm.size(); ++j) {
    const int64_t p = perm[j];
    if (p < 0 || p >= size || seen[static_cast<std::size_t>(p)]) {
      detail::fail("{}: permutation[{}] = {} is {}; expected each of 0..{} exactly once", who, j, p,
                   (p < 0 || p >= size) ? "out of range" : "a repeat", size - 1);
    }
    seen[static_cast<std::size_t>(p)] = 1;
  }
}

std::vector<int64_t> inverse_permutation(std::span<const int64_t> perm) {
  check_permutation(perm, static_cast<int64_t>(perm.size()), "inverse_permutation");
  std::vector<int64_t> inv(perm.size());
  for (std::size_t j = 0; j < perm.size(); ++j)
    inv[static_cast<std::size_t>(perm[j])] = static_cast<int64_t>(j);
  return inv;
}

double retained_l1(std::span<const float> weights, const WeightShape& shape,
                   const PruneOptions& options, std::span<const int64_t> permutation) {
  shape.validate(weights.size(), "retained_l1");
  const NMPattern p = options.pattern;
  const int64_t groups = detail::checked_group_count(shape, p, options.tail, "retained_l1");
  if (!permutation.empty()) check_permutation(permutation, shape.inputs, "retained_l1");
  detail::check_finite_weights(weights, shape, "retained_l1");
  double total = 0;
  float a[16];
  for (int64_t o = 0; o < shape.outputs; ++o) {
    for (int64_t g = 0; g < groups; ++g) {
      const int r = static_cast<int>(std::min<int64_t>(p.m, shape.inputs - g * p.m));
      for (int j = 0; j < r; ++j) {
        const int64_t i = g * p.m + j;
        a[j] = std::fabs(weights[shape.index(o, permutation.empty() ? i : permutation[i])]);
      }
      std::sort(a, a + r, [](float x, float y) { return x > y; });
      for (int j = 0; j < std::min(r, p.n); ++j) total += a[j];
    }
  }
  return total;
}

namespace {

// The search state. Columns are input channels; a "position" is a slot in
// the permuted order (group = position / M). Magnitudes are stored column by
// column, each column padded to a multiple of 8 outputs with zeros, so that
// a swap's evaluation is a straight vectorisable loop over the outputs.
//
// For group g and slot j, nth[g][j][r] is the N-th largest magnitude of row
// r among the group's OTHER M-1 inputs. The retained magnitude of row r of
// the group with slot j holding a value x is then
//     (sum of the N-1 largest others) + max(nth, x)
// (x joins the top N exactly when it exceeds the N-th largest other), so
// replacing the input of slot j by column c changes the group's retained L1
// by sum_r max(nth, a_c) - max(nth, a_old): the first term is unchanged.
class Search {
 public:
  Search(std::span<const float> w, const WeightShape& s, const NMPattern& p)
      : n_(p.n),
        m_(p.m),
        k_(s.inputs),
        groups_((s.inputs + p.m - 1) / p.m),
        rows_((s.outputs + 7) / 8 * 8) {
    const int64_t positions = groups_ * m_;
    mag_.assign(static_cast<std::size_t>(positions * rows_), 0.0f);
    for (int64_t o = 0; o < s.outputs; ++o)
      for (int64_t i = 0; i < k_; ++i) mag_[i * rows_ + o] = std::fabs(w[s.index(o, i)]);
    col_.resize(static_cast<std::size_t>(positions));
    std::iota(col_.begin(), col_.end(), int64_t{0});  // padded columns stay at the end
    nth_.assign(static_cast<std::size_t>(positions * rows_), 0.0f);
    score_.assign(static_cast<std::size_t>(groups_), 0.0);
    version_.assign(static_cast<std::size_t>(groups_), 0);
    for (int64_t g = 0; g < groups_; ++g) update_group(g);
  }

  // One sweep over all group pairs; returns the number of swaps applied.
  int64_t sweep(std::vector<uint64_t>& checked) {
    int64_t swaps = 0;
    for (int64_t g1 = 0; g1 < groups_; ++g1) {
      for (int64_t g2 = g1 + 1; g2 < groups_; ++g2) {
        const uint64_t stamp = static_cast<uint64_t>(version_[g1]) << 32 | version_[g2];
        uint64_t& last = checked[static_cast<std::size_t>(g1 * groups_ + g2)];
        if (last == stamp + 1) continue;  // +1: 0 means "never examined"
        if (try_pair(g1, g2)) {
          ++swaps;
        } else {
          last = stamp + 1;
        }
      }
    }
    return swaps;
  }

  std::vector<int64_t> permutation() const {
    return std::vector<int64_t>(col_.begin(), col_.begin() + k_);
  }
  int64_t groups() const { return groups_; }

 private:
  int real_slots(int64_t g) const { return static_cast<int>(std::min<int64_t>(m_, k_ - g * m_)); }
  const float* mag(int64_t pos) const { return mag_.data() + col_[pos] * rows_; }
  float* nth(int64_t pos) { return nth_.data() + pos * rows_; }

  void update_group(int64_t g) {
    float v[16], sorted[16];
    double score = 0;
    const float* cols[16];
    for (int j = 0; j < m_; ++j) cols[j] = mag(g * m_ + j);
    for (int64_t r = 0; r < rows_; ++r) {
      for (int j = 0; j < m_; ++j) sorted[j] = v[j] = cols[j][r];
      std::sort(sorted, sorted + m_, [](float x, float y) { return x > y; });
      float top = 0;
      for (int j = 0; j < n_; ++j) top += sorted[j];
      score += top;
      // Leaving out v[j]: the N-th largest of the others is sorted[n] if v[j]
      // is among the top N (sorted[n-1] >= v[j] would otherwise be it), else
      // sorted[n-1]. Equal values make either choice the same number.
      for (int j = 0; j < m_; ++j)
        nth(g * m_ + j)[r] = v[j] >= sorted[n_ - 1] ? sorted[n_] : sorted[n_ - 1];
    }
    score_[g] = score;
    ++version_[g];
  }

  // Retained-L1 change of swapping slot j1 of g1 with slot j2 of g2.
  float gain(int64_t p1, int64_t p2) {
    const float* t1 = nth(p1);
    const float* t2 = nth(p2);
    const float* a1 = mag(p1);
    const float* a2 = mag(p2);
    float acc[8] = {};
    for (int64_t r = 0; r < rows_; r += 8) {
      for (int l = 0; l < 8; ++l) {
        const int64_t i = r + l;
        acc[l] += (std::max(t1[i], a2[i]) - std::max(t1[i], a1[i])) +
                  (std::max(t2[i], a1[i]) - std::max(t2[i], a2[i]));
      }
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  }

  bool try_pair(int64_t g1, int64_t g2) {
    // Accept only gains clearly above the float rounding of the sums (a few
    // ulps of the groups' retained L1): a spurious "gain" could otherwise
    // make the search cycle between equivalent permutations.
    float best = static_cast<float>(1e-6 * (score_[g1] + score_[g2]));
    int64_t best1 = -1, best2 = -1;
    const int r1 = real_slots(g1), r2 = real_slots(g2);
    for (int j1 = 0; j1 < r1; ++j1) {
      for (int j2 = 0; j2 < r2; ++j2) {
        const float g = gain(g1 * m_ + j1, g2 * m_ + j2);
        if (g > best) {
          best = g;
          best1 = g1 * m_ + j1;
          best2 = g2 * m_ + j2;
        }
      }
    }
    if (best1 < 0) return false;
    std::swap(col_[best1], col_[best2]);
    update_group(g1);
    update_group(g2);
    return true;
  }

  int n_, m_;
  int64_t k_, groups_, rows_;
  std::vector<float> mag_;     // [column][rows_]
  std::vector<int64_t> col_;   // column at each position
  std::vector<float> nth_;     // [position][rows_]
  std::vector<double> score_;  // retained L1 per group
  std::vector<uint32_t> version_;
};

}  // namespace

PermutationResult search_permutation(std::span<const float> weights, const WeightShape& shape,
                                     const PermutationOptions& options) {
  shape.validate(weights.size(), "search_permutation");
  const PruneOptions prune{options.pattern, options.tail};
  detail::checked_group_count(shape, options.pattern, options.tail, "search_permutation");
  if (options.max_sweeps < 1) {
    detail::fail("search_permutation: max_sweeps ({}) must be >= 1", options.max_sweeps);
  }
  detail::check_finite_weights(weights, shape, "search_permutation");

  PermutationResult result;
  Search search(weights, shape, options.pattern);
  std::vector<uint64_t> checked(static_cast<std::size_t>(search.groups() * search.groups()), 0);
  while (result.sweeps < options.max_sweeps) {
    ++result.sweeps;
    const int64_t swaps = search.sweep(checked);
    result.swaps += swaps;
    if (swaps == 0) {
      result.converged = true;
      break;
    }
  }
  result.permutation = search.permutation();
  for (float x : weights) result.total_l1 += std::fabs(x);
  result.identity_l1 = retained_l1(weights, shape, prune);
  result.permuted_l1 = retained_l1(weights, shape, prune, result.permutation);
  if (result.permuted_l1 < result.identity_l1) {  // only float noise can do this
    std::iota(result.permutation.begin(), result.permutation.end(), int64_t{0});
    result.permuted_l1 = result.identity_l1;
  }
  return result;
}

}  // namespace sparq
