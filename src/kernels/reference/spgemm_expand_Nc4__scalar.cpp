// Scalar expansion of a sparse panel into the dense [k/4][nr][4] layout.
#include <cstring>

#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {

void spgemm_expand_Nc4__scalar(const SpgemmExpandParams& p) noexcept {
  const int nr = p.panel_nr;
  const int8_t* w = p.w;
  int8_t* d = p.dst;
  for (int64_t s = 0; s < p.steps; ++s) {
    // Two dense k-groups per step: d[0 .. 4nr) for group 2s, then 2s + 1.
    std::memset(d, 0, static_cast<std::size_t>(nr) * 8);
    for (int j = 0; j < nr; ++j) {
      const int8_t* v = w + j * 4;
      const unsigned m = static_cast<uint8_t>(w[nr * 4 + j]);
      // Positions of a group are distinct (increasing), so the two stores of
      // a group never collide.
      d[j * 4 + (m & 3u)] = v[0];
      d[j * 4 + ((m >> 2) & 3u)] = v[1];
      d[nr * 4 + j * 4 + ((m >> 4) & 3u)] = v[2];
      d[nr * 4 + j * 4 + (m >> 6)] = v[3];
    }
    w += nr * 5;
    d += nr * 8;
  }
}

}  // namespace sparq::detail
