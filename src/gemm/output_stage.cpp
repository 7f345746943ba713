// sparq::apply_stage: the GEMM's output stages on a caller's int32 block,
// through the very OutputStage object the drivers use (gemm_driver.hpp), so
// the bits cannot differ from gemm()'s.
#include <algorithm>
#include <limits>
#include <vector>

#include "gemm/gemm_driver.hpp"
#include "kernels/gemm_kernels.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/isa.hpp"

namespace sparq {
namespace detail {
namespace {

/// Validates the block and runs the stage over it in row chunks (the
/// kernels count rows and columns in int).
void run_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc, OutSpec& out,
               const char* who) {
  if (m < 0 || n < 0) fail("{}: m ({}) and n ({}) must be >= 0", who, m, n);
  if (n > std::numeric_limits<int>::max()) {
    fail("{}: n ({}) must be <= {}", who, n, std::numeric_limits<int>::max());
  }
  if (ld_acc == 0) ld_acc = n;
  if (ld_acc < n) fail("{}: ld_acc ({}) must be >= n ({}) or 0", who, ld_acc, n);
  if (m > 0 && n > 0 && acc == nullptr) fail("{}: acc is null with m = {}, n = {}", who, m, n);
  out.ldc = check_output(out.c, m, out.ldc, n, who);
  if (m == 0 || n == 0) return;
  OutputStage stage(out, gemm_kernels(active_isa()));
  constexpr int64_t kChunk = int64_t{1} << 16;
  for (int64_t i0 = 0; i0 < m; i0 += kChunk) {
    const int rows = static_cast<int>(std::min(kChunk, m - i0));
    stage.stage32(acc + i0 * ld_acc, ld_acc, i0, 0, rows, static_cast<int>(n), out.bias);
  }
}

template <class Out>
void requantize_block(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                      const RequantizeStage& s, Out* c, int64_t ld_out) {
  const char* who = "apply_stage (requantize)";
  OutSpec out;
  thread_local RequantArrays arrays;  // kept across calls: no allocation per call
  check_requantize<Out>(s, n, who, out, arrays);
  out.c = c;
  out.ldc = ld_out;
  run_stage(acc, m, n, ld_acc, out, who);
}

}  // namespace
}  // namespace detail

void apply_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                 const RequantizeStage& stage, uint8_t* out, int64_t ld_out) {
  detail::requantize_block(acc, m, n, ld_acc, stage, out, ld_out);
}

void apply_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                 const RequantizeStage& stage, int8_t* out, int64_t ld_out) {
  detail::requantize_block(acc, m, n, ld_acc, stage, out, ld_out);
}

void apply_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                 std::span<const float> weight_scales, const DequantizeStage& stage, float* out,
                 int64_t ld_out) {
  const char* who = "apply_stage (dequantize)";
  if (static_cast<int64_t>(weight_scales.size()) != n) {
    detail::fail("{}: weight_scales has {} values; expected n ({})", who, weight_scales.size(), n);
  }
  thread_local std::vector<float> row_scale;  // per-call scratch, kept
  detail::OutSpec spec;
  detail::check_dequantize(stage, std::max<int64_t>(m, 0), n, weight_scales, who, row_scale, spec);
  spec.c = out;
  spec.ldc = ld_out;
  detail::run_stage(acc, m, n, ld_acc, spec, who);
}

}  // namespace sparq
