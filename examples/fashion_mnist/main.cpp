// Fashion-MNIST end to end with sparq (issue 9; docs/fashion-mnist.md):
// trains an MLP and a small CNN in FP32, moves them into sparq through a
// safetensors file, and compares on the 10,000 test images: FP32, dynamic
// INT8, static INT8 (per tensor / per channel x minmax / mse / entropy
// calibration on 1,000 training images), quantization-aware fine-tuning, and
// 2:4 pruning with channel permutation + fine-tuning + static INT8 on the
// sparse kernels. Writes results.{md,csv}, accuracy_vs_latency.svg and every
// model file to the output directory, and checks that each saved model
// reloads with identical predictions.
//
//   fashion_mnist [--quick] [--out DIR] [--data DIR] [--threads N] [--strict]
//
// --quick (CI): 6,000 training images, 1,000 test images, short training;
// checks accuracy bounds suited to that size and exits 1 when one is missed.
// Full run: checks the targets and reports each as met or missed
// (exit 1 only with --strict, or when a reload check fails).
#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "bridge.hpp"
#include "idx.hpp"
#include "graph_models.hpp"
#include "models.hpp"
#include "report.hpp"
#include "sparq/nn/adaround.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/isa.hpp"
#include "sparq/threads.hpp"

namespace {

using namespace fashion;
namespace fs = std::filesystem;

struct Options {
  bool quick = false;
  bool strict = false;
  fs::path out = "fashion_mnist_out";
  fs::path data = default_data_dir();
  int threads = 1;
  uint64_t seed = 20261121;
};

struct Plan {
  int64_t train_images, test_images, calib_images;
  int mlp_epochs, cnn_epochs, qat_epochs, sparse_epochs_mlp, sparse_epochs_cnn;
  double latency_budget_s;
  int min_repeats;
  int graph_epochs;  ///< FP32 training of the ResNet and the DSCNN
};

Plan plan_for(const Options& o) {
  if (o.quick) return {6000, 1000, 200, 4, 2, 1, 1, 1, 0.03, 5, 2};
  return {60000, 10000, 1000, 8, 3, 1, 3, 1, 0.25, 20, 2};
}

struct Check {
  std::string what;
  bool ok;
  std::string detail;
  bool gating = true;  ///< counts toward the exit status (--quick / --strict)
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string slug(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  std::string out;
  for (char c : s) {
    if (c == '_' && !out.empty() && out.back() == '_') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

class Demo {
 public:
  Demo(Options o, Dataset train, Dataset test)
      : opt_(std::move(o)),
        plan_(plan_for(opt_)),
        train_(std::move(train)),
        test_(std::move(test)) {
    // A fixed random subset of the training images for calibration.
    std::vector<int64_t> all(static_cast<std::size_t>(train_.count));
    std::iota(all.begin(), all.end(), 0);
    std::mt19937_64 rng(opt_.seed);
    std::shuffle(all.begin(), all.end(), rng);
    calib_.assign(all.begin(), all.begin() + plan_.calib_images);
  }

  void run_model(Net net, float lr) {
    const std::string m = net.name;
    const std::string ms = slug(m);
    const bool spatial = net.layers.front()->kind() == "Conv2d";
    const int epochs = m == "MLP" ? plan_.mlp_epochs : plan_.cnn_epochs;
    fmt::print("\n== {} ==\n", m);
    auto t0 = std::chrono::steady_clock::now();
    train(net, train_,
          {.epochs = epochs, .batch = 128, .lr = lr, .seed = opt_.seed, .label = m + " FP32"});
    const double trainer_acc = accuracy(net, test_);
    fmt::print("trained {} epochs in {:.1f} s; trainer FP32 test accuracy {:.2f}%\n", epochs,
               seconds_since(t0), 100 * trainer_acc);

    // FP32 into sparq through a safetensors file.
    const fs::path fp32_file = opt_.out / (ms + "_fp32.safetensors");
    nn::Sequential fp32 = export_and_import(net, fp32_file);
    const nn::Tensor x1 = images_tensor(test_, 0, 1, spatial);
    const nn::Tensor x64 = images_tensor(test_, 0, std::min<int64_t>(64, test_.count), spatial);
    auto fwd = [](const auto& model) -> Forward {
      return [&model](const nn::Tensor& x) { return model.forward(x); };
    };
    std::vector<uint8_t> fp32_pred = predict(fwd(fp32), test_, spatial);
    {
      nn::Sequential reloaded = sparq_architecture(net);
      nn::load_weights(reloaded, fp32_file);
      reload_check(m, "FP32", fp32_pred, predict(fwd(reloaded), test_, spatial));
    }
    ResultRow base =
        measure(m, "FP32", fwd(fp32), fp32_pred, fp32.weight_bytes(), x1, x64,
                fp32_file.filename().string(),
                fmt::format("sparq::nn FP32 ({})", sparq::sgemm_kernel_name(sparq::active_isa())));
    fp32_acc_ = base.accuracy;
    fp32_row_ = base;
    add_row(base);
    fmt::print("sparq FP32 from {}: {:.2f}% (trainer: {:.2f}%)\n", fp32_file.filename().string(),
               100 * base.accuracy, 100 * trainer_acc);

    // Dynamic INT8.
    quantized_row(m, "dynamic INT8", nn::quantize_dynamic(fp32), spatial, x1, x64, "");

    // Static INT8: three calibrations x two weight granularities.
    const nn::Tensor calib = images_tensor(train_, calib_, spatial);
    struct Method {
      const char* name;
      sparq::ObserverConfig observer;
    };
    const Method methods[] = {
        {"minmax", {.kind = sparq::ObserverKind::minmax}},
        {"mse", {.kind = sparq::ObserverKind::histogram, .method = sparq::RangeMethod::mse}},
        {"entropy",
         {.kind = sparq::ObserverKind::histogram, .method = sparq::RangeMethod::entropy}},
        // sparq's default: per activation, the best of the four on held-out
        // calibration rows (never on the test set).
        {"automatic",
         {.kind = sparq::ObserverKind::histogram, .method = sparq::RangeMethod::automatic}},
    };
    for (const Method& method : methods) {
      nn::Calibrator cal = calibrate(fp32, calib, method.observer);
      for (auto g : {sparq::Granularity::per_tensor, sparq::Granularity::per_channel}) {
        const std::string name = fmt::format(
            "static INT8 {} {}", g == sparq::Granularity::per_tensor ? "per-tensor" : "per-channel",
            method.name);
        quantized_row(m, name, nn::quantize_static(cal, {.weight_granularity = g}), spatial, x1,
                      x64, "");
      }
    }

    // The accuracy tools on per-tensor weights (where they matter): empirical
    // bias correction, and cross-layer equalization of the Linear/Conv ->
    // ReLU [-> pool] -> Linear/Conv pairs before calibration.
    {
      const sparq::ObserverConfig automatic{.kind = sparq::ObserverKind::histogram,
                                            .method = sparq::RangeMethod::automatic};
      nn::Calibrator cal = calibrate(fp32, calib, automatic);
      quantized_row(m, "static INT8 per-tensor automatic + bias correction",
                    nn::quantize_static(cal, {.weight_granularity = sparq::Granularity::per_tensor,
                                              .bias_correction = true}),
                    spatial, x1, x64, "mean output shift of the rounded weights removed");
      int pairs = 0;
      const nn::Sequential eq = nn::equalize_cross_layer(fp32, &pairs);
      nn::Calibrator cal_eq = calibrate(eq, calib, automatic);
      quantized_row(
          m, "static INT8 per-tensor automatic + CLE",
          nn::quantize_static(cal_eq, {.weight_granularity = sparq::Granularity::per_tensor}),
          spatial, x1, x64, fmt::format("{} layer pairs equalized", pairs));
      // AdaRound: floor or ceil of every weight learned on the calibration
      // images (the quantizer's scales stay), per-tensor and per-channel.
      for (auto g : {sparq::Granularity::per_tensor, sparq::Granularity::per_channel}) {
        const char* gran = g == sparq::Granularity::per_tensor ? "per-tensor" : "per-channel";
        std::vector<nn::AdaRoundLayer> layers;
        const auto t_ada = std::chrono::steady_clock::now();
        // --quick (CI, sanitizers included): a quarter of the steps.
        nn::AdaRoundOptions ada;
        if (opt_.quick) ada.iterations = 250;
        nn::QuantizedModel q = nn::adaround(nn::quantize_static(cal, {.weight_granularity = g}),
                                            fp32, {&calib, 1}, ada, &layers);
        std::string note =
            fmt::format("learned in {:.1f} s; calibration error per layer:", seconds_since(t_ada));
        for (const nn::AdaRoundLayer& l : layers) {
          note += fmt::format(" {} {:.3g} -> {:.3g} ({} of {} weights flipped);", l.name,
                              l.nearest_error, l.adaround_error, l.changed, l.weights);
        }
        quantized_row(m, fmt::format("static INT8 {} automatic + AdaRound", gran), std::move(q),
                      spatial, x1, x64, note);
      }
    }

    // PyTorch's default static recipe (get_default_qconfig("x86")),
    // reproduced observer by observer.
    {
      const nn::QConfig qc = nn::QConfig::pytorch_x86();
      nn::Calibrator cal = calibrate(fp32, calib, qc.calibration.observer);
      quantized_row(m, "static INT8 PyTorch x86 preset", nn::quantize_static(cal, qc.quantization),
                    spatial, x1, x64, "HistogramObserver(reduce_range) + per-channel weights");
    }

    // Quantization-aware fine-tuning: BatchNorm folded, fake-quant with the
    // straight-through estimator for one epoch, then static INT8 with the
    // ranges QAT learned.
    {
      Net qat = net.clone();
      qat.fold_batchnorm();
      enable_qat(qat, make_qat_hooks());
      t0 = std::chrono::steady_clock::now();
      train(qat, train_,
            {.epochs = plan_.qat_epochs,
             .batch = 128,
             .lr = lr * 0.05f,
             .seed = opt_.seed + 1,
             .label = m + " QAT"});
      const double qat_trainer_acc = accuracy(qat, test_);
      fmt::print("QAT: {} epoch in {:.1f} s; fake-quant test accuracy in the trainer {:.2f}%\n",
                 plan_.qat_epochs, seconds_since(t0), 100 * qat_trainer_acc);
      for (auto& layer : qat.layers) {
        if (auto* wl = dynamic_cast<WeightLayer*>(layer.get())) wl->qat.reset();
      }
      nn::Sequential qat_fp32 = export_and_import(qat, opt_.out / (ms + "_qat_fp32.safetensors"));
      nn::Calibrator cal = calibrate(qat_fp32, calib, methods[0].observer);
      nn::QuantizedModel q = nn::quantize_static(cal, {});
      const int changed = apply_qat_ranges(q, qat);
      quantized_row(
          m, "QAT INT8 per-channel", std::move(q), spatial, x1, x64,
          fmt::format("1 epoch fake-quant fine-tuning; {} layers use QAT ranges", changed));
    }

    // 2:4 with channel permutation, fine-tuned with the mask fixed, then
    // static INT8 on the sparse kernels.
    {
      Net sp = net.clone();
      const std::vector<PruneInfo> infos = prune_24(sp);
      int pruned = 0;
      for (const auto& i : infos) {
        if (i.pruned) {
          ++pruned;
          fmt::print(
              "2:4 layer {} {} [{} x {}]: retained |w| {:.1f}% without permutation, "
              "{:.1f}% with{}\n",
              i.layer, i.kind, i.outputs, i.inputs, 100 * i.identity_l1 / i.total_l1,
              100 * i.permuted_l1 / i.total_l1,
              i.permuted ? "" : " (first layer: inputs are pixels, not permuted)");
        } else {
          fmt::print("2:4 layer {} {} [{} x {}]: K = {} is not a multiple of 4, kept dense\n",
                     i.layer, i.kind, i.outputs, i.inputs, i.inputs);
        }
      }
      const double pruned_acc = accuracy(sp, test_);
      const int ft_epochs = m == "MLP" ? plan_.sparse_epochs_mlp : plan_.sparse_epochs_cnn;
      t0 = std::chrono::steady_clock::now();
      train(sp, train_,
            {.epochs = ft_epochs,
             .batch = 128,
             .lr = lr * 0.5f,
             .seed = opt_.seed + 2,
             .label = m + " 2:4 fine-tune"});
      fmt::print(
          "2:4: {:.2f}% right after pruning, {:.2f}% after {} epochs of fine-tuning "
          "({:.1f} s)\n",
          100 * pruned_acc, 100 * accuracy(sp, test_), ft_epochs, seconds_since(t0));
      const fs::path sp_file = opt_.out / (ms + "_sparse24_fp32.safetensors");
      nn::Sequential sp_fp32 = export_and_import(sp, sp_file);
      add_row(measure(m, "2:4 FP32 (fine-tuned)", fwd(sp_fp32),
                      predict(fwd(sp_fp32), test_, spatial), sp_fp32.weight_bytes(), x1, x64,
                      sp_file.filename().string(), "dense FP32 kernels, zeros stored"));
      nn::Calibrator cal = calibrate(sp_fp32, calib, methods[1].observer);
      nn::QuantizedModel q = nn::quantize_static(cal, {});
      const int sparse_units = use_sparse_kernels(q);
      int weighted_units = 0;
      for (const auto& u : q.units()) {
        weighted_units +=
            std::holds_alternative<nn::QLinear>(u.op) || std::holds_alternative<nn::QConv2d>(u.op);
      }
      const std::string note =
          sparse_units > 0 ? fmt::format(
                                 "{} of {} layers on the 2:4 sparse INT8 kernels ({} pruned), the "
                                 "rest dense INT8",
                                 sparse_units, weighted_units, pruned)
                           : std::string("NO layer runs on sparse kernels: dense INT8 kernels");
      quantized_row(m, "2:4 + static INT8 per-channel mse", std::move(q), spatial, x1, x64, note);
    }
  }

  // The graph-shaped models (graph_models.hpp): trained, exported, loaded
  // into an nn::Graph and quantized with the graph workflow.
  void run_graph_model(GraphNet net, float lr) {
    fmt::print("\n== {} ==\n", net.name);
    const nn::Tensor x1 = images_tensor(test_, 0, 1, true);
    const nn::Tensor x64 = images_tensor(test_, 0, std::min<int64_t>(64, test_.count), true);
    const GraphPlan gp{
        .epochs = plan_.graph_epochs, .qat_epochs = plan_.qat_epochs, .lr = lr, .seed = opt_.seed};
    for (const GraphVariant& v : graph_variants(net, train_, test_, calib_, opt_.out, gp)) {
      const ResultRow r = measure(net.name, v.variant, v.forward, predict(v.forward, test_, true),
                                  v.bytes, x1, x64, v.file, v.note);
      if (v.variant == "FP32") {
        fp32_acc_ = r.accuracy;
        fp32_row_ = r;
      }
      add_row(r);
    }
  }

  int finish() {
    // Targets.
    for (const auto& model : {"MLP", "CNN"}) {
      const ResultRow* base = find(model, "FP32");
      if (!base) continue;
      auto delta = [&](const std::string& variant) {
        const ResultRow* r = find(model, variant);
        return r ? r->delta_points : -1e9;
      };
      auto ratio = [&](const std::string& variant) {
        const ResultRow* r = find(model, variant);
        return r ? r->bytes_ratio : 1e9;
      };
      const std::string mm = model;
      if (opt_.quick) {
        // 6,000 training images, 1,000 test images: one point is 10 images,
        // so the bounds are wider than the full run's targets.
        check(mm + " FP32 accuracy >= 75%", base->accuracy >= 0.75,
              fmt::format("{:.2f}%", 100 * base->accuracy));
        check(mm + " dynamic INT8 within 1.0 point", delta("dynamic INT8") >= -1.0,
              fmt::format("{:+.2f}", delta("dynamic INT8")));
        const double best =
            std::max({delta("static INT8 per-channel minmax"), delta("static INT8 per-channel mse"),
                      delta("static INT8 per-channel entropy")});
        check(mm + " static INT8 per-channel (best calibration) within 1.0 point", best >= -1.0,
              fmt::format("{:+.2f}", best));
        for (const char* g : {"per-tensor", "per-channel"}) {
          for (const char* method : {"minmax", "mse", "entropy", "automatic"}) {
            const std::string v = fmt::format("static INT8 {} {}", g, method);
            check(mm + " " + v + " within 3 points", delta(v) >= -3.0,
                  fmt::format("{:+.2f}", delta(v)));
          }
        }
        check(mm + " QAT INT8 within 1.5 points", delta("QAT INT8 per-channel") >= -1.5,
              fmt::format("{:+.2f}", delta("QAT INT8 per-channel")));
        check(mm + " 2:4 + INT8 within 5 points",
              delta("2:4 + static INT8 per-channel mse") >= -5.0,
              fmt::format("{:+.2f}", delta("2:4 + static INT8 per-channel mse")));
      } else {
        check(
            mm + " static INT8 per-channel (best calibration) within 0.3 points",
            std::max({delta("static INT8 per-channel minmax"), delta("static INT8 per-channel mse"),
                      delta("static INT8 per-channel entropy")}) >= -0.3,
            fmt::format("minmax {:+.2f}, mse {:+.2f}, entropy {:+.2f}",
                        delta("static INT8 per-channel minmax"),
                        delta("static INT8 per-channel mse"),
                        delta("static INT8 per-channel entropy")));
        // The default (automatic) must not need the best-of-three search above.
        check(mm + " static INT8 per-channel automatic (the default) within 0.3 points",
              delta("static INT8 per-channel automatic") >= -0.3,
              fmt::format("{:+.2f}", delta("static INT8 per-channel automatic")));
        check(mm + " dynamic INT8 within 0.2 points", delta("dynamic INT8") >= -0.2,
              fmt::format("{:+.2f}", delta("dynamic INT8")));
        check(mm + " QAT INT8 within 0.1 points", delta("QAT INT8 per-channel") >= -0.1,
              fmt::format("{:+.2f}", delta("QAT INT8 per-channel")));
        check(mm + " 2:4 + INT8 within 1.0 point",
              delta("2:4 + static INT8 per-channel mse") >= -1.0,
              fmt::format("{:+.2f}", delta("2:4 + static INT8 per-channel mse")));
      }
      check(mm + " INT8 bytes <= 0.26x FP32", ratio("static INT8 per-channel mse") <= 0.26,
            fmt::format("{:.3f}x", ratio("static INT8 per-channel mse")));
      check(mm + " 2:4 + INT8 bytes <= 0.17x FP32",
            ratio("2:4 + static INT8 per-channel mse") <= 0.17,
            fmt::format("{:.3f}x", ratio("2:4 + static INT8 per-channel mse")));
    }
    // Issue 14's targets for the residual and depthwise-separable CNNs. The
    // per-tensor rows are reported, not gated: per-tensor weights are a
    // known failure with depthwise convolutions.
    for (const std::string mm : {"ResNet", "DSCNN"}) {
      if (!find(mm, "FP32")) continue;
      auto delta = [&](const std::string& variant) {
        const ResultRow* r = find(mm, variant);
        return r ? r->delta_points : -1e9;
      };
      // --quick: 1,000 test images (one point = 10 images), a short training.
      const double per_channel_bound = opt_.quick ? -1.0 : -0.3;
      const double qat_bound = opt_.quick ? -1.5 : -0.1;
      for (const char* v : {"static INT8 per-channel automatic", "dynamic INT8"}) {
        check(fmt::format("{} {} within {:.1f} points", mm, v, -per_channel_bound),
              delta(v) >= per_channel_bound, fmt::format("{:+.2f}", delta(v)));
      }
      check(fmt::format("{} QAT INT8 within {:.1f} points", mm, -qat_bound),
            delta("QAT INT8 per-channel") >= qat_bound,
            fmt::format("{:+.2f}", delta("QAT INT8 per-channel")));
      check(fmt::format("{} static INT8 per-tensor automatic within {:.1f} points (informative)",
                        mm, -per_channel_bound),
            delta("static INT8 per-tensor automatic") >= per_channel_bound,
            fmt::format("{:+.2f}", delta("static INT8 per-tensor automatic")), false);
    }
    if (const ResultRow* r = find("MLP", "static INT8 per-channel mse")) {
      // Timing on a shared CI machine is noise: --quick reports it only.
      check("MLP static INT8 batch-1 >= 2.5x faster than FP32", r->speedup1 >= 2.5,
            fmt::format("{:.2f}x{}", r->speedup1, opt_.quick ? " (informative in --quick)" : ""),
            !opt_.quick);
    }

    std::string preamble = fmt::format(
        "# Fashion-MNIST with sparq\n\n"
        "{} run: {} training images, {} test images, calibration on {} training images; "
        "latency = median wall time of one forward call on {} thread(s), ISA {}.\n\n",
        opt_.quick ? "Quick (--quick)" : "Full", train_.count, test_.count, plan_.calib_images,
        opt_.threads, sparq::isa_name(sparq::active_isa()));
    std::string checks_md = "\n## Checks\n\n";
    int failed = 0;
    for (const auto& c : checks_) {
      checks_md += fmt::format("- {} {}: {}\n", c.ok ? "[met]" : "[MISSED]", c.what, c.detail);
      failed += !c.ok && c.gating;
    }
    write_reports(opt_.out, rows_, preamble, checks_md + notes_md());
    fmt::print("\n{}\n{}", markdown_table(rows_), checks_md);
    fmt::print("\nreload checks: {} models saved and reloaded, {} with identical predictions\n",
               reloads_, reloads_ - reload_failures_);
    fmt::print("wrote {}/results.md, results.csv, accuracy_vs_latency.svg and the model files\n",
               opt_.out.string());
    if (reload_failures_ > 0) return 1;
    if ((opt_.quick || opt_.strict) && failed > 0) {
      fmt::print(stderr, "fashion_mnist: {} check(s) missed\n", failed);
      return 1;
    }
    return 0;
  }

 private:
  nn::Calibrator calibrate(const nn::Sequential& model, const nn::Tensor& calib,
                           const sparq::ObserverConfig& observer) {
    nn::Calibrator cal(model, {.observer = observer});
    // Batches of 100 images, as a data loader would feed them.
    const int64_t per = calib.numel() / calib.shape[0];
    for (int64_t first = 0; first < calib.shape[0]; first += 100) {
      const int64_t n = std::min<int64_t>(100, calib.shape[0] - first);
      std::vector<int64_t> shape = calib.shape;
      shape[0] = n;
      cal.observe(nn::Tensor(shape, std::vector<float>(calib.data.begin() + first * per,
                                                       calib.data.begin() + (first + n) * per)));
    }
    return cal;
  }

  void quantized_row(const std::string& m, const std::string& variant, nn::QuantizedModel q,
                     bool spatial, const nn::Tensor& x1, const nn::Tensor& x64,
                     const std::string& note) {
    auto f = [&q](const nn::Tensor& x) { return q.forward(x); };
    const std::vector<uint8_t> pred = predict(f, test_, spatial);
    // Save, reload, compare. nn::save knows only dense weights, so a model on
    // the sparse kernels is saved with its (pruned) int8 values in the dense
    // kind and switched back to the sparse kernels after loading.
    const fs::path file = opt_.out / (slug(m) + "_" + slug(variant) + ".safetensors");
    nn::QuantizedModel to_save = q;
    const int sparse = use_dense_kernels(to_save);
    nn::save(to_save, file);
    nn::QuantizedModel loaded = nn::load_quantized(file);
    if (sparse > 0) use_sparse_kernels(loaded);
    reload_check(
        m, variant, pred,
        predict([&loaded](const nn::Tensor& x) { return loaded.forward(x); }, test_, spatial));
    ResultRow row =
        measure(m, variant, f, pred, stored_bytes(q), x1, x64, file.filename().string(), note);
    row.kernel_bytes = q.weight_bytes();
    add_row(row);
  }

  ResultRow measure(const std::string& m, const std::string& variant, const Forward& f,
                    const std::vector<uint8_t>& pred, std::size_t bytes, const nn::Tensor& x1,
                    const nn::Tensor& x64, const std::string& file, const std::string& note) {
    ResultRow r;
    r.model = m;
    r.variant = variant;
    r.accuracy = accuracy_of(pred, test_);
    r.bytes = bytes;
    r.kernel_bytes = bytes;
    r.latency1_ms = median_latency_ms(f, x1, plan_.min_repeats, plan_.latency_budget_s);
    r.latency64_ms = median_latency_ms(f, x64, plan_.min_repeats, plan_.latency_budget_s);
    r.file = file;
    r.note = note;
    if (variant != "FP32") {
      r.delta_points = 100 * (r.accuracy - fp32_acc_);
      r.bytes_ratio = static_cast<double>(bytes) / static_cast<double>(fp32_row_.bytes);
      r.speedup1 = fp32_row_.latency1_ms / r.latency1_ms;
      r.speedup64 = fp32_row_.latency64_ms / r.latency64_ms;
    }
    return r;
  }

  void add_row(const ResultRow& r) {
    fmt::print(
        "  {:<4} {:<38} acc {:6.2f}% ({:+.2f})  {:>8} B ({:.3f}x)  b1 {:.4f} ms ({:.2f}x)  "
        "b64 {:.3f} ms ({:.2f}x)\n",
        r.model, r.variant, 100 * r.accuracy, r.delta_points, r.bytes, r.bytes_ratio, r.latency1_ms,
        r.speedup1, r.latency64_ms, r.speedup64);
    if (!r.note.empty()) fmt::print("       note: {}\n", r.note);
    rows_.push_back(r);
  }

  void reload_check(const std::string& m, const std::string& variant, const std::vector<uint8_t>& a,
                    const std::vector<uint8_t>& b) {
    int64_t same = 0;
    for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
    const bool ok = same == static_cast<int64_t>(a.size()) && a.size() == b.size();
    fmt::print("  reload check {} {}: {} ({}/{} predictions identical)\n", m, variant,
               ok ? "identical" : "MISMATCH", same, a.size());
    ++reloads_;
    reload_failures_ += !ok;
  }

  void check(const std::string& what, bool ok, const std::string& detail, bool gating = true) {
    checks_.push_back({what, ok, detail, gating});
  }

  const ResultRow* find(const std::string& model, const std::string& variant) const {
    for (const auto& r : rows_) {
      if (r.model == model && r.variant == variant) return &r;
    }
    return nullptr;
  }

  std::string notes_md() const {
    std::string s = "\n## Notes\n\n";
    for (const auto& r : rows_) {
      if (!r.note.empty()) s += fmt::format("- {} {}: {}\n", r.model, r.variant, r.note);
    }
    return s;
  }

  Options opt_;
  Plan plan_;
  Dataset train_, test_;
  std::vector<int64_t> calib_;
  std::vector<ResultRow> rows_;
  std::vector<Check> checks_;
  double fp32_acc_ = 0;
  ResultRow fp32_row_;
  int reloads_ = 0, reload_failures_ = 0;
};

int usage(const char* argv0) {
  fmt::print(stderr,
             "usage: {} [--quick] [--strict] [--out DIR] [--data DIR] [--threads N] [--seed N]\n",
             argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "fashion_mnist: {} needs a value\n", a);
        std::exit(usage(argv[0]));
      }
      return argv[++i];
    };
    if (a == "--quick")
      opt.quick = true;
    else if (a == "--strict")
      opt.strict = true;
    else if (a == "--out")
      opt.out = value();
    else if (a == "--data")
      opt.data = value();
    else if (a == "--threads")
      opt.threads = std::stoi(value());
    else if (a == "--seed")
      opt.seed = std::stoull(value());
    else if (a == "--help" || a == "-h")
      return usage(argv[0]), 0;
    else {
      fmt::print(stderr, "fashion_mnist: unknown argument '{}'\n", a);
      return usage(argv[0]);
    }
  }
  try {
    // One thread by default: the timings are per core and stay stable on a
    // shared machine (OpenMP threads that wait for a busy core make small
    // matrix products many times slower).
    Eigen::setNbThreads(opt.threads);
    sparq::set_num_threads(opt.threads);
    fs::create_directories(opt.out);
    const auto t0 = std::chrono::steady_clock::now();
    Dataset train = load_fashion_mnist(opt.data, "train");
    Dataset test = load_fashion_mnist(opt.data, "t10k");
    const Plan plan = plan_for(opt);
    train = train.head(plan.train_images);
    test = test.head(plan.test_images);
    fmt::print("Fashion-MNIST from {}: {} training / {} test images; sparq ISA {}; {} thread(s)\n",
               opt.data.string(), train.count, test.count, sparq::isa_name(sparq::active_isa()),
               opt.threads);
    Demo demo(opt, std::move(train), std::move(test));
    demo.run_model(make_mlp(opt.seed), 1e-3f);
    demo.run_model(make_cnn(opt.seed), 2e-3f);
    demo.run_graph_model(make_resnet(opt.seed), 2e-3f);
    demo.run_graph_model(make_dscnn(opt.seed), 2e-3f);
    const int rc = demo.finish();
    fmt::print("total time {:.1f} s\n", seconds_since(t0));
    return rc;
  } catch (const std::exception& e) {
    fmt::print(stderr, "fashion_mnist: error: {}\n", e.what());
    return 1;
  }
}
