// Raw CPU feature bits, read once. Internal to src/.
#pragma once

#include <string>

namespace sparq::detail {

struct CpuFeatures {
  // x86 (all false elsewhere). The AVX/AVX-512 bits are already combined with
  // XCR0: a bit is true only if the OS also saves the registers it needs.
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avxvnni = false;
  // ARM (all false elsewhere).
  bool neon = false, dotprod = false, i8mm = false;
  std::string brand = "unknown";
  bool emulated = false;
};

const CpuFeatures& cpu_features();

}  // namespace sparq::detail
