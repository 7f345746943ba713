// Writes the fuzzers' seed corpora under argv[1] (run at build time by
// fuzz/CMakeLists.txt): small valid files, so mutations start from inputs
// that reach deep into each parser. Small on purpose: the fuzzer mutates
// faster.
//   model/        quantized model files (static and dynamic, MLP and CNN,
//                 with an FP32 block, per-tensor and per-channel weights)
//   safetensors/  FP32 state dicts (with metadata, with an empty tensor),
//                 plus the model files (they are safetensors too)
//   observer/     one saved observer of every kind, after data and fresh
#include <cstdio>
#include <filesystem>
#include <random>

#include "sparq/observe/observers.hpp"

#include "sparq/nn/nn.hpp"

namespace nn = sparq::nn;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const std::filesystem::path dir = root / "model";
  std::filesystem::create_directories(dir);
  std::filesystem::create_directories(root / "safetensors");
  std::filesystem::create_directories(root / "observer");
  std::mt19937 rng(1);
  auto random = [&](std::vector<int64_t> shape) {
    nn::Tensor t(std::move(shape));
    for (float& v : t.data) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    return t;
  };

  nn::Sequential mlp{nn::Linear(6, 5), nn::ReLU(), nn::Linear(5, 3, false), nn::ReLU6(),
                     nn::Linear(3, 2)};
  mlp.init_parameters(1);
  nn::Sequential cnn;
  cnn.add(nn::Conv2d(2, 4, 3, {.padding = {1, 1}}))
      .add(nn::BatchNorm2d(4))
      .add(nn::ReLU())
      .add(nn::MaxPool2d(2))
      .add(nn::Conv2d(4, 4, 3,
                      {.stride = {2, 2}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 4}))
      .add(nn::ReLU6())
      .add(nn::Flatten())
      .add(nn::Linear(4, 3));
  cnn.init_parameters(2);

  nn::save(nn::quantize_dynamic(mlp), dir / "mlp_dynamic.sparq");
  nn::save(nn::quantize_dynamic(cnn, {.weight_granularity = sparq::Granularity::per_tensor}),
           dir / "cnn_dynamic_per_tensor.sparq");
  nn::CalibrationConfig cc;
  cc.observer.kind = sparq::ObserverKind::minmax;
  nn::Calibrator cal_mlp(mlp, cc);
  cal_mlp.observe(random({4, 6}));
  nn::StaticConfig keep;
  keep.overrides["2"].keep_fp32 = true;
  nn::save(nn::quantize_static(cal_mlp), dir / "mlp_static.sparq");
  nn::save(nn::quantize_static(cal_mlp, keep), dir / "mlp_static_fp32_block.sparq");
  nn::Calibrator cal_cnn(cnn, cc);
  cal_cnn.observe(random({2, 4, 4, 2}));
  nn::save(nn::quantize_static(cal_cnn), dir / "cnn_static.sparq");
  for (const auto& e : std::filesystem::directory_iterator(dir))
    std::filesystem::copy_file(e.path(), root / "safetensors" / e.path().filename(),
                               std::filesystem::copy_options::overwrite_existing);
  nn::save_safetensors(root / "safetensors" / "mlp_state.safetensors", mlp.state_dict(),
                       {{"framework", "pt"}});
  nn::TensorMap odd;
  odd["empty"] = nn::Tensor({0, 3});
  odd["scalar"] = random({1});
  nn::save_safetensors(root / "safetensors" / "odd.safetensors", odd);

  const nn::Tensor x = random({8, 4});
  for (const auto kind :
       {sparq::ObserverKind::minmax, sparq::ObserverKind::moving_average_minmax,
        sparq::ObserverKind::per_channel_minmax,
        sparq::ObserverKind::moving_average_per_channel_minmax, sparq::ObserverKind::histogram}) {
    sparq::ObserverConfig c;
    c.kind = kind;
    c.bins = 64;
    c.spec.axis = 1;
    auto o = sparq::make_observer(c);
    const std::string name(sparq::observer_kind_name(kind));
    o->save(root / "observer" / (name + "_fresh.obs"));
    o->observe(x.data, x.shape);
    o->save(root / "observer" / (name + ".obs"));
  }
  std::printf("seed corpora written to %s\n", root.c_str());
  return 0;
}
