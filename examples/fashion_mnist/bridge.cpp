#include "bridge.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "sparq/error.hpp"
#include "sparq/gemm/sparse_gemm.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/sparse/compressed.hpp"
#include "sparq/sparse/mask.hpp"
#include "sparq/sparse/permutation.hpp"

namespace fashion {

using sparq::detail::fail;

// ------------------------------------------------------------ weights in

nn::Sequential sparq_architecture(const Net& net) {
  nn::Sequential model;
  for (const auto& layer : net.layers) {
    const Layer* l = layer.get();
    if (const auto* lin = dynamic_cast<const Linear*>(l)) {
      model.add(nn::Linear(lin->weight.value.cols(), lin->weight.value.rows()));
    } else if (const auto* conv = dynamic_cast<const Conv2d*>(l)) {
      const int64_t p = conv->padding();
      model.add(nn::Conv2d(conv->in_shape().c, conv->out_features(), conv->kernel(),
                           {.padding = {p, p}}));
    } else if (const auto* bn = dynamic_cast<const BatchNorm*>(l)) {
      model.add(nn::BatchNorm(bn->gamma.value.cols(), bn->eps));
    } else if (l->kind() == "ReLU") {
      model.add(nn::ReLU());
    } else if (l->kind() == "MaxPool2d") {
      model.add(nn::MaxPool2d(2));
    } else if (l->kind() == "Flatten") {
      model.add(nn::Flatten());
    } else {
      fail("sparq_architecture: layer kind '{}' has no sparq counterpart", l->kind());
    }
  }
  return model;
}

nn::TensorMap to_tensor_map(const StateDict& sd) {
  nn::TensorMap out;
  for (const auto& [name, t] : sd) out.emplace(name, nn::Tensor(t.shape, t.data));
  return out;
}

nn::Sequential export_and_import(const Net& net, const std::filesystem::path& file) {
  nn::save_safetensors(file, to_tensor_map(net.state_dict()),
                       {{"producer", "sparq examples/fashion_mnist"}, {"model", net.name}});
  nn::Sequential model = sparq_architecture(net);
  nn::load_weights(model, file);
  return model;
}

// ------------------------------------------------------------ evaluation

nn::Tensor images_tensor(const Dataset& data, int64_t first, int64_t n, bool spatial) {
  std::vector<int64_t> idx(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = first + i;
  return images_tensor(data, idx, spatial);
}

nn::Tensor images_tensor(const Dataset& data, const std::vector<int64_t>& indices, bool spatial) {
  const auto n = static_cast<int64_t>(indices.size());
  const int64_t px = data.pixels();
  std::vector<float> v(static_cast<std::size_t>(n * px));
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* src = data.images.data() + indices[static_cast<std::size_t>(r)] * px;
    for (int64_t j = 0; j < px; ++j)
      v[static_cast<std::size_t>(r * px + j)] = src[j] * (1.0f / 255);
  }
  std::vector<int64_t> shape =
      spatial ? std::vector<int64_t>{n, data.rows, data.cols, 1} : std::vector<int64_t>{n, px};
  return nn::Tensor(std::move(shape), std::move(v));
}

std::vector<uint8_t> predict(const Forward& f, const Dataset& data, bool spatial) {
  std::vector<uint8_t> out(static_cast<std::size_t>(data.count));
  const int64_t chunk = 500;
  for (int64_t first = 0; first < data.count; first += chunk) {
    const int64_t n = std::min(chunk, data.count - first);
    const nn::Tensor y = f(images_tensor(data, first, n, spatial));
    const int64_t classes = y.numel() / n;
    for (int64_t r = 0; r < n; ++r) {
      const float* row = y.data.data() + r * classes;
      out[static_cast<std::size_t>(first + r)] =
          static_cast<uint8_t>(std::max_element(row, row + classes) - row);
    }
  }
  return out;
}

double accuracy_of(const std::vector<uint8_t>& predictions, const Dataset& data) {
  int64_t correct = 0;
  for (int64_t i = 0; i < data.count; ++i) {
    correct += predictions[static_cast<std::size_t>(i)] == data.labels[static_cast<std::size_t>(i)];
  }
  return static_cast<double>(correct) / static_cast<double>(data.count);
}

double median_latency_ms(const Forward& f, const nn::Tensor& x, int min_repeats,
                         double budget_seconds) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) f(x);  // warm caches and lazily packed buffers
  std::vector<double> times;
  const auto start = clock::now();
  while (static_cast<int>(times.size()) < min_repeats ||
         (std::chrono::duration<double>(clock::now() - start).count() < budget_seconds &&
          times.size() < 2000)) {
    const auto t0 = clock::now();
    const nn::Tensor y = f(x);
    times.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    if (y.empty()) fail("median_latency_ms: the model returned an empty tensor");
  }
  std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2),
                   times.end());
  return times[times.size() / 2];
}

