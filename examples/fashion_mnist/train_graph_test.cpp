// Tests of the demo's graph trainer (train_graph.*) and its export into a
// sparq nn::Graph (graph_models.*): every parameter gradient of a small
// residual / grouped / depthwise net against central finite differences,
// BatchNorm folding, the FP32 match with sparq after the PyTorch-layout
// export, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>

#include "graph_models.hpp"
#include "sparq/error.hpp"
#include "train_graph.hpp"

namespace {

using namespace fashion;

// Every kind of node the demo's two models use, at a size where finite
// differences over every parameter stay fast:
//   6x6x2 -> conv 3x3/2 groups 2 -> BN -> ReLU -> depthwise 3x3 -> BN -> ReLU
//   -> [conv 3x3/2 -> BN] + [1x1/2 projection -> BN] -> ReLU -> GAP -> fc
GraphNet tiny_net(uint64_t seed) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  GraphNet net;
  net.name = "tiny";
  net.input = {6, 6, 2};
  const Shape3 s1{3, 3, 4};
  net.add("conv1", std::make_unique<GroupedConv2d>(net.input, 4, 3, 2, 1, 2, rng));
  net.add("bn1", std::make_unique<BatchNorm>(4, true));
  net.add("relu", std::make_unique<ReLU>());
  net.add("dw", std::make_unique<GroupedConv2d>(s1, 4, 3, 1, 1, 4, rng));
  net.add("dw_bn", std::make_unique<BatchNorm>(4, true));
  const int block_in = net.add("dw_relu", std::make_unique<ReLU>());
  net.add("conv2", std::make_unique<GroupedConv2d>(s1, 6, 3, 2, 1, 1, rng), block_in);
  const int main_path = net.add("bn2", std::make_unique<BatchNorm>(6, true));
  net.add("downsample.0", std::make_unique<GroupedConv2d>(s1, 6, 1, 2, 0, 1, rng), block_in);
  const int shortcut = net.add("downsample.1", std::make_unique<BatchNorm>(6, true));
  net.add_sum("add", main_path, shortcut);
  net.add("relu2", std::make_unique<ReLU>());
  net.add("avgpool", std::make_unique<GlobalAvgPool>(Shape3{2, 2, 6}));
  net.add("flatten", std::make_unique<Flatten>(Shape3{1, 1, 6}));
  net.add("fc", std::make_unique<Linear>(6, 3, rng));
  // Non-trivial BatchNorm affine parameters, so their gradients are tested
  // away from the identity.
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (auto& n : net.nodes) {
    if (auto* bn = dynamic_cast<BatchNorm*>(n.layer.get())) {
      for (int64_t c = 0; c < bn->gamma.value.cols(); ++c) {
        bn->gamma.value(0, c) = u(rng);
        bn->beta.value(0, c) = u(rng) - 1.0f;
      }
    }
  }
  return net;
}

Mat random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  std::normal_distribution<float> n(0.0f, 1.0f);
  Mat m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

TEST(FashionTrainGraph, GradientsMatchFiniteDifferences) {
  GraphNet net = tiny_net(3);
  const Mat x = random_matrix(4, net.input.size(), 5);
  // L = sum(logits .* r): dL/dlogits = r.
  const Mat r = random_matrix(4, 3, 7);
  auto loss = [&] {
    const Mat y = net.forward(x, true);  // training mode: BatchNorm on batch statistics
    return static_cast<double>(y.cwiseProduct(r).sum());
  };
  std::vector<Param*> params = net.params();
  for (Param* p : params) p->grad = Mat::Zero(p->value.rows(), p->value.cols());
  loss();
  net.backward(r);

  // Central differences on every trainable value. A step of 3e-3 keeps the
  // truncation error (O(step^2)) and float rounding of L (~1e-7 |L| / step)
  // both near 1e-5 relative.
  const float step = 3e-3f;
  int checked = 0;
  for (Param* p : params) {
    if (!p->trainable) continue;
    double diff2 = 0, norm2 = 0;
    for (int64_t i = 0; i < p->value.size(); ++i) {
      float& v = p->value.data()[i];
      const float saved = v;
      v = saved + step;
      const double up = loss();
      v = saved - step;
      const double down = loss();
      v = saved;
      const double numeric = (up - down) / (2.0 * step);
      const double analytic = p->grad.data()[i];
      diff2 += (numeric - analytic) * (numeric - analytic);
      norm2 += analytic * analytic;
      ++checked;
    }
    // Relative error of the whole gradient of one parameter: 2% allows a
    // ReLU input that the step moves across zero (one kink changes a few
    // entries), while a wrong stride, group offset, Add or pooling gradient
    // gives errors of order 100%. The absolute 1e-3: a conv bias in front of
    // a BatchNorm has an exact zero gradient (the batch mean removes it), and
    // its numeric one is the float rounding of L over the step (~3e-5 per value).
    EXPECT_LT(std::sqrt(diff2), 0.02 * std::sqrt(norm2) + 1e-3) << "parameter " << p->name;
  }
  EXPECT_GT(checked, 200);  // every conv, BatchNorm and fc value took part
}

