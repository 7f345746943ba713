// Compressed N:M format (see sparq/sparse/compressed.hpp for the layout).
#include "sparq/sparse/compressed.hpp"

#include <array>
#include <bit>

#include "sparse/group_scan.hpp"

namespace sparq {

namespace {

// Writes a b-bit field at bit offset `bit` of a zero-initialised row.
inline void put_bits(uint8_t* row, int64_t bit, unsigned v, int b) {
  const int shift = static_cast<int>(bit % 8);
  row[bit / 8] = static_cast<uint8_t>(row[bit / 8] | (v << shift));
  if (shift + b > 8) row[bit / 8 + 1] = static_cast<uint8_t>(row[bit / 8 + 1] | (v >> (8 - shift)));
}

// Sizes `c` for the shape. Values are not cleared (every slot is written by
// the callers), so a reused object costs no page faults or memset; the
// metadata is, because fields are OR-ed in.
template <class T>
void reset_compressed(CompressedNM<T>& c, const WeightShape& shape, const NMPattern& p) {
  c.pattern = p;
  c.outputs = shape.outputs;
  c.inputs = shape.inputs;
  c.values.resize(static_cast<std::size_t>(c.outputs * c.values_per_row()));
  c.metadata.assign(static_cast<std::size_t>(c.outputs * c.metadata_bytes_per_row()), 0);
}

template <class T>
CompressedNM<T> empty_compressed(const WeightShape& shape, const NMPattern& p) {
  CompressedNM<T> c;
  reset_compressed(c, shape, p);
  return c;
}

// Stores group g of row o: `bits` (popcount <= N) are the kept positions of
// the r real values at p; the remaining slots take the lowest unused
// positions (values p[idx] when real, i.e. the group's zeros, else 0).
template <class T>
struct GroupWriter {
  CompressedNM<T>& c;
  int n, b;
  int64_t v_row, b_row;

  explicit GroupWriter(CompressedNM<T>& out)
      : c(out),
        n(out.pattern.n),
        b(out.index_bits()),
        v_row(out.values_per_row()),
        b_row(out.metadata_bytes_per_row()) {}

