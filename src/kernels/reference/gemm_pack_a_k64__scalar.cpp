// Packs activation rows for the AMX tile kernel: 64-byte k-groups (one A
// tile row), [kp / 64][mr][64], then, when 64 does not divide kp, a last
// group of kp % 64 bytes per row, [mr][kp % 64]. Exactly mr * kp bytes, and
// the part from any multiple of 64 onwards starts at k0 * mr, as for every
// other table (see gemm_kernels.hpp), so the driver's K chunks apply as they
// are. Plain C++: packing is M*K bytes against the GEMM's M*N*K work.
#include <algorithm>
#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_pack_a_k64__scalar(const GemmPackAParams& p) noexcept {
  constexpr int64_t kGroup = 64;
  const int mr = p.mr;
  for (int64_t k0 = 0; k0 < p.kp; k0 += kGroup) {
    const int64_t width = std::min(kGroup, p.kp - k0);
    const int64_t real = std::clamp<int64_t>(p.k - k0, 0, width);  // the rest is k padding
    uint8_t* group = p.dst + k0 * mr;
    for (int i = 0; i < mr; ++i) {
      uint8_t* dst = group + static_cast<int64_t>(i) * width;
      if (real > 0) {
        const uint8_t* src = p.a + static_cast<int64_t>(i) * p.lda + k0;
        if (p.shift == 0) {
          std::memcpy(dst, src, static_cast<std::size_t>(real));
        } else {
          for (int64_t r = 0; r < real; ++r) dst[r] = static_cast<uint8_t>(src[r] + p.shift);
        }
      }
      std::memset(dst + real, 0, static_cast<std::size_t>(width - real));
    }
  }
}

}  // namespace sparq::detail
