#include "sparq/isa.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <string>

#include "dispatch/cpu_features.hpp"
#include "dispatch/kernel_list.hpp"
#include "sparq/error.hpp"

namespace sparq {
namespace {

// Every ISA, lowest first per architecture: best_isa() is the last supported
// one, so amx ranks above avx512vnni although its enumerator was appended.
// `built`: whether this build compiled the ISA's kernel folder
// (SPARQ_IF_<isa>, kernel_list.hpp; cmake/SparqIsa.cmake). One row per ISA
// gives its name, its rank and its build flag, so they cannot drift apart.
struct IsaRow {
  Isa isa;
  std::string_view name;
  bool built;
};
#define SPARQ_ISA_ROW(isa) \
  IsaRow { Isa::isa, #isa, false SPARQ_IF_##isa(|| true) }
constexpr IsaRow kIsaRows[] = {
    SPARQ_ISA_ROW(scalar), SPARQ_ISA_ROW(avx2), SPARQ_ISA_ROW(avxvnni), SPARQ_ISA_ROW(avx512vnni),
    SPARQ_ISA_ROW(amx),    SPARQ_ISA_ROW(neon), SPARQ_ISA_ROW(neondot), SPARQ_ISA_ROW(neoni8mm),
};
#undef SPARQ_ISA_ROW

const IsaRow* find_row(Isa isa) {
  for (const IsaRow& row : kIsaRows) {
    if (row.isa == isa) return &row;
  }
  return nullptr;
}

bool cpu_runs(Isa isa) {
  const auto& f = detail::cpu_features();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return f.avx2 && f.fma && f.f16c && f.bmi2;
    case Isa::avxvnni:
      return f.avx2 && f.fma && f.f16c && f.bmi2 && f.avxvnni;
    case Isa::avx512vnni:
      return f.avx2 && f.fma && f.f16c && f.bmi2 && f.avx512f && f.avx512bw && f.avx512vl &&
             f.avx512dq && f.avx512vnni;
    case Isa::amx:
      // The AMX table runs the AVX-512 VNNI kernels for small M and its
      // output stages: it needs everything avx512vnni needs.
      return cpu_runs(Isa::avx512vnni) && f.amx;
    case Isa::neon:
      return f.neon;
    case Isa::neondot:
      return f.dotprod;
    case Isa::neoni8mm:
      return f.i8mm;
  }
  return false;
}

std::string supported_names() {
  std::string names;
  for (Isa isa : supported_isas()) {
    if (!names.empty()) names += ", ";
    names += isa_name(isa);
  }
  return names;
}

constexpr int kNoOverride = -1;
std::atomic<int> g_scoped_override{kNoOverride};

Isa checked(Isa isa, std::string_view who) {
  if (!isa_supported(isa)) {
    detail::fail("{}: ISA '{}' cannot run here (this build and CPU support: {})", who,
                 isa_name(isa), supported_names());
  }
  return isa;
}

Isa env_or_best() {
  const char* env = std::getenv("SPARQ_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  return checked(parse_isa(env), fmt::format("SPARQ_ISA={}", env));
}

}  // namespace

std::string_view isa_name(Isa isa) noexcept {
  const IsaRow* row = find_row(isa);
  return row != nullptr ? row->name : "unknown";
}

Isa parse_isa(std::string_view name) {
  std::string known;
  for (const IsaRow& row : kIsaRows) {
    if (row.name == name) return row.isa;
    known += known.empty() ? "" : ", ";
    known += row.name;
  }
  detail::fail("ISA name '{}' is not known; expected one of: {}", name, known);
}

const std::vector<Isa>& supported_isas() {
  static const std::vector<Isa> isas = [] {
    std::vector<Isa> out;
    for (const IsaRow& row : kIsaRows) {
      if (row.built && cpu_runs(row.isa)) out.push_back(row.isa);
    }
    return out;
  }();
  return isas;
}

bool isa_supported(Isa isa) {
  for (Isa s : supported_isas()) {
    if (s == isa) return true;
  }
  return false;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() {
  const int scoped = g_scoped_override.load(std::memory_order_relaxed);
  if (scoped != kNoOverride) return static_cast<Isa>(scoped);
  // Read SPARQ_ISA once; a bad value throws on every call (not only the
  // first), so no caller can silently run on an ISA the user did not want.
  static const Isa from_env = env_or_best();
  return from_env;
}

ScopedIsa::ScopedIsa(Isa isa)
    : previous_(g_scoped_override.exchange(static_cast<int>(checked(isa, "ScopedIsa")))) {}

ScopedIsa::~ScopedIsa() { g_scoped_override.store(previous_); }

const CpuInfo& cpu_info() {
  static const CpuInfo info = [] {
    const auto& f = detail::cpu_features();
    CpuInfo out;
    out.brand = f.brand;
#if defined(__x86_64__)
    out.architecture = "x86_64";
#elif defined(__aarch64__)
    out.architecture = "aarch64";
#else
    out.architecture = "other";
#endif
    const std::pair<bool, const char*> flags[] = {{f.avx2, "avx2"},
                                                  {f.fma, "fma"},
                                                  {f.f16c, "f16c"},
                                                  {f.bmi2, "bmi2"},
                                                  {f.avx512f, "avx512f"},
                                                  {f.avx512bw, "avx512bw"},
                                                  {f.avx512vl, "avx512vl"},
                                                  {f.avx512dq, "avx512dq"},
                                                  {f.avx512vnni, "avx512vnni"},
                                                  {f.avxvnni, "avxvnni"},
                                                  {f.avx512vbmi, "avx512vbmi"},
                                                  {f.amx_tile, "amx-tile"},
                                                  {f.amx_int8, "amx-int8"},
                                                  {f.amx_bf16, "amx-bf16"},
                                                  {f.neon, "neon"},
                                                  {f.dotprod, "dotprod"},
                                                  {f.i8mm, "i8mm"}};
    for (const auto& [present, name] : flags) {
      if (present) out.features.emplace_back(name);
    }
    out.emulated = f.emulated;
    out.amx = f.amx_status;
    return out;
  }();
  return info;
}

}  // namespace sparq
