// sparq bench gemm: GOPS of sparq's INT8 GEMM next to the host's limits and
// its peers, per shape.
//
//   sparq bench gemm [--m 1,4,16,64,256] [--n 4096] [--k 4096] [--threads N]
//                    [--repeat R] [--json] [--isa NAME] [--cpu-time]
//
// For the active ISA (or --isa) it first probes the core's int8 peak
// (independent vpdpbusd zmm for AVX-512 VNNI) and the read bandwidth for a
// buffer the size of the packed weights; then, per shape, it times (median
// of R runs, wall clock; --cpu-time uses the process CPU clock instead, for
// one thread on a machine shared with other jobs):
//   gops          gemm(): u8 activations x pre-packed weights -> int32
//   s8_gops       the same with s8 activations (shifted while packing A)
//   dynamic_gops  linear_dynamic(): fp32 in, per-tensor quantization, fp32 out
//   onednn_gops   oneDNN matmul u8 x s8 -> s32 with weights reordered once to
//                 format_tag::any (and onednn_s8_gops with s8 activations)
//   fp32_gops     Eigen float GEMM of the same shape (built for AVX2 + FMA on
//                 x86, see fp32_peer.hpp; "-" / null on a CPU without them)
//   sparq_fp32_gops  sparq's own FP32 GEMM (sparq::sgemm) on the same shape,
//                 timed interleaved with the Eigen peer; fp32_peak_gops: the
//                 FP32 FMA probe for its ISA x threads
// and reports % of peak and bound_gops = min(peak, bandwidth * ops / bytes),
// bytes = packed weights + activations + int32 output. Default shapes:
// M in {1, 4, 16, 64, 256} with N = K = 4096, plus M = N = K = 1024.
// The per-shape record (ShapeRecord in bench_gemm.hpp) and its JSON line are
// shared with future modes (e.g. --sparse adds sparse_gops).
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_sparse.hpp"
#include "command.hpp"
#include "commands/bench_args.hpp"
#include "commands/bench_gemm.hpp"
#include "commands/bench_model.hpp"
#include "kernels/gemm_kernels.hpp"
#include "sparq/error.hpp"
#include "util/checked_size.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/isa.hpp"

namespace {

using namespace sparq::tool::gemm_bench;
using namespace sparq::tool::bench_args;

struct Options {
  std::vector<int64_t> m = {1, 4, 16, 64, 256};
  std::vector<std::pair<int64_t, int64_t>> nk;  // empty: the default shape list
  int64_t n = 4096;
  int64_t k = 4096;
  bool custom_nk = false;
  int threads = 1;
  int repeat = 5;
  bool json = false;
  bool sparse = false;  // --sparse: also time the 2:4 sparse GEMM per shape
  std::optional<sparq::Isa> isa;
};

// Sizes: 2^31 per dimension, then the buffers of the largest shape must fit
// in the memory available now (check_memory). Threads and repeats:
// bench_args.hpp, shared with `sparq bench model`.
constexpr int64_t kMaxSize = int64_t{1} << 31;

std::vector<int64_t> parse_list(const std::string& flag, const std::string& text,
                                int64_t max_value) {
  return parse_positive_list("bench gemm", flag, text, max_value);
}

/// Refuses shapes whose buffers cannot fit before allocating any. Per shape
/// the bench holds u8, s8 and f32 activations and their oneDNN and Eigen
/// copies (12 bytes per m x k element), int8, packed, sparse, oneDNN and f32
/// weights (10 per n x k) and five outputs (20 per m x n).
void check_memory(const Options& o) {
  using sparq::detail::checked_add;
  using sparq::detail::checked_mul;
  using sparq::detail::kMaxBytes;
  const auto m = static_cast<uint64_t>(*std::max_element(o.m.begin(), o.m.end()));
  const auto n = static_cast<uint64_t>(o.custom_nk ? o.n : o.sparse ? 8192 : 4096);
  const auto k = static_cast<uint64_t>(o.custom_nk ? o.k : o.sparse ? 8192 : 4096);
  const char* what = "bench gemm: buffer bytes";
  const uint64_t need = checked_add(
      checked_add(checked_mul(12, checked_mul(m, k, what, kMaxBytes), what, kMaxBytes),
                  checked_mul(10, checked_mul(n, k, what, kMaxBytes), what, kMaxBytes), what,
                  kMaxBytes),
      checked_mul(20, checked_mul(m, n, what, kMaxBytes), what, kMaxBytes), what, kMaxBytes);
  const uint64_t available = available_memory();
  if (need > available) {
    sparq::detail::fail(
        "bench gemm: m {} x n {} x k {} needs about {} MiB of buffers but {} MiB of memory are "
        "available; use smaller --m/--n/--k",
        m, n, k, need >> 20, available >> 20);
  }
}

Options parse(const sparq::tool::Args& args) {
  Options o;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) sparq::detail::fail("bench gemm: {} needs a value", a);
      return args[++i];
    };
    if (a == "--m") {
      o.m = parse_list(a, value(), kMaxSize);
    } else if (a == "--n") {
      o.n = parse_list(a, value(), kMaxSize).at(0);
      o.custom_nk = true;
    } else if (a == "--k") {
      o.k = parse_list(a, value(), kMaxSize).at(0);
      o.custom_nk = true;
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_list(a, value(), kMaxThreads).at(0));
    } else if (a == "--repeat") {
      o.repeat = static_cast<int>(parse_list(a, value(), kMaxRepeat).at(0));
    } else if (a == "--cpu-time") {
      use_cpu_clock() = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--sparse") {
      o.sparse = true;
    } else if (a == "--isa") {
      o.isa = sparq::parse_isa(value());
    } else {
      sparq::detail::fail("bench gemm: unknown option '{}' (see sparq bench --help)", a);
    }
  }
  check_memory(o);
  return o;
}

