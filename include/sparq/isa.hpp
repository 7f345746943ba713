// Instruction-set selection: which kernels sparq runs on this CPU.
//
// sparq detects the CPU once (cpuid + XCR0 on x86, getauxval on ARM), picks
// the best ISA it was built for and the CPU can run, and caches the choice.
// Every operation keeps a table of kernels per ISA and looks up the active
// ISA once per call, above its inner loops.
//
// Users can see the choice (active_isa()), force a lower one for a whole
// process with the environment variable SPARQ_ISA=<name> (read once, at the
// first call that dispatches), or for a scope with ScopedIsa (tests use it to
// run every kernel on every ISA the host supports). Forcing an ISA that the
// build does not contain or the CPU cannot run throws sparq::Error.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sparq {

/// The instruction sets sparq has kernels for, by family. `scalar` is the
/// portable reference and is always available.
enum class Isa {
  scalar,
  avx2,        // x86: AVX2 + FMA; u8*s8 products widened to int32 without int16 saturation
  avxvnni,     // x86: AVX-VNNI (VEX-encoded vpdpbusd on ymm)
  avx512vnni,  // x86: AVX-512 F/BW/VL/DQ + VNNI (vpdpbusd on zmm)
  neon,        // ARMv8 Advanced SIMD
  neondot,     // ARMv8.2 dot product (SDOT/UDOT)
  neoni8mm,    // ARMv8.6 int8 matrix multiply (SMMLA/UMMLA/USMMLA)
  // x86: avx512vnni plus AMX-TILE/AMX-INT8 (tdpbusd on 16x64-byte tiles),
  // with the OS's permission to use tile data. Appended rather than placed
  // after avx512vnni so no existing enumerator changes value; the order that
  // ranks ISAs (best_isa) is supported_isas()'s, where it follows avx512vnni.
  amx,
};

/// Lower-case name as accepted by SPARQ_ISA ("scalar", "avx2", ...).
std::string_view isa_name(Isa isa) noexcept;

/// Parses a name as accepted by SPARQ_ISA; throws sparq::Error naming the
/// valid names when `name` is not one of them.
Isa parse_isa(std::string_view name);

/// The ISAs this build contains and this CPU can run, lowest first; always
/// starts with Isa::scalar.
const std::vector<Isa>& supported_isas();

/// True when `isa` is in supported_isas().
bool isa_supported(Isa isa);

/// The best supported ISA (ignores SPARQ_ISA and ScopedIsa).
Isa best_isa();

/// The ISA the kernels run on now: ScopedIsa's if one is active, else
/// SPARQ_ISA's if set, else best_isa(). Throws sparq::Error at the first call
/// if SPARQ_ISA names an unknown or unsupported ISA.
Isa active_isa();

/// Forces `isa` for the whole process until the returned guard dies; throws
/// sparq::Error if `isa` is not supported. Not meant for concurrent use from
/// several threads that want different ISAs (the override is global).
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa);
  ~ScopedIsa();
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  int previous_;
};

/// What the CPU reports, for `sparq info` and diagnostics.
struct CpuInfo {
  std::string brand;                  // e.g. "AMD EPYC 9R14", or "unknown"
  std::string architecture;           // "x86_64", "aarch64", ...
  std::vector<std::string> features;  // e.g. {"avx2", "fma", "avx512f", ...}
  bool emulated = false;              // true when running under qemu-user (timings mean nothing)
  /// AMX state in words, since AMX needs the CPU, the OS (XCR0) and, on
  /// Linux, a per-process permission: "absent", "usable", "present, not
  /// enabled by the OS (XCR0)", "present, permission refused (<reason>)".
  std::string amx = "absent";
};
const CpuInfo& cpu_info();

}  // namespace sparq