// ------------------------------------------------------------ QAT

std::shared_ptr<const QatHooks> make_qat_hooks() {
  auto hooks = std::make_shared<QatHooks>();
  hooks->weights = [](Mat& w) {
    const int64_t rows = w.rows(), cols = w.cols();
    std::vector<float> mins(static_cast<std::size_t>(rows)), maxs(mins.size());
    for (int64_t r = 0; r < rows; ++r) {
      mins[static_cast<std::size_t>(r)] = std::min(0.0f, w.row(r).minCoeff());
      maxs[static_cast<std::size_t>(r)] = std::max(0.0f, w.row(r).maxCoeff());
    }
    sparq::QuantSpec spec;
    spec.dtype = sparq::DType::s8;
    spec.scheme = sparq::Scheme::symmetric;
    spec.granularity = sparq::Granularity::per_channel;
    spec.axis = 0;
    const sparq::ChannelQParams qp = sparq::compute_qparams(mins, maxs, spec);
    Mat out(rows, cols);
    const int64_t shape[2] = {rows, cols};
    sparq::fake_quantize(std::span<const float>(w.data(), static_cast<std::size_t>(w.size())),
                         shape, spec, qp,
                         std::span<float>(out.data(), static_cast<std::size_t>(out.size())));
    w = std::move(out);
  };
  hooks->activations = [](Mat& x, float lo, float hi) {
    sparq::QuantSpec spec;
    spec.dtype = sparq::DType::u8;
    spec.scheme = sparq::Scheme::asymmetric;
    const sparq::QParams qp = sparq::compute_qparams(lo, hi, spec);
    Mat out(x.rows(), x.cols());
    const int64_t shape[1] = {x.size()};
    sparq::fake_quantize(std::span<const float>(x.data(), static_cast<std::size_t>(x.size())),
                         shape, spec, qp,
                         std::span<float>(out.data(), static_cast<std::size_t>(out.size())));
    x = std::move(out);
  };
  return hooks;
}

void enable_qat(Net& net, const std::shared_ptr<const QatHooks>& hooks) {
  for (auto& layer : net.layers) {
    if (auto* wl = dynamic_cast<WeightLayer*>(layer.get())) {
      wl->qat = hooks;
      wl->act_range_set = false;
    }
  }
}

int apply_qat_ranges(nn::QuantizedModel& q, const Net& qat_net) {
  sparq::QuantSpec spec;
  spec.dtype = sparq::DType::u8;
  spec.scheme = sparq::Scheme::asymmetric;
  auto input_qparams_of = [&](const std::string& unit_name) -> std::optional<sparq::QParams> {
    const auto index = static_cast<std::size_t>(std::stoll(unit_name));
    if (index >= qat_net.layers.size()) return std::nullopt;
    const auto* wl = dynamic_cast<const WeightLayer*>(qat_net.layers[index].get());
    if (!wl || !wl->act_range_set) return std::nullopt;
    return sparq::compute_qparams(wl->act_lo, wl->act_hi, spec);
  };
  auto& units = q.units();
  int changed = 0;
  for (std::size_t i = 0; i < units.size(); ++i) {
    auto set = [&](auto& layer) {
      if (layer.mode != nn::QuantMode::static_) return;
      if (auto in = input_qparams_of(units[i].name)) layer.input_qparams = *in;
      for (std::size_t j = i + 1; j < units.size(); ++j) {
        const bool weighted = std::holds_alternative<nn::QLinear>(units[j].op) ||
                              std::holds_alternative<nn::QConv2d>(units[j].op);
        if (!weighted) {
          if (std::holds_alternative<nn::Fp32Block>(units[j].op)) break;
          continue;  // MaxPool2d / Flatten keep their input's qparams
        }
        if (auto out = input_qparams_of(units[j].name)) layer.output_qparams = *out;
        break;
      }
      layer.prepare();
      ++changed;
    };
    if (auto* l = std::get_if<nn::QLinear>(&units[i].op)) set(*l);
    if (auto* c = std::get_if<nn::QConv2d>(&units[i].op)) set(*c);
  }
  return changed;
}

