// The program both packaging consumers build: it uses the umbrella header,
// the qparams computation, the dispatched quantize kernels and the FP32 GEMM
// (an nn::Linear), so a missing header, a missing library object or a broken
// kernel table fails here.
//
// It also proves that sparq's private dependencies stay private (issue 13
// item 7): Eigen is not on this program's include path (sparq no longer uses
// it) and OpenMP's -fopenmp is not in its compile flags (sparq links OpenMP
// PRIVATE), so a public header that needed either would fail to compile here.
#if defined(_OPENMP)
#error "sparq::sparq passed -fopenmp to its consumer: OpenMP must be a private dependency"
#endif
#if __has_include(<Eigen/Core>)
#error "Eigen is on the consumer's include path: sparq::sparq must not export Eigen3::Eigen"
#endif

#include <sparq/sparq.hpp>

#include <cstdio>
#include <vector>

int main() {
  sparq::QuantSpec spec;
  spec.dtype = sparq::DType::u8;
  spec.scheme = sparq::Scheme::asymmetric;
  const sparq::QParams qp = sparq::compute_qparams(-1.0f, 3.0f, spec);  // 4/255, zp 64
  const std::vector<float> x = {-1.0f, 0.0f, 3.0f, 1.0f};
  const std::vector<int64_t> shape = {4};
  std::vector<uint8_t> q(x.size());
  sparq::quantize<uint8_t>(x, shape, spec, qp, q);
  std::printf("isa %s: scale %g zero point %d -> %d %d %d %d\n",
              std::string(sparq::isa_name(sparq::active_isa())).c_str(), qp.scale, qp.zero_point,
              q[0], q[1], q[2], q[3]);
  // FP32 layer on sparq's own GEMM: y = x W^T + b, small exact integers.
  sparq::nn::Linear linear(3, 2);
  linear.weight.data = {1, 2, 3, 4, 5, 6};
  linear.bias.data = {10, 20};
  const sparq::nn::Tensor y = linear.forward(sparq::nn::Tensor({1, 3}, {1, 1, 2}));
  std::printf("linear: %g %g (%s)\n", y.data[0], y.data[1],
              sparq::sgemm_kernel_name(sparq::active_isa()));
  const bool linear_ok = y.data[0] == 19.0f && y.data[1] == 41.0f;
  return qp.zero_point == 64 && q[0] == 0 && q[1] == 64 && q[2] == 255 && q[3] == 128 && linear_ok
             ? 0
             : 1;
}
