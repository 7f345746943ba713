// Eigen's float GEMM for the FP32 peer (see fp32_peer.hpp for why this file
// is compiled with -mavx2 -mfma on x86 and must stay the only Eigen user of
// the programs that link it). Keep it to Eigen and plain types: anything
// inline it shares with other files (std::vector, std::string, ...) would be
// instantiated here with AVX2 code too.
#if (defined(__x86_64__) || defined(_M_X64)) && !(defined(__AVX2__) && defined(__FMA__))
#error "fp32_peer_eigen.cpp must be compiled with -mavx2 -mfma (tools/ and bench/CMakeLists.txt)"
#endif

#include "fp32_peer_eigen.hpp"

// Every Eigen name in this file, and so every symbol it instantiates, lives
// in a namespace of its own: the `sparq` program also links the library's
// src/nn/layers.cpp, which instantiates the same Eigen templates (and the
// same non-template inline helpers, e.g. queryCacheSizes) at the baseline
// flags, and the linker would otherwise keep one copy of each for both.
// Must come before the first Eigen header; Eigen's own headers only spell
// their namespace as the identifier `Eigen`, so the macro renames it whole.
#define Eigen sparq_fp32_peer_Eigen
#include <Eigen/Core>

namespace sparq::tool::gemm_bench::fp32_peer_detail {

struct EigenGemmState {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Mat a, b, c;
};

EigenGemmState* eigen_gemm_create(int64_t m, int64_t n, int64_t k, int threads) {
  auto* state = new EigenGemmState{EigenGemmState::Mat(m, k), EigenGemmState::Mat(k, n),
                                   EigenGemmState::Mat(m, n)};
  state->a.setRandom();
  state->b.setRandom();
  Eigen::setNbThreads(threads);
  return state;
}

void eigen_gemm_run(EigenGemmState* state) { state->c.noalias() = state->a * state->b; }

void eigen_gemm_destroy(EigenGemmState* state) noexcept { delete state; }

}  // namespace sparq::tool::gemm_bench::fp32_peer_detail