template <class T>
std::vector<T> random_vector(std::size_t n, std::mt19937& rng) {
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(rng());
  return v;
}

// Measures one shape with weights `w` (n x k, already packed as `packed`).
ShapeRecord measure(const Options& o, int64_t m, int64_t n, int64_t k,
                    const sparq::PackedWeights& packed, double pack_ms, std::optional<double> peak1,
                    double bandwidth) {
  std::mt19937 rng(7);
  ShapeRecord r;
  r.m = m;
  r.n = n;
  r.k = k;
  r.threads = o.threads;
  r.isa = std::string(sparq::isa_name(sparq::active_isa()));
  r.kernel = sparq::detail::gemm_kernels_for(sparq::active_isa(), m).ukernel_name;
  r.pack_ms = pack_ms;
  const auto a = random_vector<uint8_t>(static_cast<std::size_t>(m * k), rng);
  const auto as = random_vector<int8_t>(static_cast<std::size_t>(m * k), rng);
  std::vector<float> x(static_cast<std::size_t>(m * k));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = normal(rng);
  std::vector<int32_t> c(static_cast<std::size_t>(m * n));
  std::vector<float> y(static_cast<std::size_t>(m * n));
  const sparq::GemmOptions go{o.threads};
  // Every contender is timed in each repetition (interleaved), so load from
  // other jobs affects them alike.
  std::vector<std::function<void()>> fns;
  std::vector<std::optional<double>*> slots;
  fns.emplace_back([&] {
    sparq::gemm(sparq::ActivationsU8{a.data(), m, k, 0, 3}, packed, sparq::Int32Output{}, c.data(),
                0, go);
  });
  slots.push_back(&r.gops);
  if (o.threads > 1) {  // the thread speedup, from the same interleaved repetitions
    fns.emplace_back([&] {
      sparq::gemm(sparq::ActivationsU8{a.data(), m, k, 0, 3}, packed, sparq::Int32Output{},
                  c.data(), 0, sparq::GemmOptions{1});
    });
    slots.push_back(&r.gops_1thread);
  }
  fns.emplace_back([&] {
    sparq::gemm(sparq::ActivationsS8{as.data(), m, k, 0, -3}, packed, sparq::Int32Output{},
                c.data(), 0, go);
  });
  slots.push_back(&r.s8_gops);
  fns.emplace_back([&] {
    sparq::linear_dynamic(x.data(), m, 0, packed, {}, y.data(), 0,
                          sparq::DynamicOptions{false, false, o.threads});
  });
  slots.push_back(&r.dynamic_gops);
#if defined(SPARQ_HAVE_ONEDNN)
  OneDnnGemm dnn(m, n, k, false, o.threads);
  OneDnnGemm dnn_s8(m, n, k, true, o.threads);
  fns.emplace_back([&] { dnn.run(); });
  slots.push_back(&r.onednn_gops);
  fns.emplace_back([&] { dnn_s8.run(); });
  slots.push_back(&r.onednn_s8_gops);
#endif
  const std::vector<double> secs = median_seconds_interleaved(fns, o.repeat);
  for (std::size_t i = 0; i < secs.size(); ++i) *slots[i] = gops(m, n, k, secs[i]);
  if (peak1) r.peak_gops = *peak1 * o.threads;
  r.bandwidth_gbs = bandwidth / 1e9;
  r.bound_gops = bound_gops(r, packed.packed_bytes(), bandwidth);
  // sparq's own FP32 GEMM and the Eigen peer, interleaved, and the FP32 peak.
  measure_fp32(r, o.threads, o.repeat);
  return r;
}

