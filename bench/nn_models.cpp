// Whole-model inference: FP32 (sparq's sgemm per ISA) vs INT8 dynamic vs INT8 static, in the
// same run, on
//   - mlp: 784-1024-1024-10 with ReLU (3 Linear layers)
//   - cnn: 28x28x1 -> Conv3x3(16)+BN+ReLU -> MaxPool2 -> Conv3x3(32)+ReLU ->
//          MaxPool2 -> Flatten -> Linear(1568, 128)+ReLU -> Linear(128, 10)
// at batch 1 and 64. Reports samples/s (items_per_second) and, for the MLP,
// GOPS (2 * batch * sum of in*out per second) in the "GOPS" counter.
// Weights are random (PyTorch's default init); static models are calibrated
// on 4 random batches of 64 with min/max observers.
//   ./build/bench_nn_models --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <string>

#include "sparq/nn/nn.hpp"
#include "sparq/threads.hpp"

namespace nn = sparq::nn;

namespace {

nn::Sequential make_mlp() {
  nn::Sequential s{nn::Linear(784, 1024), nn::ReLU(), nn::Linear(1024, 1024), nn::ReLU(),
                   nn::Linear(1024, 10)};
  s.init_parameters(1);
  return s;
}

nn::Sequential make_cnn() {
  nn::Sequential s;
  s.add(nn::Conv2d(1, 16, 3, {.padding = {1, 1}}))
      .add(nn::BatchNorm2d(16))
      .add(nn::ReLU())
      .add(nn::MaxPool2d(2))
      .add(nn::Conv2d(16, 32, 3, {.padding = {1, 1}}))
      .add(nn::ReLU())
      .add(nn::MaxPool2d(2))
      .add(nn::Flatten())
      .add(nn::Linear(7 * 7 * 32, 128))
      .add(nn::ReLU())
      .add(nn::Linear(128, 10));
  s.init_parameters(2);
  return s;
}

nn::Tensor random_input(const std::string& model, int64_t batch, uint32_t seed) {
  nn::Tensor t(model == "mlp" ? std::vector<int64_t>{batch, 784}
                              : std::vector<int64_t>{batch, 28, 28, 1});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : t.data) v = u(rng);
  return t;
}

struct Models {
  nn::Sequential fp32;
  nn::QuantizedModel dynamic, static_;
};

const Models& models(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Models>> cache;
  auto& m = cache[name];
  if (!m) {
    m = std::make_unique<Models>();
    m->fp32 = name == "mlp" ? make_mlp() : make_cnn();
    m->dynamic = nn::quantize_dynamic(m->fp32);
    nn::CalibrationConfig cc;
    cc.observer.kind = sparq::ObserverKind::minmax;
    cc.keep_samples = 0;
    nn::Calibrator cal(m->fp32, cc);
    for (uint32_t i = 0; i < 4; ++i) cal.observe(random_input(name, 64, 100 + i));
    m->static_ = nn::quantize_static(cal);
  }
  return *m;
}

void run(benchmark::State& state, const std::string& model, const std::string& kind) {
  const int64_t batch = state.range(0);
  const Models& m = models(model);
  const nn::Tensor x = random_input(model, batch, 7);
  // "+ws": the serving path, on the caller's buffer with a reused Workspace
  // (no input copy, no allocation per call).
  const bool serving = kind.ends_with("+ws");
  const nn::QuantizedModel& q = kind.starts_with("dynamic") ? m.dynamic : m.static_;
  nn::Workspace ws;
  for (auto _ : state) {
    if (serving) {
      benchmark::DoNotOptimize(q.forward(nn::TensorView(x), ws).data);
      continue;
    }
    nn::Tensor y = kind == "fp32" ? m.fp32.forward(x) : q.forward(x);
    benchmark::DoNotOptimize(y.data.data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  if (model == "mlp") {
    const double ops = 2.0 * batch * (784.0 * 1024 + 1024.0 * 1024 + 1024.0 * 10);
    state.counters["GOPS"] =
        benchmark::Counter(ops * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
  }
  state.counters["weight_MB"] = (kind == "fp32" ? m.fp32.weight_bytes() : q.weight_bytes()) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  // Single-core numbers for every variant: sparq::set_num_threads governs
  // the FP32 layers too.
  sparq::set_num_threads(1);
  for (const char* model : {"mlp", "cnn"}) {
    for (const char* kind : {"fp32", "dynamic", "dynamic+ws", "static", "static+ws"}) {
      benchmark::RegisterBenchmark((std::string(model) + "/" + kind).c_str(),
                                   [model, kind](benchmark::State& s) { run(s, model, kind); })
          ->Arg(1)
          ->Arg(64)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
