#include "dispatch/cpu_features.hpp"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace sparq::detail {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

// XGETBV via inline asm so this file needs no -mxsave flag.
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool bit(uint32_t value, int n) { return (value >> n) & 1u; }

// AMX needs three things beyond the CPUID bits: XCR0 bits 17 (XTILECFG) and
// 18 (XTILEDATA), and on Linux (5.16+) a per-process permission for the
// 8 KiB of tile data, requested once here (arch_prctl ARCH_REQ_XCOMP_PERM
// for XFEATURE_XTILEDATA). Without it the first tile instruction raises
// SIGILL, so a refusal (old kernel, seccomp sandbox) leaves AMX unused and
// says why.
void detect_amx(CpuFeatures& f, uint64_t xcr0) {
  if (!f.amx_tile && !f.amx_int8) return;  // "absent"
  if (!(f.amx_tile && f.amx_int8)) {
    f.amx_status = f.amx_tile ? "present without AMX-INT8" : "AMX-INT8 without AMX-TILE";
    return;
  }
  constexpr uint64_t kXtile = (uint64_t{1} << 17) | (uint64_t{1} << 18);
  if ((xcr0 & kXtile) != kXtile) {
    f.amx_status = "present, not enabled by the OS (XCR0)";
    return;
  }
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    const int err = errno;
    f.amx_status =
        std::string("present, permission refused (arch_prctl: ") + std::strerror(err) + ")";
    return;
  }
#endif
  f.amx = true;
  f.amx_status = "usable";
}

CpuFeatures detect() {
  CpuFeatures f;
  const uint32_t max_leaf = cpuid(0, 0).eax;
  const Regs l1 = cpuid(1, 0);
  // The OS must have enabled XSAVE and must save the registers: XMM|YMM for
  // AVX (XCR0 bits 1,2), plus opmask|ZMM_Hi256|Hi16_ZMM for AVX-512 (5,6,7).
  const bool osxsave = bit(l1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;
  const bool avx = bit(l1.ecx, 28) && os_avx;
  f.fma = avx && bit(l1.ecx, 12);
  f.f16c = avx && bit(l1.ecx, 29);
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = avx && bit(l7.ebx, 5);
    f.bmi2 = bit(l7.ebx, 8);
    f.avx512f = os_avx512 && bit(l7.ebx, 16);
    f.avx512dq = f.avx512f && bit(l7.ebx, 17);
    f.avx512bw = f.avx512f && bit(l7.ebx, 30);
    f.avx512vl = f.avx512f && bit(l7.ebx, 31);
    f.avx512vnni = f.avx512f && bit(l7.ecx, 11);
    f.avx512vbmi = f.avx512f && bit(l7.ecx, 1);
    if (l7.eax >= 1) f.avxvnni = avx && bit(cpuid(7, 1).eax, 4);
    f.amx_bf16 = bit(l7.edx, 22);
    f.amx_tile = bit(l7.edx, 24);
    f.amx_int8 = bit(l7.edx, 25);
    detect_amx(f, xcr0);
  }
  if (cpuid(0x80000000u, 0).eax >= 0x80000004u) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    std::string s(brand);
    const auto first = s.find_first_not_of(' ');
    const auto last = s.find_last_not_of(' ');
    if (first != std::string::npos) f.brand = s.substr(first, last - first + 1);
  }
  return f;
}

#elif defined(__aarch64__)

// Linux hwcap bits (asm/hwcap.h); spelled out so older headers still build.
constexpr unsigned long kHwcapAsimd = 1ul << 1;
constexpr unsigned long kHwcapAsimdDp = 1ul << 20;
constexpr unsigned long kHwcap2I8mm = 1ul << 13;

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned long hwcap = getauxval(AT_HWCAP);
  const unsigned long hwcap2 = getauxval(AT_HWCAP2);
  f.neon = (hwcap & kHwcapAsimd) != 0;
  f.dotprod = f.neon && (hwcap & kHwcapAsimdDp) != 0;
  f.i8mm = f.dotprod && (hwcap2 & kHwcap2I8mm) != 0;
  // qemu-user passes the host's /proc/cpuinfo through: an x86 host shows
  // "vendor_id" / "flags" lines that no ARM kernel prints.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("vendor_id", 0) == 0 || line.rfind("flags", 0) == 0) f.emulated = true;
    if (line.rfind("model name", 0) == 0 && f.brand == "unknown") {
      const auto colon = line.find(':');
      if (colon != std::string::npos) f.brand = line.substr(colon + 2);
    }
  }
  return f;
}

#else
CpuFeatures detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace sparq::detail
