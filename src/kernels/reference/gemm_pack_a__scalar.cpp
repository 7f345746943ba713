// Packs activation rows into the [kp/KR][mr][KR] tile the microkernels read.
// Plain C++ (the compiler vectorises the byte copy); shared by every x86 ISA
// because packing is a tiny fraction (M*K bytes) of the GEMM's M*N*K work.
#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_pack_a__scalar(const GemmPackAParams& p) noexcept {
  const int64_t groups = p.kp / p.kr;
  const int64_t full_groups = p.k / p.kr;
  const int kr = p.kr;
  const int mr = p.mr;
  for (int i = 0; i < mr; ++i) {
    const uint8_t* src = p.a + static_cast<int64_t>(i) * p.lda;
    uint8_t* dst = p.dst + static_cast<int64_t>(i) * kr;
    const int64_t step = static_cast<int64_t>(mr) * kr;
    if (kr == 4) {
      for (int64_t g = 0; g < full_groups; ++g) {
        uint32_t v;
        std::memcpy(&v, src + g * 4, 4);
        // Adding 0x80 to each byte mod 256 is an xor of the top bit.
        if (p.shift == 128) v ^= 0x80808080u;
        std::memcpy(dst + g * step, &v, 4);
      }
    } else {
      for (int64_t g = 0; g < full_groups; ++g) {
        for (int r = 0; r < kr; ++r) {
          dst[g * step + r] = static_cast<uint8_t>(src[g * kr + r] + p.shift);
        }
      }
    }
    for (int64_t g = full_groups; g < groups; ++g) {
      for (int r = 0; r < kr; ++r) {
        const int64_t kk = g * kr + r;
        dst[g * step + r] = kk < p.k ? static_cast<uint8_t>(src[kk] + p.shift) : uint8_t{0};
      }
    }
  }
}

}  // namespace sparq::detail
