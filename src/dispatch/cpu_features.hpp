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
  bool avx512vbmi = false;  // vpermb, vpmultishiftqb (Ice Lake, Zen 4 and later)
  // AMX: the CPUID bits as reported (amx_bf16 for `sparq info` only), and
  // `amx`, true only when AMX-TILE and AMX-INT8 are present, the OS enables
  // tile state in XCR0 and (Linux) this process was granted tile data
  // permission. amx_status says which of these failed, in words.
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool amx = false;
  std::string amx_status = "absent";
  // ARM (all false elsewhere).
  bool neon = false, dotprod = false, i8mm = false;
  std::string brand = "unknown";
  bool emulated = false;
};

const CpuFeatures& cpu_features();

}  // namespace sparq::detail
