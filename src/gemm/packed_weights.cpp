// pack_weights and the PackedWeights accessors.
#include "sparq/gemm/packed_weights.hpp"

#include <cmath>
#include <new>

#include "gemm/packed_weights_layout.hpp"
#include "kernels/gemm_kernels.hpp"
#include "sparq/detail/packed_sparse_weights_data.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/error.hpp"
#include "util/checked_size.hpp"

namespace sparq {
namespace detail {
namespace {

// Largest K accepted: keeps every column sum (|sum| <= 128 * K) exact in int32.
constexpr int64_t kMaxK = int64_t{1} << 24;

// Packs w[n][k] read through `at(n, k)` into the layout of `kernels`.
template <class At>
std::shared_ptr<PackedWeightsData> pack(int64_t n, int64_t k, const GemmKernels& kernels, At at) {
  auto d = zeroed_packed_weights(n, k, kernels);
  const int64_t nr = d->nr;
  const int64_t kr = d->kr;
  int8_t* out = d->panels.data();
  for (int64_t col = 0; col < n; ++col) {
    const int64_t p = col / nr;
    const int64_t j = col % nr;
    int8_t* panel = out + p * d->kp * nr;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t v = at(col, kk);
      panel[(kk / kr) * nr * kr + j * kr + kk % kr] = v;
      sum += v;
    }
    d->col_sums[static_cast<std::size_t>(col)] = sum;
  }
  return d;
}

}  // namespace

std::shared_ptr<PackedWeightsData> zeroed_packed_weights(int64_t n, int64_t k,
                                                         const GemmKernels& kernels) {
  auto d = std::make_shared<PackedWeightsData>();
  d->isa = kernels.isa;
  d->nr = kernels.nr;
  d->kr = kernels.kr;
  d->n = n;
  d->k = k;
  d->kp = (k + kernels.kr - 1) / kernels.kr * kernels.kr;
  d->n_panels = (n + kernels.nr - 1) / kernels.nr;
  d->panels = AlignedBytes(static_cast<std::size_t>(d->n_panels * d->kp * d->nr));
  d->col_sums.assign(static_cast<std::size_t>(d->n_panels * d->nr), 0);
  return d;
}

std::vector<int8_t> unpack_weights(const PackedWeightsData& d) {
  std::vector<int8_t> w(static_cast<std::size_t>(d.n * d.k));
  const int64_t nr = d.nr;
  const int64_t kr = d.kr;
  for (int64_t col = 0; col < d.n; ++col) {
    const int8_t* panel = d.panel(col / nr);
    const int64_t j = col % nr;
    for (int64_t kk = 0; kk < d.k; ++kk) {
      w[static_cast<std::size_t>(col * d.k + kk)] = panel[(kk / kr) * nr * kr + j * kr + kk % kr];
    }
  }
  return w;
}

std::shared_ptr<const PackedWeightsData> repack_weights(const PackedWeightsData& data, Isa isa) {
  const std::vector<int8_t> w = unpack_weights(data);
  const int64_t k = data.k;
  auto d = pack(data.n, k, gemm_kernels(isa),
                [&](int64_t n, int64_t kk) { return w[static_cast<std::size_t>(n * k + kk)]; });
  d->scales = data.scales;
  d->per_channel = data.per_channel;
  return d;
}

}  // namespace detail

// The handle accessors, for both weight kinds (their contents share these
// fields).
namespace detail {
template <class Data>
int64_t WeightsHandle<Data>::n() const noexcept {
  return data_ ? data_->n : 0;
}
template <class Data>
int64_t WeightsHandle<Data>::k() const noexcept {
  return data_ ? data_->k : 0;
}
template <class Data>
std::span<const float> WeightsHandle<Data>::scales() const noexcept {
  if (!data_) return {};
  return data_->scales;
}
template <class Data>
bool WeightsHandle<Data>::per_channel() const noexcept {
  return data_ && data_->per_channel;
}
template <class Data>
std::span<const int32_t> WeightsHandle<Data>::column_sums() const noexcept {
  if (!data_) return {};
  return std::span<const int32_t>(data_->col_sums).first(static_cast<std::size_t>(data_->n));
}
template <class Data>
std::size_t WeightsHandle<Data>::packed_bytes() const noexcept {
  if (!data_) return 0;
  return data_->panels.size() + data_->col_sums.size() * sizeof(int32_t);
}
template <class Data>
Isa WeightsHandle<Data>::isa() const noexcept {
  return data_ ? data_->isa : Isa::scalar;
}
template class WeightsHandle<PackedWeightsData>;
template class WeightsHandle<PackedSparseWeightsData>;
}  // namespace detail

