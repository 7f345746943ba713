// Models trained in PyTorch (train.py), run by sparq in FP32 and in sparq's
// default static INT8, evaluated on the 10,000 Fashion-MNIST test images.
//
//   pytorch_trained [--model mlp|cnn|all] [--data DIR] [--weights-dir DIR]
//                   [--calibration N] [--threads N] [--latency]
//                   [--predictions FILE]
//
// Prints one JSON object per model:
//   {"model": "cnn", "fp32_accuracy": ..., "int8_accuracy": ..., "sqnr_db": ...,
//    "ranges": {"input": [min, max], "conv1": [min, max], ...}}
// sqnr_db compares the INT8 logits with sparq's FP32 logits over every test
// image. Static calibration uses the first N (default 1000) training images,
// never the test set, and the documented default configuration
// (GraphCalibrator's default CalibrationConfig, quantize_static's default
// StaticConfig). --latency adds the median milliseconds of one forward call
// at batch 1 and 64, FP32 and INT8. --predictions writes the INT8 model's
// class for every test image, one digit per line (one model only), so
// compare.py can pair them with PyTorch's image by image. compare.py runs this program next to
// PyTorch's own static INT8 and checks that sparq's default is at least as
// good. Exit 0: done; 1: an error; 77: the data set is not installed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "idx.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/io.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/threads.hpp"

namespace nn = sparq::nn;

namespace {

constexpr int64_t kImage = 28, kClasses = 10;

/// models.py's FashionMLP: its input is the flattened image, [B][784].
nn::Graph mlp_graph() {
  nn::Graph g;
  g.add("fc1", nn::Linear(kImage * kImage, 128));
  g.add("relu1", nn::ReLU());
  g.add("fc2", nn::Linear(128, 64));
  g.add("relu2", nn::ReLU());
  g.add("fc3", nn::Linear(64, kClasses));
  return g;
}

/// models.py's FashionCNN on NHWC images, [B][28][28][1]; node names are
/// its module names, so PyTorch's state_dict loads by name.
nn::Graph cnn_graph() {
  nn::Graph g;
  int64_t in_channels = 1;
  const int64_t channels[] = {16, 32, 64};
  for (int i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i + 1);
    g.add("conv" + n, nn::Conv2d(in_channels, channels[i], 3, {.padding = {1, 1}}));
    g.add("bn" + n, nn::BatchNorm2d(channels[i]));
    g.add("relu" + n, nn::ReLU());
    if (i < 2) g.add("pool" + n, nn::MaxPool2d(2));
    in_channels = channels[i];
  }
  g.add("avgpool", nn::AdaptiveAvgPool2d{});
  g.add("flatten", nn::Flatten());
  g.add("fc", nn::Linear(in_channels, kClasses));
  return g;
}

/// Images [start, start + n) of `d` as pixel / 255, shaped for the model.
nn::Tensor images(const fashion::Dataset& d, int64_t start, int64_t n, bool flat) {
  const int64_t pixels = d.pixels();
  nn::Tensor x(flat ? std::vector<int64_t>{n, pixels} : std::vector<int64_t>{n, kImage, kImage, 1});
  for (int64_t i = 0; i < x.numel(); ++i) {
    x.data[static_cast<std::size_t>(i)] =
        static_cast<float>(d.images[static_cast<std::size_t>(start * pixels + i)]) / 255.0f;
  }
  return x;
}

/// Logits of every image of `d`, batch by batch.
template <class Model>
std::vector<float> logits_of(const Model& model, const fashion::Dataset& d, bool flat) {
  constexpr int64_t kBatch = 500;
  std::vector<float> all;
  all.reserve(static_cast<std::size_t>(d.count * kClasses));
  for (int64_t start = 0; start < d.count; start += kBatch) {
    const nn::Tensor y = model.forward(images(d, start, std::min(kBatch, d.count - start), flat));
    all.insert(all.end(), y.data.begin(), y.data.end());
  }
  return all;
}

double accuracy_of(const std::vector<float>& logits, const fashion::Dataset& d) {
  return nn::accuracy(nn::Tensor({d.count, kClasses}, logits), d.labels);
}

/// Median milliseconds of one forward call on the first `batch` test images.
template <class Model>
double median_ms(const Model& model, const fashion::Dataset& d, int64_t batch, bool flat) {
  const nn::Tensor x = images(d, 0, batch, flat);
  // Enough calls for a stable median at either batch size, a few seconds at most.
  const int calls = batch == 1 ? 400 : 60;
  std::vector<double> ms;
  for (int i = 0; i < calls + 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const nn::Tensor y = model.forward(x);
    const double t =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 5) ms.push_back(t);  // the first calls warm caches and allocators
  }
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

struct Options {
  std::vector<std::string> models{"mlp", "cnn"};
  std::filesystem::path data = fashion::default_data_dir();
  std::filesystem::path weights_dir = PYTORCH_TRAINED_DIR;
  int64_t calibration = 1000;
  int threads = 0;  ///< 0: sparq's default
  bool latency = false;
  std::filesystem::path predictions{};  ///< empty: not written
};