// ------------------------------------------------------------ 2:4 pruning

namespace {

// Permutes the rows (output channels) of a weight layer and the per-channel
// parameters of the BatchNorms between it and the next weight layer.
void permute_outputs(Net& net, std::size_t layer, std::size_t until,
                     const std::vector<int64_t>& perm) {
  auto permute_rows = [&](Mat& m) {
    const Mat old = m;
    for (std::size_t j = 0; j < perm.size(); ++j) {
      m.row(static_cast<int64_t>(j)) = old.row(perm[j]);
    }
  };
  auto permute_cols = [&](Mat& m) {
    const Mat old = m;
    for (std::size_t j = 0; j < perm.size(); ++j) {
      m.col(static_cast<int64_t>(j)) = old.col(perm[j]);
    }
  };
  auto* wl = dynamic_cast<WeightLayer*>(net.layers[layer].get());
  permute_rows(wl->weight.value);
  permute_cols(wl->bias.value);
  for (std::size_t i = layer + 1; i < until; ++i) {
    if (auto* bn = dynamic_cast<BatchNorm*>(net.layers[i].get())) {
      for (Param* p : bn->params()) permute_cols(p->value);
    }
  }
}

}  // namespace

std::vector<PruneInfo> prune_24(Net& net) {
  std::vector<std::size_t> weighted;
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    if (dynamic_cast<WeightLayer*>(net.layers[i].get())) weighted.push_back(i);
  }
  std::vector<PruneInfo> infos;
  // Pass 1: permutations (a layer's rows may be permuted by the next layer's
  // search, so masks are computed only once every permutation is applied).
  for (std::size_t w = 0; w < weighted.size(); ++w) {
    auto* wl = dynamic_cast<WeightLayer*>(net.layers[weighted[w]].get());
    Mat& W = wl->weight.value;
    PruneInfo info;
    info.layer = static_cast<int64_t>(weighted[w]);
    info.kind = wl->kind();
    info.outputs = W.rows();
    info.inputs = W.cols();
    info.pruned = W.cols() % 4 == 0;
    if (info.pruned && w > 0) {
      // The K inputs are [spatial positions][C channels] with C the output
      // channels of the previous weight layer (Conv2d: kh x kw positions;
      // Linear after Flatten: h x w positions; plain Linear: 1). Permuting
      // channels permutes every position's group alike, so the search runs
      // on the view [out * positions][C].
      auto* prev = dynamic_cast<WeightLayer*>(net.layers[weighted[w - 1]].get());
      const int64_t c = prev->out_features();
      if (c % 4 == 0 && W.cols() % c == 0) {
        const int64_t positions = W.cols() / c;
        const sparq::WeightShape view{W.rows() * positions, c};
        sparq::PermutationOptions opts;
        opts.max_sweeps = 20;
        const sparq::PermutationResult r = sparq::search_permutation(
            std::span<const float>(W.data(), static_cast<std::size_t>(W.size())), view, opts);
        info.identity_l1 = r.identity_l1;
        info.permuted_l1 = r.permuted_l1;
        info.total_l1 = r.total_l1;
        // Columns of this layer: new channel j at every position = old perm[j].
        const Mat old = W;
        for (int64_t o = 0; o < W.rows(); ++o) {
          for (int64_t p = 0; p < positions; ++p) {
            for (int64_t j = 0; j < c; ++j) {
              W(o, p * c + j) = old(o, p * c + r.permutation[static_cast<std::size_t>(j)]);
            }
          }
        }
        permute_outputs(net, weighted[w - 1], weighted[w], r.permutation);
        info.permuted = true;
      }
    }
    infos.push_back(info);
  }
  // Pass 2: 2:4 magnitude masks along K, fixed from here on.
  for (std::size_t w = 0; w < weighted.size(); ++w) {
    PruneInfo& info = infos[w];
    if (!info.pruned) continue;
    auto* wl = dynamic_cast<WeightLayer*>(net.layers[weighted[w]].get());
    Mat& W = wl->weight.value;
    const sparq::WeightShape shape{W.rows(), W.cols()};
    const std::span<const float> wspan(W.data(), static_cast<std::size_t>(W.size()));
    if (!info.permuted) {
      info.identity_l1 = info.permuted_l1 = sparq::retained_l1(wspan, shape);
      info.total_l1 = W.cwiseAbs().sum();
    }
    const sparq::SparseMask mask = sparq::nm_mask(wspan, shape);
    wl->weight.mask.resize(W.rows(), W.cols());
    for (int64_t i = 0; i < W.size(); ++i) {
      wl->weight.mask.data()[i] = mask.keep[static_cast<std::size_t>(i)] ? 1.0f : 0.0f;
    }
    W.array() *= wl->weight.mask.array();
  }
  return infos;
}