TEST(FashionTrainGraph, MatchesSparqGraphAfterExportAndBatchNormFolding) {
  GraphNet net = tiny_net(11);
  const Mat x = random_matrix(5, net.input.size(), 13);
  // A few training-mode passes give the BatchNorms non-trivial running statistics.
  for (int i = 0; i < 3; ++i) net.forward(x, true);
  const Mat expected = net.forward(x, false);

  const auto file = std::filesystem::temp_directory_path() / "fashion_train_graph_test.safetensors";
  const nn::Graph g = export_and_import_graph(net, file);
  std::filesystem::remove(file);
  const nn::Tensor y =
      g.forward(nn::Tensor({5, 6, 6, 2}, std::vector<float>(x.data(), x.data() + x.size())));
  ASSERT_EQ(y.shape, (std::vector<int64_t>{5, 3}));
  // Float sums in another order (sparq's kernels vs Eigen): 1e-4 of the
  // output scale is ~100 float ulps of accumulated rounding.
  const float scale = expected.cwiseAbs().maxCoeff();
  for (int64_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(y.data[static_cast<std::size_t>(i)], expected.data()[i], 1e-4f * scale) << i;
  }

  GraphNet folded = net.clone();
  folded.fold_batchnorm();
  int batchnorms = 0;
  for (const auto& n : folded.nodes) batchnorms += n.layer && n.layer->kind() == "BatchNorm2d";
  EXPECT_EQ(batchnorms, 0);
  EXPECT_EQ(folded.nodes.size(), net.nodes.size() - 4);
  const Mat y_folded = folded.forward(x, false);
  for (int64_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(y_folded.data()[i], expected.data()[i], 1e-4f * scale) << i;
  }
}

TEST(FashionTrainGraph, DemoModelsHaveTheirShapes) {
  GraphNet resnet = make_resnet(1);
  GraphNet dscnn = make_dscnn(1);
  const Mat x = random_matrix(2, 784, 17);
  EXPECT_EQ(resnet.forward(x, false).cols(), 10);
  EXPECT_EQ(dscnn.forward(x, false).cols(), 10);
  // Three stages, two with a stride-2 1x1 projection shortcut.
  EXPECT_EQ(resnet.state_dict().count("layer2.0.downsample.0.weight"), 1u);
  EXPECT_EQ(resnet.state_dict().at("layer3.0.downsample.0.weight").shape,
            (std::vector<int64_t>{64, 1, 1, 32}));
  EXPECT_EQ(dscnn.state_dict().at("blocks.2.depthwise.weight").shape,
            (std::vector<int64_t>{64, 3, 3, 1}));
}

TEST(FashionTrainGraph, RejectsBadArguments) {
  std::mt19937 rng(1);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const sparq::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message([&] {
              GroupedConv2d({4, 4, 6}, 8, 3, 1, 1, 4, rng);
            }).find("groups 4"),
            std::string::npos);
  EXPECT_NE(message([&] {
              GroupedConv2d({4, 4, 6}, 8, 3, 0, 1, 1, rng);
            }).find("stride 0"),
            std::string::npos);
  GraphNet net;
  net.name = "n";
  EXPECT_NE(message([&] { net.add_sum("add", 0, 1); }).find("adds nodes 0 and 1"),
            std::string::npos);
}

}  // namespace