PackedWeights pack_weights(const int8_t* weights, int64_t n, int64_t k, WeightLayout layout,
                           int64_t ld, std::span<const float> scales) {
  if (weights == nullptr) detail::fail("pack_weights: weights is null; expected N x K int8 data");
  if (n < 1) detail::fail("pack_weights: n ({}) must be >= 1", n);
  if (k < 1) detail::fail("pack_weights: k ({}) must be >= 1", k);
  if (k > detail::kMaxK) {
    detail::fail("pack_weights: k ({}) must be <= {} (2^24: keeps column sums exact in int32)", k,
                 detail::kMaxK);
  }
  if (layout != WeightLayout::out_in && layout != WeightLayout::in_out) {
    detail::fail("pack_weights: layout ({}) is not a WeightLayout; expected out_in or in_out",
                 static_cast<int>(layout));
  }
  const int64_t row = layout == WeightLayout::out_in ? k : n;
  if (ld == 0) ld = row;
  if (ld < row) {
    detail::fail("pack_weights: ld ({}) must be >= {} ({} for the {} layout) or 0", ld, row,
                 layout == WeightLayout::out_in ? "k" : "n",
                 layout == WeightLayout::out_in ? "out_in" : "in_out");
  }
  if (!(scales.empty() || scales.size() == 1 || static_cast<int64_t>(scales.size()) == n)) {
    detail::fail("pack_weights: scales has {} values; expected 0, 1 or n ({})", scales.size(), n);
  }
  for (std::size_t i = 0; i < scales.size(); ++i) {
    if (!std::isfinite(scales[i]) || !(scales[i] > 0.0f)) {
      detail::fail("pack_weights: scales[{}] ({}) must be finite and > 0", i, scales[i]);
    }
  }
  // Checked once, before any index or allocation: the caller's matrix
  // (rows x ld) and the packed copy (n and k rounded up to a panel: at most
  // 64 more each). Without this, n = 2^62 wraps the products.
  const auto rows = static_cast<uint64_t>(layout == WeightLayout::out_in ? n : k);
  detail::checked_mul(rows, static_cast<uint64_t>(ld), "pack_weights: weights rows x ld");
  detail::checked_mul(static_cast<uint64_t>(n) + 64, static_cast<uint64_t>(k) + 64,
                      "pack_weights: packed n x k");
  const detail::GemmKernels& kernels = detail::gemm_kernels(active_isa());
  std::shared_ptr<detail::PackedWeightsData> d;
  try {
    if (layout == WeightLayout::out_in) {
      d = detail::pack(n, k, kernels, [&](int64_t c, int64_t kk) { return weights[c * ld + kk]; });
    } else {
      d = detail::pack(n, k, kernels, [&](int64_t c, int64_t kk) { return weights[kk * ld + c]; });
    }
  } catch (const std::bad_alloc&) {
    detail::fail("pack_weights: cannot allocate the packed copy of {} x {} weights", n, k);
  }
  d->per_channel = static_cast<int64_t>(scales.size()) == n && n > 1;
  if (scales.size() == static_cast<std::size_t>(n)) {
    d->scales.assign(scales.begin(), scales.end());
  } else {
    d->scales.assign(static_cast<std::size_t>(n), scales.empty() ? 1.0f : scales[0]);
  }
  return PackedWeights(std::move(d));
}

}  // namespace sparq