// ------------------------------------------------------------ sparse kernels

namespace {

class Sparse24Weights final : public nn::QuantizedWeights {
 public:
  explicit Sparse24Weights(const nn::QuantizedWeights& dense)
      : values_(dense.values().begin(), dense.values().end()),
        scales_(dense.scales().begin(), dense.scales().end()),
        n_(dense.n()),
        k_(dense.k()),
        per_channel_(dense.per_channel()) {
    const sparq::CompressedNM<int8_t> c =
        sparq::compress(std::span<const int8_t>(values_), sparq::WeightShape{n_, k_});
    packed_ =
        sparq::pack_sparse_weights(c, per_channel_ ? std::span<const float>(scales_)
                                                   : std::span<const float>(scales_).first(1));
  }
  std::string kind() const override { return "sparse24"; }
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  std::span<const float> scales() const noexcept override { return scales_; }
  bool per_channel() const noexcept override { return per_channel_; }
  std::span<const int8_t> values() const noexcept override { return values_; }
  std::size_t bytes() const noexcept override { return packed_.packed_bytes(); }
  void gemm(const sparq::ActivationsU8& a, const sparq::RequantizeStage& stage, uint8_t* c,
            int64_t ldc) const override {
    sparq::gemm(a, packed_, stage, c, ldc);
  }
  void gemm(const sparq::ActivationsU8& a, const sparq::DequantizeStage& stage, float* c,
            int64_t ldc) const override {
    sparq::gemm(a, packed_, stage, c, ldc);
  }
  void gemm(const sparq::ActivationsU8& a, int32_t* c, int64_t ldc) const override {
    sparq::gemm(a, packed_, sparq::Int32Output{}, c, ldc);
  }
  // Dynamic quantization on the sparse GEMM: the input is quantized to u8
  // over its own range (per call or per row), as sparq::linear_dynamic does.
  void linear_dynamic(const float* x, int64_t m, int64_t ldx, std::span<const float> bias, float* y,
                      int64_t ldy, const sparq::DynamicOptions& options) const override {
    if (ldx == 0) ldx = k_;
    if (ldy == 0) ldy = n_;
    sparq::QuantSpec spec;
    spec.dtype = sparq::DType::u8;
    spec.scheme = sparq::Scheme::asymmetric;
    const int64_t rows_per_block = options.per_row ? 1 : m;
    std::vector<uint8_t> q(static_cast<std::size_t>(rows_per_block * k_));
    for (int64_t r0 = 0; r0 < m; r0 += rows_per_block) {
      float lo = 0.0f, hi = 0.0f;
      for (int64_t r = r0; r < r0 + rows_per_block; ++r) {
        for (int64_t j = 0; j < k_; ++j) {
          lo = std::min(lo, x[r * ldx + j]);
          hi = std::max(hi, x[r * ldx + j]);
        }
      }
      const sparq::QParams qp = sparq::compute_qparams(lo, hi, spec);
      for (int64_t r = r0; r < r0 + rows_per_block; ++r) {
        const int64_t shape[1] = {k_};
        sparq::quantize(std::span<const float>(x + r * ldx, static_cast<std::size_t>(k_)), shape,
                        spec, qp,
                        std::span<uint8_t>(q.data() + (r - r0) * k_, static_cast<std::size_t>(k_)));
      }
      sparq::DequantizeStage stage;
      stage.activation_scale = qp.scale;
      stage.bias.assign(bias.begin(), bias.end());
      stage.relu = options.relu;
      const sparq::ActivationsU8 a{q.data(), rows_per_block, k_, k_, qp.zero_point};
      sparq::gemm(a, packed_, stage, y + r0 * ldy, ldy,
                  sparq::SparseGemmOptions{.threads = options.threads});
    }
  }