  void operator()(int64_t o, int64_t g, const T* p, int r, unsigned bits) {
    unsigned extra = static_cast<unsigned>(n - std::popcount(bits));
    for (unsigned free = ~bits; extra > 0; --extra) {
      const unsigned lowest = free & (0u - free);
      bits |= lowest;
      free &= ~lowest;
    }
    T* vals = c.values.data() + o * v_row + g * n;
    uint8_t* meta = c.metadata.data() + o * b_row;
    int64_t bit = g * n * b;
    for (int j = 0; bits != 0; ++j, bit += b) {
      const int idx = std::countr_zero(bits);
      bits &= bits - 1;
      vals[j] = idx < r ? p[idx] : T(0);
      put_bits(meta, bit, static_cast<unsigned>(idx), b);
    }
  }
};

template <class T>
unsigned nonzero_bits(const T* p, int r) {
  unsigned bits = 0;
  // r <= kMaxGroup always; the constant bound also tells the compiler so.
  // Bounded by r alone, GCC (-O2 with -fsanitize=undefined) follows the
  // shift check's j == 32 path and warns that p[32] is past
  // for_each_group's buffer (-Warray-bounds).
  for (int j = 0; j < r && j < detail::kMaxGroup; ++j)
    bits |= static_cast<unsigned>(p[j] != T(0)) << j;
  return bits;
}

[[noreturn]] void fail_too_many(const char* who, int64_t o, int64_t g, int count,
                                const NMPattern& p, const char* what) {
  detail::fail("{}: output {} group {} (inputs {}..{}) has {} {}; expected at most N={} of M={}",
               who, o, g, g * p.m, g * p.m + p.m - 1, count, what, p.n, p.m);
}

template <class T>
CompressedNM<T> compress_pruned(std::span<const T> pruned, const WeightShape& shape,
                                const PruneOptions& options) {
  shape.validate(pruned.size(), "compress");
  const NMPattern p = options.pattern;
  const int64_t groups = detail::checked_group_count(shape, p, options.tail, "compress");
  if constexpr (std::is_same_v<T, float>) detail::check_finite_weights(pruned, shape, "compress");
  CompressedNM<T> c = empty_compressed<T>(shape, p);
  GroupWriter<T> write(c);
  detail::for_each_group(pruned.data(), shape, p.m, groups,
                         [&](int64_t o, int64_t g, const T* v, int r) {
                           const unsigned bits = nonzero_bits(v, r);
                           if (std::popcount(bits) > p.n) {
                             fail_too_many("compress", o, g, std::popcount(bits), p, "non-zeros");
                           }
                           write(o, g, v, r, bits);
                         });
  return c;
}

template <class T>
CompressedNM<T> compress_masked(std::span<const T> weights, const SparseMask& mask) {
  const WeightShape& shape = mask.shape;
  shape.validate(mask.keep.size(), "compress (mask)");
  shape.validate(weights.size(), "compress");
  const NMPattern p = mask.pattern;
  const int64_t groups = detail::checked_group_count(shape, p, TailPolicy::pad_zeros, "compress");
  if constexpr (std::is_same_v<T, float>) detail::check_finite_weights(weights, shape, "compress");
  CompressedNM<T> c = empty_compressed<T>(shape, p);
  GroupWriter<T> write(c);
  detail::for_each_group(
      weights.data(), shape, p.m, groups, [&](int64_t o, int64_t g, const T* v, int r) {
        unsigned bits = 0;
        for (int j = 0; j < r; ++j) {
          bits |= static_cast<unsigned>(mask.kept(o, g * p.m + j)) << j;
        }
        if (std::popcount(bits) > p.n) {
          fail_too_many("compress", o, g, std::popcount(bits), p, "weights kept by the mask");
        }
        // Values outside the mask must not leak into the
        // extra slots: give the writer the masked group.
        T masked[16];
        for (int j = 0; j < r; ++j) masked[j] = (bits >> j) & 1u ? v[j] : T(0);
        write(o, g, masked, r, bits);
      });
  return c;
}

template <class T>
std::vector<T> decompress_any(const CompressedNM<T>& c, WeightLayout layout) {
  c.validate();
  const WeightShape shape{c.outputs, c.inputs, layout};
  std::vector<T> out(static_cast<std::size_t>(shape.size()), T(0));
  const int n = c.pattern.n, m = c.pattern.m;
  const int64_t groups = c.groups_per_row(), v_row = c.values_per_row();
  for (int64_t o = 0; o < c.outputs; ++o) {
    const T* vals = c.values.data() + o * v_row;
    for (int64_t g = 0; g < groups; ++g) {
      for (int j = 0; j < n; ++j) {
        const int64_t i = g * m + c.index(o, g, j);
        if (i < c.inputs) out[shape.index(o, i)] = vals[g * n + j];
      }
    }
  }
  return out;
}

}  // namespace

template <class T>
void CompressedNM<T>::validate() const {
  pattern.validate();
  if (outputs < 1 || inputs < 1) {
    detail::fail("CompressedNM: outputs={} inputs={}; expected both >= 1", outputs, inputs);
  }
  if (static_cast<int64_t>(values.size()) != outputs * values_per_row()) {
    detail::fail("CompressedNM: {} values; expected outputs*values_per_row = {}*{}", values.size(),
                 outputs, values_per_row());
  }
  if (static_cast<int64_t>(metadata.size()) != outputs * metadata_bytes_per_row()) {
    detail::fail("CompressedNM: {} metadata bytes; expected outputs*metadata_bytes_per_row = {}*{}",
                 metadata.size(), outputs, metadata_bytes_per_row());
  }
  const int64_t groups = groups_per_row(), used_bits = values_per_row() * index_bits();
  for (int64_t o = 0; o < outputs; ++o) {
    for (int64_t g = 0; g < groups; ++g) {
      int prev = -1;
      for (int j = 0; j < pattern.n; ++j) {
        const int idx = index(o, g, j);
        if (idx <= prev || idx >= pattern.m) {
          detail::fail(
              "CompressedNM: output {} group {} slot {} has index {}; expected "
              "increasing indices in [0, {})",
              o, g, j, idx, pattern.m);
        }
        if (g * pattern.m + idx >= inputs &&
            values[o * values_per_row() + g * pattern.n + j] != T(0)) {
          detail::fail(
              "CompressedNM: output {} group {} slot {} points to padded input {} "
              "(K={}) but holds a non-zero value",
              o, g, j, g * pattern.m + idx, inputs);
        }
        prev = idx;
      }
    }
    if (used_bits % 8 != 0) {
      const uint8_t last = metadata[(o + 1) * metadata_bytes_per_row() - 1];
      if (last >> (used_bits % 8)) {
        detail::fail("CompressedNM: output {} has non-zero unused metadata bits (byte 0x{:02x})", o,
                     last);
      }
    }
  }
}

template struct CompressedNM<float>;
template struct CompressedNM<int8_t>;

CompressedNM<float> compress(std::span<const float> pruned, const WeightShape& shape,
                             const PruneOptions& options) {
  return compress_pruned(pruned, shape, options);
}
CompressedNM<int8_t> compress(std::span<const int8_t> pruned, const WeightShape& shape,
                              const PruneOptions& options) {
  return compress_pruned(pruned, shape, options);
}
CompressedNM<float> compress(std::span<const float> weights, const SparseMask& mask) {
  return compress_masked(weights, mask);
}
CompressedNM<int8_t> compress(std::span<const int8_t> weights, const SparseMask& mask) {
  return compress_masked(weights, mask);
}
std::vector<float> decompress(const CompressedNM<float>& c, WeightLayout layout) {
  return decompress_any(c, layout);
}
std::vector<int8_t> decompress(const CompressedNM<int8_t>& c, WeightLayout layout) {
  return decompress_any(c, layout);
}

namespace {

// 2:4: the two kept indices of a keep nibble and their metadata nibble
// (i0 | i1 << 2). Nibbles without exactly two bits only come from NaN
// weights, whose result is discarded; they map to in-range indices.
struct Pair24 {
  uint8_t i0 = 0, i1 = 1, meta = 0x4;
};
constexpr std::array<Pair24, 16> make_pair_table() {
  std::array<Pair24, 16> t{};
  for (unsigned nib = 0; nib < 16; ++nib) {
    if (std::popcount(nib) != 2) continue;
    const auto i0 = static_cast<uint8_t>(std::countr_zero(nib));
    const auto i1 = static_cast<uint8_t>(3 - std::countl_zero(nib << 28));
    t[nib] = {i0, i1, static_cast<uint8_t>(i0 | i1 << 2)};
  }
  return t;
}
constexpr std::array<Pair24, 16> kPair24 = make_pair_table();
static_assert(kPair24[0b1010].i0 == 1 && kPair24[0b1010].i1 == 3 && kPair24[0b1010].meta == 0xD);

// The vectorised 2:4 path over the full groups of either layout.
void prune_and_compress_24(const float* w, const WeightShape& s, int64_t full_groups,
                           CompressedNM<float>& c, int& bad) {
  const int64_t v_row = c.values_per_row(), b_row = c.metadata_bytes_per_row();
  const int64_t outputs = s.outputs, k = s.inputs;
  if (s.layout == WeightLayout::out_in) {
    std::vector<uint8_t> nib(static_cast<std::size_t>(full_groups));
    for (int64_t o = 0; o < outputs; ++o) {
      const float* row = w + o * k;
      detail::keep_nibbles4<4>(row, row + 1, row + 2, row + 3, full_groups, 2, nib.data(), bad);
      float* vals = c.values.data() + o * v_row;
      uint8_t* meta = c.metadata.data() + o * b_row;
      for (int64_t g = 0; g < full_groups; ++g) {
        const Pair24 t = kPair24[nib[g]];
        vals[2 * g] = row[4 * g + t.i0];
        vals[2 * g + 1] = row[4 * g + t.i1];
        meta[g >> 1] = static_cast<uint8_t>(meta[g >> 1] | t.meta << ((g & 1) * 4));
      }
    }
  } else {
    // Blocks of outputs: within a block, each output's values and metadata
    // are written sequentially as g advances (a whole-width sweep per group
    // would touch one cache line per output per group).
    constexpr int64_t kBlock = 64;
    uint8_t nib[kBlock];
    for (int64_t o0 = 0; o0 < outputs; o0 += kBlock) {
      const int64_t ob = std::min(kBlock, outputs - o0);
      for (int64_t g = 0; g < full_groups; ++g) {
        const float* r[4];
        for (int j = 0; j < 4; ++j) r[j] = w + (4 * g + j) * outputs + o0;
        detail::keep_nibbles4<1>(r[0], r[1], r[2], r[3], ob, 2, nib, bad);
        const int shift = static_cast<int>(g & 1) * 4;
        for (int64_t o = 0; o < ob; ++o) {
          const Pair24 t = kPair24[nib[o]];
          float* vals = c.values.data() + (o0 + o) * v_row + 2 * g;
          vals[0] = r[t.i0][o];
          vals[1] = r[t.i1][o];
          uint8_t& m = c.metadata[static_cast<std::size_t>((o0 + o) * b_row + (g >> 1))];
          m = static_cast<uint8_t>(m | t.meta << shift);
        }
      }
    }
  }
}

}  // namespace

CompressedNM<float> prune_and_compress(std::span<const float> weights, const WeightShape& shape,
                                       const PruneOptions& options) {
  CompressedNM<float> c;
  prune_and_compress(weights, shape, options, c);
  return c;
}

void prune_and_compress(std::span<const float> weights, const WeightShape& shape,
                        const PruneOptions& options, CompressedNM<float>& c) {
  shape.validate(weights.size(), "prune_and_compress");
  const NMPattern p = options.pattern;
  const int64_t groups = detail::checked_group_count(shape, p, options.tail, "prune_and_compress");
  reset_compressed(c, shape, p);
  bool bad = false;
  int bad4 = 0;
  // 2:4 full groups: vectorised; everything else (other patterns, the
  // partial last group) goes through the generic writer.
  const int64_t fast_groups = p.n == 2 && p.m == 4 ? shape.inputs / 4 : 0;
  if (fast_groups > 0) prune_and_compress_24(weights.data(), shape, fast_groups, c, bad4);
  GroupWriter<float> write(c);
  detail::for_each_group(
      weights.data(), shape, p.m, groups,
      [&](int64_t o, int64_t g, const float* v, int r) {
        const unsigned bits = detail::keep_bits(v, r, p.n, bad);
        if (!bad) write(o, g, v, r, bits);  // NaN: more than N bits
      },
      fast_groups);
  if (bad || bad4) detail::check_finite_weights(weights, shape, "prune_and_compress");
}

}  // namespace sparq
