// Packs activation rows for the AVX2 kernel as int16: the [kp/4][mr][4]
// tile of gemm_pack_a__scalar, each byte (plus the shift, mod 256) widened
// to an int16 in [0, 255]. Widening once here, M*K values, saves the kernel
// a vpmovzxbw per row and k-group (M*N*K/32 of them): AVX2 has one shuffle
// port, and the kernel is shuffle-bound.
#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_pack_a_s16__avx2(const GemmPackAParams& p) noexcept {
  const int64_t groups = p.kp / p.kr;
  const int kr = p.kr;
  const int mr = p.mr;
  for (int i = 0; i < mr; ++i) {
    const uint8_t* src = p.a + static_cast<int64_t>(i) * p.lda;
    for (int64_t g = 0; g < groups; ++g) {
      int16_t v[16];
      for (int r = 0; r < kr; ++r) {
        const int64_t kk = g * kr + r;
        v[r] =
            kk < p.k ? static_cast<int16_t>(static_cast<uint8_t>(src[kk] + p.shift)) : int16_t{0};
      }
      std::memcpy(p.dst + 2 * ((g * mr + i) * kr), v, sizeof(int16_t) * kr);
    }
  }
}

}  // namespace sparq::detail