std::string cell(const std::optional<double>& v, const char* fmt_spec = "{:8.1f}") {
  return v ? fmt::format(fmt::runtime(fmt_spec), *v) : fmt::format("{:>8}", "-");
}

// scale * a / b formatted, or "-" when either is missing.
std::string quotient(const std::optional<double>& a, const std::optional<double>& b, double scale,
                     const char* fmt_spec) {
  if (!a.has_value() || !b.has_value() || *b == 0.0) return fmt::format("{:>6}", "-");
  return fmt::format(fmt::runtime(fmt_spec), scale * a.value() / b.value());
}

int run_gemm_bench(const Options& o) {
  std::unique_ptr<sparq::ScopedIsa> forced;
  if (o.isa) forced = std::make_unique<sparq::ScopedIsa>(*o.isa);
  const sparq::Isa isa = sparq::active_isa();
  std::vector<std::pair<int64_t, int64_t>> nks;
  std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes;
  if (o.custom_nk) {
    for (int64_t m : o.m) shapes.emplace_back(m, o.n, o.k);
  } else if (o.sparse) {
    for (int64_t nk : {4096, 8192}) {
      for (int64_t m : o.m) shapes.emplace_back(m, nk, nk);
    }
  } else {
    for (int64_t m : o.m) shapes.emplace_back(m, 4096, 4096);
    shapes.emplace_back(1024, 1024, 1024);
  }
  const std::optional<double> peak1 = int8_peak_gops(isa);
  if (sparq::cpu_info().emulated) {
    fmt::print(stderr, "sparq bench: running under emulation (qemu): timings are meaningless\n");
  }
  if (!o.json) {
    fmt::print("sparq bench gemm: isa {} ({}), {} thread(s), median of {} runs\n",
               sparq::isa_name(isa), sparq::detail::gemm_kernels(isa).ukernel_name, o.threads,
               o.repeat);
    fmt::print("int8 peak (probe, 1 core): {}\n",
               peak1 ? fmt::format("{:.1f} GOPS", *peak1) : std::string("no probe for this ISA"));
#if !defined(SPARQ_HAVE_ONEDNN)
    fmt::print("oneDNN: not built in (install libdnnl-dev and reconfigure)\n");
#endif
    if (const auto why = Fp32Gemm::unavailable()) fmt::print("fp32 (Eigen): not run, {}\n", *why);
    const auto zmm = fp32_peak_gops(512), ymm = fp32_peak_gops(256);
    fmt::print("fp32: sparq {} (sq-fp32), Eigen AVX2+FMA (fp32); FMA peak 1 core: zmm {}, ymm {}\n",
               sparq::sgemm_kernel_name(isa), zmm ? fmt::format("{:.1f}", *zmm) : "-",
               ymm ? fmt::format("{:.1f}", *ymm) : "-");
    fmt::print(
        "{:>6} {:>6} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} "
        "{:>7}{}\n",
        "M", "N", "K", "GOPS", "%peak", "bound", "s8", "dynamic", "oneDNN", "oDNN-s8", "fp32",
        "sq-fp32", "GB/s", "x oDNN", "x 1thr", o.sparse ? "   sparse  path    x dense" : "");
  }
  std::map<std::pair<int64_t, int64_t>, std::pair<sparq::PackedWeights, double>> packs;
  std::map<std::size_t, double> bandwidths;
  std::map<std::pair<int64_t, int64_t>, sparq::tool::SparseBenchWeights> sparse_packs;
  std::mt19937 rng(11);
  for (const auto& [m, n, k] : shapes) {
    auto it = packs.find({n, k});
    if (it == packs.end()) {
      const auto w = random_vector<int8_t>(static_cast<std::size_t>(n * k), rng);
      const auto t0 = Clock::now();
      sparq::PackedWeights p = sparq::pack_weights(w.data(), n, k, sparq::WeightLayout::out_in);
      const double ms = seconds_since(t0) * 1e3;
      it = packs.emplace(std::pair{n, k}, std::pair{p, ms}).first;
    }
    const sparq::PackedWeights& packed = it->second.first;
    auto bw = bandwidths.find(packed.packed_bytes());
    if (bw == bandwidths.end()) {
      bw = bandwidths
               .emplace(packed.packed_bytes(), read_bandwidth(packed.packed_bytes(), o.threads))
               .first;
    }
    ShapeRecord r = measure(o, m, n, k, packed, it->second.second, peak1, bw->second);
    if (o.sparse) {
      auto sp = sparse_packs.find({n, k});
      if (sp == sparse_packs.end()) {
        sp = sparse_packs.emplace(std::pair{n, k}, sparq::tool::make_sparse_bench_weights(n, k))
                 .first;
      }
      sparq::tool::SparseBenchOptions so;
      so.repeat = o.repeat;
      so.cpu_clock = use_cpu_clock();
      so.measure_dense = false;  // the dense figure is r.gops, measured above
      const auto s = sparq::tool::bench_sparse_gemm(sp->second, m, o.threads, so);
      r.sparse_gops = s.sparse_gops;
      r.sparse_path = s.sparse_path;
    }
    if (o.json) {
      fmt::print("{}\n", to_json(r));
    } else {
      fmt::print("{:>6} {:>6} {:>6} {} {} {} {} {} {} {} {} {} {} {} {}{}\n", m, n, k, cell(r.gops),
                 quotient(r.gops, r.peak_gops, 100.0, "{:6.1f}"), cell(r.bound_gops),
                 cell(r.s8_gops), cell(r.dynamic_gops), cell(r.onednn_gops), cell(r.onednn_s8_gops),
                 cell(r.fp32_gops), cell(r.sparq_fp32_gops), cell(r.bandwidth_gbs),
                 quotient(r.gops, r.onednn_gops, 1.0, "{:7.2f}"),
                 quotient(r.gops, r.gops_1thread, 1.0, "{:7.2f}"),
                 o.sparse
                     ? fmt::format(" {} {:>7} {}", cell(r.sparse_gops), r.sparse_path.value_or("-"),
                                   quotient(r.sparse_gops, r.gops, 1.0, "{:8.2f}"))
                     : std::string());
    }
    std::fflush(stdout);
  }
  return 0;
}

