// The AVX2 side of the FP32 peer (fp32_peer_eigen.cpp): plain functions over
// an opaque handle, so that nothing inline crosses between it and the
// baseline code. Use Fp32Gemm (fp32_peer.hpp), which checks the CPU first;
// on x86 these functions are AVX2 + FMA code.
#pragma once

#include <cstdint>

namespace sparq::tool::gemm_bench::fp32_peer_detail {

struct EigenGemmState;
/// Allocates random A (m x k), B (k x n) and C (m x n), sets Eigen's threads.
EigenGemmState* eigen_gemm_create(int64_t m, int64_t n, int64_t k, int threads);
/// C = A * B.
void eigen_gemm_run(EigenGemmState* state);
void eigen_gemm_destroy(EigenGemmState* state) noexcept;

}  // namespace sparq::tool::gemm_bench::fp32_peer_detail
