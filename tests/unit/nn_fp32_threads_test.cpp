// sparq::set_num_threads governs the FP32 layers (issue 13 item 8): they run
// on sparq's FP32 GEMM, whose parallel region records the team it actually
// got (detail::sgemm_last_threads). Before, Eigen's OpenMP regions ignored
// the setting and a user who asked for one thread got every core.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/sgemm_kernels.hpp"
#include "nn/nn_internal.hpp"
#include "sparq/nn/layers.hpp"
#include "sparq/threads.hpp"

namespace sparq {
namespace {

// Restores the process-wide setting whatever the test does.
class ThreadSetting {
 public:
  ~ThreadSetting() { set_num_threads(0); }
};

// Shapes large enough that the GEMM would use two threads if allowed (well
// above the ~4 M multiply-adds per thread the driver asks for).
nn::Linear big_linear() {
  nn::Linear l(512, 512);
  for (std::size_t i = 0; i < l.weight.data.size(); ++i) l.weight.data[i] = 0.001f * (i % 7);
  return l;
}

TEST(NnFp32Threads, LinearObeysSetNumThreads) {
  ThreadSetting restore;
  const nn::Linear l = big_linear();
  const nn::Tensor x({64, 512}, std::vector<float>(64 * 512, 0.5f));
  set_num_threads(1);
  const nn::Tensor y1 = l.forward(x);
  EXPECT_EQ(detail::sgemm_last_threads(), 1);
  set_num_threads(2);
  const nn::Tensor y2 = l.forward(x);
  // Two threads asked for: two used when the library has threads (OpenMP
  // grants a team of the size asked even on a one-core machine).
  EXPECT_EQ(detail::sgemm_last_threads(), detail::sgemm_has_threads() ? 2 : 1);
  EXPECT_EQ(y1.data, y2.data);  // and the thread count never changes the bits
}

TEST(NnFp32Threads, Conv2dObeysSetNumThreads) {
  ThreadSetting restore;
  // A convolution splits its output rows into blocks, one team member per
  // block (docs/design.md rule 9), each block a one-thread sgemm.
  nn::Conv2d conv(128, 128, 3, {.padding = {1, 1}});
  for (std::size_t i = 0; i < conv.weight.data.size(); ++i) conv.weight.data[i] = 0.01f * (i % 5);
  const nn::Tensor x({1, 16, 16, 128}, std::vector<float>(16 * 16 * 128, 0.25f));
  set_num_threads(1);
  const nn::Tensor y1 = conv.forward(x);
  EXPECT_EQ(nn::detail::last_block_team(), 1);
  EXPECT_EQ(detail::sgemm_last_threads(), 1);
  set_num_threads(2);
  const nn::Tensor y2 = conv.forward(x);
  EXPECT_EQ(nn::detail::last_block_team(), detail::sgemm_has_threads() ? 2 : 1);
  EXPECT_EQ(detail::sgemm_last_threads(), 1);  // nested in a block's thread
  EXPECT_EQ(y1.data, y2.data);
}

// Batches 1-4 multiply the unpacked weights, larger ones go through sgemm:
// both must agree with double-precision math within the float error bound
// of a (K + 1)-term sum, gamma_{K+1} * sum |terms| (see sgemm_test.cpp).
TEST(NnFp32Threads, LinearSmallAndLargeBatchesMatchDoubleReference) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  nn::Linear l(67, 29);
  for (float& v : l.weight.data) v = u(rng);
  for (float& v : l.bias.data) v = u(rng);
  for (int64_t batch : {1, 2, 3, 4, 5, 9}) {
    nn::Tensor x({batch, 67});
    for (float& v : x.data) v = u(rng);
    const nn::Tensor y = l.forward(x);
    const double gamma = 68 * 0x1p-24 / (1 - 68 * 0x1p-24);
    for (int64_t i = 0; i < batch; ++i) {
      for (int64_t j = 0; j < 29; ++j) {
        double exact = l.bias.data[j], magnitude = std::abs(exact);
        for (int64_t k = 0; k < 67; ++k) {
          const double t = static_cast<double>(x.data[i * 67 + k]) * l.weight.data[j * 67 + k];
          exact += t;
          magnitude += std::abs(t);
        }
        EXPECT_NEAR(y.data[i * 29 + j], exact, gamma * magnitude)
            << "batch " << batch << " at (" << i << ", " << j << ")";
      }
    }
  }
}

}  // namespace
}  // namespace sparq