 private:
  std::vector<int8_t> values_;
  std::vector<float> scales_;
  int64_t n_, k_;
  bool per_channel_;
  sparq::PackedSparseWeights packed_;
};

bool satisfies_24(const nn::QuantizedWeights& w) {
  if (w.k() % 4 != 0) return false;
  const auto v = w.values();
  for (int64_t i = 0; i < w.n() * w.k(); i += 4) {
    int nz = 0;
    for (int j = 0; j < 4; ++j) nz += v[static_cast<std::size_t>(i + j)] != 0;
    if (nz > 2) return false;
  }
  return true;
}

template <class Fn>
int for_each_weights(nn::QuantizedModel& q, Fn&& fn) {
  int changed = 0;
  for (auto& unit : q.units()) {
    if (auto* l = std::get_if<nn::QLinear>(&unit.op)) {
      if (fn(l->weights)) {
        l->prepare();
        ++changed;
      }
    } else if (auto* c = std::get_if<nn::QConv2d>(&unit.op)) {
      bool any = false;
      for (auto& g : c->weights) any = fn(g) || any;
      if (any) {
        c->prepare();
        ++changed;
      }
    }
  }
  return changed;
}

}  // namespace

std::shared_ptr<const nn::QuantizedWeights> make_sparse24_weights(
    const nn::QuantizedWeights& dense) {
  if (!satisfies_24(dense)) {
    fail(
        "make_sparse24_weights: {} x {} weights do not satisfy 2:4 along K (expected at most 2 "
        "non-zeros in every group of 4 and K % 4 == 0)",
        dense.n(), dense.k());
  }
  return std::make_shared<const Sparse24Weights>(dense);
}

int use_sparse_kernels(nn::QuantizedModel& q) {
  return for_each_weights(q, [](std::shared_ptr<const nn::QuantizedWeights>& w) {
    if (w->kind() != "dense" || !satisfies_24(*w)) return false;
    w = make_sparse24_weights(*w);
    return true;
  });
}

int use_dense_kernels(nn::QuantizedModel& q) {
  return for_each_weights(q, [](std::shared_ptr<const nn::QuantizedWeights>& w) {
    if (w->kind() == "dense") return false;
    const auto s = w->scales();
    std::vector<float> scales =
        w->per_channel() ? std::vector<float>(s.begin(), s.end()) : std::vector<float>{s[0]};
    w = nn::make_dense_weights(std::vector<int8_t>(w->values().begin(), w->values().end()), w->n(),
                               w->k(), std::move(scales));
    return true;
  });
}

std::size_t stored_bytes(const nn::QuantizedModel& q) {
  auto weights_bytes = [](const nn::QuantizedWeights& w) -> std::size_t {
    const auto n = static_cast<std::size_t>(w.n()), k = static_cast<std::size_t>(w.k());
    const std::size_t values = w.kind() == "sparse24" ? n * (k / 2 + k / 8) : n * k;
    return values + 4 * (w.per_channel() ? n : 1);
  };
  std::size_t total = 0;
  for (const auto& unit : q.units()) {
    if (const auto* l = std::get_if<nn::QLinear>(&unit.op)) {
      total += weights_bytes(*l->weights) + 4 * l->bias.size();
      if (l->mode == nn::QuantMode::static_) total += 16;
    } else if (const auto* c = std::get_if<nn::QConv2d>(&unit.op)) {
      for (const auto& g : c->weights) total += weights_bytes(*g);
      total += 4 * c->bias.size();
      if (c->mode == nn::QuantMode::static_) total += 16;
    } else if (const auto* b = std::get_if<nn::Fp32Block>(&unit.op)) {
      nn::Sequential s;
      for (const auto& layer : b->layers) s.add(layer);
      total += s.weight_bytes();
    }
  }
  return total;
}

}  // namespace fashion
