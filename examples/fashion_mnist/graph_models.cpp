#include "graph_models.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "sparq/error.hpp"
#include "sparq/nn/graph_quantized.hpp"

namespace fashion {

using sparq::detail::fail;

namespace {

// Conv -> BatchNorm [-> ReLU] under `prefix` ("layer1.0." + "conv1", ...);
// returns the index of the last node added.
struct Builder {
  GraphNet& net;
  std::mt19937& rng;
  Shape3 shape;  ///< output shape of the node added last

  int conv_bn(const std::string& conv, const std::string& bn, const std::string& relu, int from,
              Shape3 in, int64_t out_c, int64_t kernel, int64_t stride, int64_t groups) {
    auto c =
        std::make_unique<GroupedConv2d>(in, out_c, kernel, stride, (kernel - 1) / 2, groups, rng);
    shape = c->out_shape();
    int at = net.add(conv, std::move(c), from);
    at = net.add(bn, std::make_unique<BatchNorm>(out_c, true), at);
    if (!relu.empty()) at = net.add(relu, std::make_unique<ReLU>(), at);
    return at;
  }

  // avgpool flatten fc, as torchvision's classifiers end.
  void head(int from) {
    net.add("avgpool", std::make_unique<GlobalAvgPool>(shape), from);
    net.add("flatten", std::make_unique<Flatten>(Shape3{1, 1, shape.c}));
    net.add("fc", std::make_unique<Linear>(shape.c, 10, rng));
  }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

nn::Tensor ohwi_to_oihw(const NamedTensor& t) {
  const int64_t o = t.shape[0], h = t.shape[1], w = t.shape[2], i = t.shape[3];
  std::vector<float> v(t.data.size());
  for (int64_t a = 0; a < o; ++a)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t c = 0; c < i; ++c)
          v[static_cast<std::size_t>(((a * i + c) * h + y) * w + x)] =
              t.data[static_cast<std::size_t>(((a * h + y) * w + x) * i + c)];
  return nn::Tensor({o, i, h, w}, std::move(v));
}

// Observes `calib` in batches of 100 images, as a data loader would feed them.
nn::GraphCalibrator calibrate(const nn::Graph& g, const Dataset& train,
                              const std::vector<int64_t>& calib) {
  nn::GraphCalibrator cal(g);
  for (std::size_t first = 0; first < calib.size(); first += 100) {
    const std::size_t n = std::min<std::size_t>(100, calib.size() - first);
    const std::vector<int64_t> idx(calib.begin() + static_cast<std::ptrdiff_t>(first),
                                   calib.begin() + static_cast<std::ptrdiff_t>(first + n));
    cal.observe(images_tensor(train, idx, true));
  }
  return cal;
}

template <class Model>
Forward owning_forward(Model model) {
  return [m = std::move(model)](const nn::Tensor& x) { return m.forward(x); };
}

}  // namespace

GraphNet make_resnet(uint64_t seed, int64_t c1, int64_t c2, int64_t c3) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  GraphNet net;
  net.name = "ResNet";
  net.input = {28, 28, 1};
  Builder b{net, rng, net.input};
  int x = b.conv_bn("conv1", "bn1", "relu", GraphNet::kImage, net.input, c1, 3, 2, 1);
  const int64_t widths[3] = {c1, c2, c3};
  for (int stage = 0; stage < 3; ++stage) {
    const std::string p = fmt::format("layer{}.0.", stage + 1);
    const Shape3 in = b.shape;
    const int64_t out_c = widths[stage];
    const int64_t stride = stage == 0 ? 1 : 2;
    int y = b.conv_bn(p + "conv1", p + "bn1", p + "relu1", x, in, out_c, 3, stride, 1);
    y = b.conv_bn(p + "conv2", p + "bn2", "", y, b.shape, out_c, 3, 1, 1);
    const Shape3 out = b.shape;
    int shortcut = x;
    if (stride != 1 || in.c != out_c) {
      shortcut = b.conv_bn(p + "downsample.0", p + "downsample.1", "", x, in, out_c, 1, stride, 1);
    }
    b.shape = out;
    const int sum = net.add_sum(p + "add", y, shortcut);
    x = net.add(p + "relu2", std::make_unique<ReLU>(), sum);
  }
  b.head(x);
  return net;
}

GraphNet make_dscnn(uint64_t seed) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  GraphNet net;
  net.name = "DSCNN";
  net.input = {28, 28, 1};
  Builder b{net, rng, net.input};
  int x = b.conv_bn("conv1", "bn1", "relu", GraphNet::kImage, net.input, 16, 3, 2, 1);
  const int64_t strides[3] = {1, 2, 2};
  const int64_t widths[3] = {32, 64, 128};
  for (int i = 0; i < 3; ++i) {
    const std::string p = fmt::format("blocks.{}.", i);
    const int64_t c = b.shape.c;
    x = b.conv_bn(p + "depthwise", p + "bn1", p + "relu1", x, b.shape, c, 3, strides[i], c);
    x = b.conv_bn(p + "pointwise", p + "bn2", p + "relu2", x, b.shape, widths[i], 1, 1, 1);
  }
  b.head(x);
  return net;
}

