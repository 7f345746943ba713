// pack_sparse_weights and the PackedSparseWeights accessors.
#include <cmath>
#include <iterator>

#include "kernels/sparse_gemm_kernels.hpp"
#include "sparq/detail/packed_sparse_weights_data.hpp"
#include "sparq/error.hpp"
#include "util/checked_size.hpp"
#include "sparq/gemm/sparse_gemm.hpp"

namespace sparq {
namespace detail {
namespace {

// Largest K accepted: keeps every column sum (|sum| <= 128 * K) exact in
// int32, as pack_weights.
constexpr int64_t kMaxSparseK = int64_t{1} << 24;
// Index byte of an empty step: "positions 0 and 1" in both groups.
constexpr uint8_t kEmptyIndex = 0x44;

// Packs channel rows read through `row(o, step, values) -> index byte` for
// `table`; pads channels and steps with value 0 and kEmptyIndex.
template <class Row>
std::shared_ptr<PackedSparseWeightsData> pack(int64_t n, int64_t k, const SparseGemmKernels& table,
                                              Row row) {
  auto d = std::make_shared<PackedSparseWeightsData>();
  d->isa = table.isa;
  d->nr = table.nr;
  d->n = n;
  d->k = k;
  d->kp = (k + 7) / 8 * 8;
  d->n_panels = (n + table.nr - 1) / table.nr;
  const int64_t nr = d->nr;
  const int64_t steps = d->steps();
  d->panels = AlignedBytes(static_cast<std::size_t>(d->n_panels * d->panel_bytes()));
  d->col_sums.assign(static_cast<std::size_t>(d->n_panels * nr), 0);
  int8_t* base = d->panels.data();
  for (int64_t o = 0; o < d->n_panels * nr; ++o) {
    int8_t* panel = base + (o / nr) * d->panel_bytes();
    const int64_t j = o % nr;
    int32_t sum = 0;
    for (int64_t s = 0; s < steps; ++s) {
      int8_t* step = panel + s * nr * 5;
      int8_t v[4] = {0, 0, 0, 0};
      uint8_t m = kEmptyIndex;
      if (o < n) m = row(o, s, v);
      for (int t = 0; t < 4; ++t) {
        step[j * 4 + t] = v[t];
        sum += v[t];
      }
      step[nr * 4 + j] = static_cast<int8_t>(m);
    }
    d->col_sums[static_cast<std::size_t>(o)] = sum;
  }
  return d;
}

}  // namespace

uint8_t sparse_step(const PackedSparseWeightsData& d, int64_t channel, int64_t step,
                    int8_t values[4]) noexcept {
  const int8_t* s = d.panel(channel / d.nr) + step * d.nr * 5;
  const int64_t j = channel % d.nr;
  for (int t = 0; t < 4; ++t) values[t] = s[j * 4 + t];
  return static_cast<uint8_t>(s[d.nr * 4 + j]);
}

std::shared_ptr<const PackedSparseWeightsData> repack_sparse_weights(
    const PackedSparseWeightsData& data, Isa isa) {
  auto d = pack(data.n, data.k, sparse_gemm_kernels(isa),
                [&](int64_t o, int64_t s, int8_t v[4]) { return sparse_step(data, o, s, v); });
  d->scales = data.scales;
  d->per_channel = data.per_channel;
  return d;
}

}  // namespace detail

const char* sparse_path_name(SparsePath path) noexcept {
  // In enumerator order; a value outside the enum reads as "automatic".
  constexpr const char* kNames[] = {"automatic", "direct", "expand"};
  const auto i = static_cast<std::size_t>(path);
  return i < std::size(kNames) ? kNames[i] : "automatic";
}

PackedSparseWeights pack_sparse_weights(const CompressedNM<int8_t>& w,
                                        std::span<const float> scales) {
  const char* who = "pack_sparse_weights";
  if (!(w.pattern == NMPattern{2, 4})) {
    detail::fail("{}: weights.pattern is {}:{}; expected 2:4", who, w.pattern.n, w.pattern.m);
  }
  w.validate();
  const int64_t n = w.outputs;
  const int64_t k = w.inputs;
  if (k > detail::kMaxSparseK) {
    detail::fail("{}: k ({}) must be <= {} (2^24: keeps column sums exact in int32)", who, k,
                 detail::kMaxSparseK);
  }
  if (!(scales.empty() || scales.size() == 1 || static_cast<int64_t>(scales.size()) == n)) {
    detail::fail("{}: scales has {} values; expected 0, 1 or n ({})", who, scales.size(), n);
  }
  for (std::size_t i = 0; i < scales.size(); ++i) {
    if (!std::isfinite(scales[i]) || !(scales[i] > 0.0f)) {
      detail::fail("{}: scales[{}] ({}) must be finite and > 0", who, i, scales[i]);
    }
  }
  // CompressedNM (2:4): V = 2 * ceil(K / 4) values and ceil(V / 4) index
  // bytes per row; step s covers values 4s..4s+3 and index byte s. When the
  // number of groups is odd, the last step's second group is absent: its
  // values are 0 and its index bits are taken as "positions 0 and 1".
  detail::checked_mul(static_cast<uint64_t>(n) + 64, static_cast<uint64_t>(k) + 64,
                      "pack_sparse_weights: packed n x k");
  const int64_t vpr = w.values_per_row();
  const int64_t bpr = w.metadata_bytes_per_row();
  auto d = detail::pack(n, k, detail::sparse_gemm_kernels(active_isa()),
                        [&](int64_t o, int64_t s, int8_t v[4]) {
                          const int8_t* vals = w.values.data() + o * vpr;
                          uint8_t m = w.metadata[static_cast<std::size_t>(o * bpr + s)];
                          for (int t = 0; t < 4; ++t) {
                            const int64_t slot = 4 * s + t;
                            v[t] = slot < vpr ? vals[slot] : int8_t{0};
                          }
                          if (4 * s + 2 >= vpr) m = static_cast<uint8_t>((m & 0x0F) | 0x40);
                          return m;
                        });
  d->per_channel = static_cast<int64_t>(scales.size()) == n && n > 1;
  if (scales.size() == static_cast<std::size_t>(n)) {
    d->scales.assign(scales.begin(), scales.end());
  } else {
    d->scales.assign(static_cast<std::size_t>(n), scales.empty() ? 1.0f : scales[0]);
  }
  return PackedSparseWeights(std::move(d));
}

std::vector<int8_t> unpack_sparse_weights(const PackedSparseWeights& weights) {
  if (weights.empty()) detail::fail("unpack_sparse_weights: weights are empty");
  const detail::PackedSparseWeightsData& d = weights.data();
  std::vector<int8_t> out(static_cast<std::size_t>(d.n * d.k), 0);
  for (int64_t o = 0; o < d.n; ++o) {
    for (int64_t s = 0; s < d.steps(); ++s) {
      int8_t v[4];
      const unsigned m = detail::sparse_step(d, o, s, v);
      const int64_t pos[4] = {8 * s + (m & 3u), 8 * s + ((m >> 2) & 3u),
                              8 * s + 4 + ((m >> 4) & 3u), 8 * s + 4 + (m >> 6)};
      for (int t = 0; t < 4; ++t) {
        if (pos[t] < d.k) out[static_cast<std::size_t>(o * d.k + pos[t])] = v[t];
      }
    }
  }
  return out;
}

}  // namespace sparq
