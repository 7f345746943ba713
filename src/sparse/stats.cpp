// Sparsity statistics (see sparq/sparse/stats.hpp).
#include "sparq/sparse/stats.hpp"

#include <cmath>

#include "sparse/group_scan.hpp"

namespace sparq {

SparsityStats sparsity_stats(std::span<const float> original, std::span<const float> pruned,
                             const WeightShape& shape, const PruneOptions& options) {
  shape.validate(original.size(), "sparsity_stats (original)");
  shape.validate(pruned.size(), "sparsity_stats (pruned)");
  const NMPattern p = options.pattern;
  const int64_t groups = detail::checked_group_count(shape, p, options.tail, "sparsity_stats");
  detail::check_finite_weights(original, shape, "sparsity_stats (original)");
  detail::check_finite_weights(pruned, shape, "sparsity_stats (pruned)");

  SparsityStats st;
  st.pattern = p;
  st.elements = shape.size();
  double total_sq = 0, kept_sq = 0;
  for (std::size_t e = 0; e < original.size(); ++e) {
    const double a = std::fabs(static_cast<double>(original[e]));
    const double b = std::fabs(static_cast<double>(pruned[e]));
    st.total_l1 += a;
    total_sq += a * a;
    st.retained_l1 += b;
    kept_sq += b * b;
    st.nonzeros += pruned[e] != 0.0f;
  }
  st.sparsity = 1.0 - static_cast<double>(st.nonzeros) / static_cast<double>(st.elements);
  if (st.total_l1 > 0) st.retained_l1_fraction = st.retained_l1 / st.total_l1;
  if (total_sq > 0) st.retained_l2_fraction = std::sqrt(kept_sq / total_sq);
  st.groups = groups * shape.outputs;
  detail::for_each_group(pruned.data(), shape, p.m, groups,
                         [&](int64_t, int64_t, const float* v, int r) {
                           int count = 0;
                           for (int j = 0; j < r; ++j) count += v[j] != 0.0f;
                           st.groups_below_n += count < std::min(p.n, r);
                           st.groups_above_n += count > p.n;
                         });
  return st;
}

SparsityStats sparsity_stats(std::span<const float> original, const SparseMask& mask) {
  mask.shape.validate(original.size(), "sparsity_stats");
  std::vector<float> pruned(original.begin(), original.end());
  mask.apply(pruned);
  return sparsity_stats(original, pruned, mask.shape, {mask.pattern, TailPolicy::pad_zeros});
}

}  // namespace sparq