int64_t positive(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || v <= 0) {
    sparq::detail::fail("pytorch_trained: {} ({}) must be a positive integer", flag, value);
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--latency") {
      o.latency = true;
      continue;
    }
    if (i + 1 >= argc) sparq::detail::fail("pytorch_trained: {} needs a value", flag);
    const std::string value = argv[++i];
    if (flag == "--model") {
      if (value != "mlp" && value != "cnn" && value != "all") {
        sparq::detail::fail("pytorch_trained: --model ({}) must be mlp, cnn or all", value);
      }
      if (value != "all") o.models = {value};
    } else if (flag == "--data") {
      o.data = value;
    } else if (flag == "--weights-dir") {
      o.weights_dir = value;
    } else if (flag == "--calibration") {
      o.calibration = positive(flag, value);
    } else if (flag == "--predictions") {
      o.predictions = value;
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(positive(flag, value));
    } else {
      sparq::detail::fail("pytorch_trained: unknown flag {}", flag);
    }
  }
  if (!o.predictions.empty() && o.models.size() != 1) {
    sparq::detail::fail("pytorch_trained: --predictions ({}) needs one --model (mlp or cnn)",
                        o.predictions.string());
  }
  return o;
}

void run(const std::string& name, const Options& o, const fashion::Dataset& train,
         const fashion::Dataset& test) {
  const bool flat = name == "mlp";
  nn::Graph graph = flat ? mlp_graph() : cnn_graph();
  nn::load_weights(graph, o.weights_dir / (name + ".safetensors"));  // strict, conv OIHW

  // sparq's default static INT8: the default calibration, then quantize.
  constexpr int64_t kCalibrationBatch = 100;
  nn::GraphCalibrator calibrator(graph);
  for (int64_t start = 0; start < o.calibration; start += kCalibrationBatch) {
    calibrator.observe(
        images(train, start, std::min(kCalibrationBatch, o.calibration - start), flat));
  }
  const nn::QuantizedGraph int8 = nn::quantize_static(calibrator);

  const std::vector<float> fp32_logits = logits_of(graph, test, flat);
  const std::vector<float> int8_logits = logits_of(int8, test, flat);
  if (!o.predictions.empty()) {
    std::FILE* f = std::fopen(o.predictions.c_str(), "w");
    if (!f) sparq::detail::fail("pytorch_trained: cannot write {}", o.predictions.string());
    for (const int64_t c : nn::argmax(nn::Tensor({test.count, kClasses}, int8_logits))) {
      std::fprintf(f, "%lld\n", static_cast<long long>(c));
    }
    if (std::fclose(f) != 0)
      sparq::detail::fail("pytorch_trained: cannot write {}", o.predictions.string());
  }
  std::printf(R"({"model": "%s", "fp32_accuracy": %.4f, "int8_accuracy": %.4f, "sqnr_db": %.3f)",
              name.c_str(), accuracy_of(fp32_logits, test), accuracy_of(int8_logits, test),
              nn::sqnr_db(fp32_logits, int8_logits));
  // The calibrated range of every activation (diagnosis: compare with the
  // ranges of PyTorch's observers).
  std::printf(R"(, "ranges": {)");
  std::vector<std::string> names = graph.input_names();
  for (const nn::Node& node : graph.nodes()) {
    // BatchNorms are folded into their convolutions, which the calibrator observes.
    const auto* layer = std::get_if<nn::Layer>(&node.op);
    if (!layer || !std::holds_alternative<nn::BatchNorm>(*layer)) names.push_back(node.name);
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    const sparq::QParams qp = calibrator.qparams(names[i]);
    std::printf(R"(%s"%s": [%.5g, %.5g])", i == 0 ? "" : ", ", names[i].c_str(),
                static_cast<double>(qp.scale) * (0.0 - qp.zero_point),
                static_cast<double>(qp.scale) * (255.0 - qp.zero_point));
  }
  std::printf("}");
  if (o.latency) {
    std::printf(R"(, "threads": %d)", sparq::num_threads());
    for (const int64_t batch : {int64_t{1}, int64_t{64}}) {
      std::printf(R"(, "fp32_ms_batch%lld": %.4f, "int8_ms_batch%lld": %.4f)",
                  static_cast<long long>(batch), median_ms(graph, test, batch, flat),
                  static_cast<long long>(batch), median_ms(int8, test, batch, flat));
    }
  }
  std::printf("}\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (o.threads > 0) sparq::set_num_threads(o.threads);
    fashion::Dataset train, test;
    try {
      train = fashion::load_fashion_mnist(o.data, "train");
      test = fashion::load_fashion_mnist(o.data, "t10k");
    } catch (const std::exception& e) {
      std::printf("skipped: %s\n", e.what());
      return 77;
    }
    if (o.calibration > train.count) {
      sparq::detail::fail(
          "pytorch_trained: --calibration ({}) must be at most the {} training images",
          o.calibration, train.count);
    }
    for (const std::string& name : o.models) run(name, o, train, test);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pytorch_trained: %s\n", e.what());
    return 1;
  }
}
