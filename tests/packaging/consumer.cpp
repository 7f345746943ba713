// The program both packaging consumers build: it uses the umbrella header,
// the qparams computation and the dispatched quantize kernels, so a missing
// header, a missing library object or a broken kernel table fails here.
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
  return qp.zero_point == 64 && q[0] == 0 && q[1] == 64 && q[2] == 255 && q[3] == 128 ? 0 : 1;
}