nn::Graph sparq_graph(const GraphNet& net) {
  nn::Graph g;
  auto input_name = [&](int i) {
    return i == GraphNet::kImage ? std::string("input")
                                 : net.nodes[static_cast<std::size_t>(i)].name;
  };
  for (const auto& n : net.nodes) {
    std::vector<std::string> inputs;
    for (int i : n.inputs) inputs.push_back(input_name(i));
    const Layer* l = n.layer.get();
    if (!l) {
      g.add(n.name, nn::Add{}, inputs);
    } else if (const auto* conv = dynamic_cast<const GroupedConv2d*>(l)) {
      const int64_t s = conv->stride(), p = conv->padding();
      g.add(n.name,
            nn::Layer(nn::Conv2d(conv->in_shape().c, conv->out_features(), conv->kernel(),
                                 {.stride = {s, s}, .padding = {p, p}, .groups = conv->groups()})),
            inputs);
    } else if (const auto* bn = dynamic_cast<const BatchNorm*>(l)) {
      g.add(n.name, nn::Layer(nn::BatchNorm(bn->gamma.value.cols(), bn->eps)), inputs);
    } else if (const auto* lin = dynamic_cast<const Linear*>(l)) {
      g.add(n.name, nn::Layer(nn::Linear(lin->weight.value.cols(), lin->weight.value.rows())),
            inputs);
    } else if (l->kind() == "ReLU") {
      g.add(n.name, nn::Layer(nn::ReLU()), inputs);
    } else if (l->kind() == "AdaptiveAvgPool2d") {
      g.add(n.name, nn::AdaptiveAvgPool2d{}, inputs);
    } else if (l->kind() == "Flatten") {
      g.add(n.name, nn::Layer(nn::Flatten()), inputs);
    } else {
      fail("sparq_graph ({}): node '{}' of kind '{}' has no sparq counterpart", net.name, n.name,
           l->kind());
    }
  }
  return g;
}

nn::Graph export_and_import_graph(const GraphNet& net, const std::filesystem::path& file) {
  nn::TensorMap tensors;
  for (const auto& [key, t] : net.state_dict()) {
    tensors.emplace(key, t.shape.size() == 4 ? ohwi_to_oihw(t) : nn::Tensor(t.shape, t.data));
  }
  nn::save_safetensors(file, tensors,
                       {{"producer", "sparq examples/fashion_mnist"}, {"model", net.name}});
  nn::Graph g = sparq_graph(net);
  nn::load_weights(g, file);
  return g;
}

std::vector<GraphVariant> graph_variants(GraphNet& net, const Dataset& train, const Dataset& test,
                                         const std::vector<int64_t>& calib,
                                         const std::filesystem::path& out, const GraphPlan& plan) {
  const std::string m = net.name, ms = lower(net.name);
  auto t0 = std::chrono::steady_clock::now();
  fashion::train(net, train,
                 {.epochs = plan.epochs,
                  .batch = 128,
                  .lr = plan.lr,
                  .seed = plan.seed,
                  .label = m + " FP32"});
  fmt::print("trained {} epochs in {:.1f} s; trainer FP32 test accuracy {:.2f}%\n", plan.epochs,
             seconds_since(t0), 100 * accuracy(net, test));

  std::vector<GraphVariant> rows;
  const std::string fp32_file = ms + "_fp32.safetensors";
  const nn::Graph fp32 = export_and_import_graph(net, out / fp32_file);
  rows.push_back({"FP32", owning_forward(fp32), fp32.weight_bytes(), fp32_file,
                  "sparq::nn::Graph FP32, loaded by name from a PyTorch-style state_dict"});
  auto add_quantized = [&rows](std::string variant, const nn::QuantizedGraph& q, std::string file,
                               std::string note) {
    rows.push_back({std::move(variant), owning_forward(q), q.weight_bytes(), std::move(file),
                    std::move(note)});
  };
  add_quantized("dynamic INT8", nn::quantize_dynamic(fp32), "", "");

  const nn::GraphCalibrator cal = calibrate(fp32, train, calib);
  for (auto g : {sparq::Granularity::per_tensor, sparq::Granularity::per_channel}) {
    const bool per_tensor = g == sparq::Granularity::per_tensor;
    add_quantized(
        fmt::format("static INT8 {} automatic", per_tensor ? "per-tensor" : "per-channel"),
        nn::quantize_static(cal, {.weight_granularity = g}), "",
        per_tensor ? "one weight scale per layer (depthwise: for every filter of the layer)" : "");
  }

  // QAT: BatchNorm folded (as sparq folds it), fake-quant with the
  // straight-through estimator, then static INT8 per channel.
  GraphNet qat = net.clone();
  qat.fold_batchnorm();
  const auto hooks = make_qat_hooks();
  for (WeightLayer* wl : qat.weight_layers()) {
    wl->qat = hooks;
    wl->act_range_set = false;
  }
  t0 = std::chrono::steady_clock::now();
  fashion::train(qat, train,
                 {.epochs = plan.qat_epochs,
                  .batch = 128,
                  .lr = plan.lr * 0.05f,
                  .seed = plan.seed + 1,
                  .label = m + " QAT"});
  fmt::print("QAT: {} epoch(s) in {:.1f} s; fake-quant test accuracy in the trainer {:.2f}%\n",
             plan.qat_epochs, seconds_since(t0), 100 * accuracy(qat, test));
  for (WeightLayer* wl : qat.weight_layers()) wl->qat.reset();
  const std::string qat_file = ms + "_qat_fp32.safetensors";
  const nn::Graph qat_fp32 = export_and_import_graph(qat, out / qat_file);
  add_quantized(
      "QAT INT8 per-channel", nn::quantize_static(calibrate(qat_fp32, train, calib), {}), qat_file,
      fmt::format("{} epoch(s) fake-quant fine-tuning; ranges from automatic calibration (a "
                  "QuantizedGraph cannot take the QAT-learned ranges)",
                  plan.qat_epochs));
  return rows;
}

}  // namespace fashion