int run_bench(const sparq::tool::Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    fmt::print(
        "usage: sparq bench gemm [--m 1,4,16,64,256] [--n 4096] [--k 4096] [--threads N]\n"
        "                        [--repeat R] [--json] [--isa NAME] [--cpu-time] [--sparse]\n"
        "  Times sparq's INT8 GEMM (u8 and s8 activations, linear_dynamic) per shape next to\n"
        "  the int8 peak and read-bandwidth probes, oneDNN (pre-packed) and an FP32 GEMM.\n"
        "  Default shapes: M in {{1,4,16,64,256}} x N = K = 4096, plus 1024^3.\n"
        "  --sparse: also the 2:4 sparse GEMM (sparse_gops, sparse_path) on the same shapes;\n"
        "  default shapes then M in {{1,4,16,64,256}} x N = K in {{4096, 8192}}.\n"
        "       sparq bench model NAME [options]   (whole models; sparq bench model --help)\n");
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "gemm") return run_gemm_bench(parse(args));
  if (args[0] == "model") return run_model_bench(sparq::tool::Args(args.begin() + 1, args.end()));
  sparq::detail::fail("bench: unknown benchmark '{}'; expected 'gemm' or 'model'", args[0]);
}

const sparq::tool::Registration reg{"bench", "benchmarks: sparq bench gemm|model [options]",
                                    run_bench};

}  // namespace
