#include "train.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "sparq/error.hpp"

namespace fashion {

using sparq::detail::fail;

Param make_param(std::string name, std::vector<int64_t> shape, int64_t rows, int64_t cols,
                 bool trainable) {
  Param p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.value = Mat::Zero(rows, cols);
  p.trainable = trainable;
  return p;
}

// He-uniform initialisation (bound sqrt(6 / fan_in)): suits ReLU networks
// and trains these small nets a little faster than PyTorch's default.
void he_uniform(Mat& w, int64_t fan_in, std::mt19937& rng) {
  const float bound = std::sqrt(6.0f / static_cast<float>(fan_in));
  std::uniform_real_distribution<float> dist(-bound, bound);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = dist(rng);
}

namespace {

bool stderr_is_tty() { return ::isatty(2) == 1; }

}  // namespace

// ------------------------------------------------------------ WeightLayer

Mat WeightLayer::prepare_input(const Mat& x, bool train) {
  if (!qat || !qat->activations) {
    input_pass_.resize(0, 0);
    return x;
  }
  if (train) {
    const float lo = std::min(0.0f, x.minCoeff());
    const float hi = std::max(0.0f, x.maxCoeff());
    if (!act_range_set) {
      act_lo = lo;
      act_hi = hi;
      act_range_set = true;
    } else {
      act_lo += 0.01f * (lo - act_lo);
      act_hi += 0.01f * (hi - act_hi);
    }
  }
  if (!act_range_set) {
    input_pass_.resize(0, 0);
    return x;
  }
  // Straight-through estimator: the gradient passes the rounding unchanged
  // and is zero where the value was clamped to the range.
  if (train) {
    input_pass_ = ((x.array() >= act_lo) && (x.array() <= act_hi)).cast<float>().matrix();
  }
  Mat xq = x;
  qat->activations(xq, act_lo, act_hi);
  return xq;
}

const Mat& WeightLayer::effective_weight() {
  if (!qat || !qat->weights) return weight.value;
  wq_ = weight.value;
  qat->weights(wq_);
  return wq_;
}

Mat WeightLayer::affine(const Mat& x) {
  const Mat& w = effective_weight();
  Mat y(x.rows(), w.rows());
  y.noalias() = x * w.transpose();
  y.rowwise() += bias.value.row(0);
  return y;
}

Mat WeightLayer::affine_backward(const Mat& dy, const Mat& x) {
  weight.grad.noalias() += dy.transpose() * x;
  bias.grad += dy.colwise().sum();
  // The straight-through estimator: dL/dx uses the fake-quantized weights
  // the forward pass used, dL/dW passes the rounding unchanged.
  const Mat& w = (qat && qat->weights) ? wq_ : weight.value;
  Mat dx(dy.rows(), w.cols());
  dx.noalias() = dy * w;
  return dx;
}

// ------------------------------------------------------------ Linear

Linear::Linear(int64_t in, int64_t out, std::mt19937& rng) {
  weight = make_param("weight", {out, in}, out, in);
  bias = make_param("bias", {out}, 1, out);
  he_uniform(weight.value, in, rng);
}

Mat Linear::forward(const Mat& x, bool train) {
  if (x.cols() != weight.value.cols()) {
    fail("Linear::forward: input has {} features (expected {})", x.cols(), weight.value.cols());
  }
  x_ = prepare_input(x, train);
  return affine(x_);
}

Mat Linear::backward(const Mat& dy) {
  Mat dx = affine_backward(dy, x_);
  if (input_pass_.size() != 0) dx.array() *= input_pass_.array();
  return dx;
}

// ------------------------------------------------------------ Conv2d

Conv2d::Conv2d(Shape3 in, int64_t out_channels, int64_t kernel, int64_t padding, std::mt19937& rng)
    : in_(in), k_(kernel), pad_(padding) {
  if (2 * padding != kernel - 1) {
    fail("Conv2d: padding {} with kernel {} (expected 'same' padding, (kernel - 1) / 2)", padding,
         kernel);
  }
  const int64_t fan_in = kernel * kernel * in.c;
  weight = make_param("weight", {out_channels, kernel, kernel, in.c}, out_channels, fan_in);
  bias = make_param("bias", {out_channels}, 1, out_channels);
  he_uniform(weight.value, fan_in, rng);
}

Mat Conv2d::forward(const Mat& x, bool train) {
  if (x.cols() != in_.c || x.rows() % (in_.h * in_.w) != 0) {
    fail("Conv2d::forward: input is {} x {} (expected batch*{}*{} rows of {} channels)", x.rows(),
         x.cols(), in_.h, in_.w, in_.c);
  }
  const Mat xin = prepare_input(x, train);
  const int64_t batch = x.rows() / (in_.h * in_.w);
  const int64_t kk = k_ * k_ * in_.c;
  // im2col: one row per output pixel, columns ordered (kh, kw, c) like the
  // weight's [out][kh][kw][in] layout.
  cols_.resize(batch * in_.h * in_.w, kk);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oh = 0; oh < in_.h; ++oh) {
      for (int64_t ow = 0; ow < in_.w; ++ow) {
        float* dst = cols_.data() + ((b * in_.h + oh) * in_.w + ow) * kk;
        for (int64_t kh = 0; kh < k_; ++kh) {
          const int64_t ih = oh + kh - pad_;
          for (int64_t kw = 0; kw < k_; ++kw, dst += in_.c) {
            const int64_t iw = ow + kw - pad_;
            if (ih < 0 || ih >= in_.h || iw < 0 || iw >= in_.w) {
              std::fill(dst, dst + in_.c, 0.0f);
            } else {
              const float* src = xin.data() + ((b * in_.h + ih) * in_.w + iw) * in_.c;
              std::copy(src, src + in_.c, dst);
            }
          }
        }
      }
    }
  }
  return affine(cols_);
}

Mat Conv2d::backward(const Mat& dy) {
  const Mat dcols = affine_backward(dy, cols_);
  const int64_t batch = dy.rows() / (in_.h * in_.w);
  const int64_t kk = k_ * k_ * in_.c;
  Mat dx = Mat::Zero(dy.rows(), in_.c);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oh = 0; oh < in_.h; ++oh) {
      for (int64_t ow = 0; ow < in_.w; ++ow) {
        const float* src = dcols.data() + ((b * in_.h + oh) * in_.w + ow) * kk;
        for (int64_t kh = 0; kh < k_; ++kh) {
          const int64_t ih = oh + kh - pad_;
          for (int64_t kw = 0; kw < k_; ++kw, src += in_.c) {
            const int64_t iw = ow + kw - pad_;
            if (ih < 0 || ih >= in_.h || iw < 0 || iw >= in_.w) continue;
            float* dst = dx.data() + ((b * in_.h + ih) * in_.w + iw) * in_.c;
            for (int64_t c = 0; c < in_.c; ++c) dst[c] += src[c];
          }
        }
      }
    }
  }
  if (input_pass_.size() != 0) dx.array() *= input_pass_.array();
  return dx;
}

// ------------------------------------------------------------ BatchNorm

BatchNorm::BatchNorm(int64_t channels, bool two_d) : two_d_(two_d) {
  gamma = make_param("weight", {channels}, 1, channels);
  gamma.value.setOnes();
  beta = make_param("bias", {channels}, 1, channels);
  running_mean = make_param("running_mean", {channels}, 1, channels, false);
  running_var = make_param("running_var", {channels}, 1, channels, false);
  running_var.value.setOnes();
}

Mat BatchNorm::forward(const Mat& x, bool train) {
  if (x.cols() != gamma.value.cols()) {
    fail("BatchNorm::forward: input has {} channels (expected {})", x.cols(), gamma.value.cols());
  }
  const auto n = static_cast<float>(x.rows());
  if (train) {
    const Eigen::RowVectorXf mean = x.colwise().mean();
    Mat xc = x.rowwise() - mean;
    const Eigen::RowVectorXf var = xc.array().square().colwise().sum().matrix() / n;
    inv_std_ = (var.array() + eps).rsqrt().matrix();
    xhat_ = (xc.array().rowwise() * inv_std_.array()).matrix();
    running_mean.value = (1 - momentum) * running_mean.value + momentum * mean;
    // PyTorch keeps the unbiased variance in running_var.
    running_var.value =
        (1 - momentum) * running_var.value + momentum * var * (n / std::max(1.0f, n - 1));
    Mat y = (xhat_.array().rowwise() * gamma.value.row(0).array()).matrix();
    y.rowwise() += beta.value.row(0);
    return y;
  }
  const Eigen::RowVectorXf inv = (running_var.value.row(0).array() + eps).rsqrt().matrix();
  const Eigen::RowVectorXf scale = inv.cwiseProduct(gamma.value.row(0));
  const Eigen::RowVectorXf shift =
      beta.value.row(0) - running_mean.value.row(0).cwiseProduct(scale);
  Mat y = (x.array().rowwise() * scale.array()).matrix();
  y.rowwise() += shift;
  return y;
}

Mat BatchNorm::backward(const Mat& dy) {
  const auto n = static_cast<float>(dy.rows());
  gamma.grad += dy.cwiseProduct(xhat_).colwise().sum();
  beta.grad += dy.colwise().sum();
  const Mat dxhat = (dy.array().rowwise() * gamma.value.row(0).array()).matrix();
  const Eigen::RowVectorXf sum1 = dxhat.colwise().sum();
  const Eigen::RowVectorXf sum2 = dxhat.cwiseProduct(xhat_).colwise().sum();
  Mat dx = (dxhat * n).rowwise() - sum1;
  dx -= (xhat_.array().rowwise() * sum2.array()).matrix();
  dx = (dx.array().rowwise() * (inv_std_.array() / n)).matrix();
  return dx;
}

// ------------------------------------------------------------ ReLU / pool / flatten

Mat ReLU::forward(const Mat& x, bool train) {
  if (train) pass_ = (x.array() > 0.0f).cast<float>().matrix();
  return x.cwiseMax(0.0f);
}

Mat ReLU::backward(const Mat& dy) { return dy.cwiseProduct(pass_); }

MaxPool2d::MaxPool2d(Shape3 in) : in_(in) {
  if (in.h % 2 != 0 || in.w % 2 != 0) {
    fail("MaxPool2d: input {}x{} (expected even height and width)", in.h, in.w);
  }
}

Mat MaxPool2d::forward(const Mat& x, bool train) {
  const int64_t batch = x.rows() / (in_.h * in_.w);
  const int64_t oh_n = in_.h / 2, ow_n = in_.w / 2, c_n = in_.c;
  Mat y(batch * oh_n * ow_n, c_n);
  if (train) argmax_.resize(static_cast<std::size_t>(y.size()));
  in_rows_ = x.rows();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const int64_t orow = (b * oh_n + oh) * ow_n + ow;
        const int64_t r00 = (b * in_.h + 2 * oh) * in_.w + 2 * ow;
        const int64_t rows[4] = {r00, r00 + 1, r00 + in_.w, r00 + in_.w + 1};
        for (int64_t c = 0; c < c_n; ++c) {
          int64_t best = rows[0] * c_n + c;
          for (int r = 1; r < 4; ++r) {
            const int64_t at = rows[r] * c_n + c;
            if (x.data()[at] > x.data()[best]) best = at;
          }
          y.data()[orow * c_n + c] = x.data()[best];
          if (train) argmax_[static_cast<std::size_t>(orow * c_n + c)] = best;
        }
      }
    }
  }
  return y;
}

Mat MaxPool2d::backward(const Mat& dy) {
  Mat dx = Mat::Zero(in_rows_, in_.c);
  for (int64_t i = 0; i < dy.size(); ++i) {
    dx.data()[argmax_[static_cast<std::size_t>(i)]] += dy.data()[i];
  }
  return dx;
}

Mat Flatten::forward(const Mat& x, bool) {
  const int64_t batch = x.size() / in_.size();
  return Eigen::Map<const Mat>(x.data(), batch, in_.size());
}

Mat Flatten::backward(const Mat& dy) {
  return Eigen::Map<const Mat>(dy.data(), dy.size() / in_.c, in_.c);
}

// ------------------------------------------------------------ Net

Mat Net::forward(const Mat& x, bool train) {
  if (x.cols() != input.size()) {
    fail("Net::forward ({}): input has {} features (expected {})", name, x.cols(), input.size());
  }
  Mat h = x;
  if (!layers.empty() && layers.front()->kind() == "Conv2d") {
    h = Eigen::Map<const Mat>(x.data(), x.rows() * input.h * input.w, input.c);
  }
  for (auto& layer : layers) h = layer->forward(h, train);
  return h;
}

void Net::backward(const Mat& dlogits) {
  Mat g = dlogits;
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) g = (*it)->backward(g);
}

std::vector<Param*> Net::params() {
  std::vector<Param*> out;
  for (auto& layer : layers) {
    for (Param* p : layer->params()) out.push_back(p);
  }
  return out;
}

StateDict Net::state_dict() const {
  StateDict sd;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (Param* p : layers[i]->params()) {
      NamedTensor t;
      t.shape = p->shape;
      t.data.assign(p->value.data(), p->value.data() + p->value.size());
      sd[std::to_string(i) + "." + p->name] = std::move(t);
    }
  }
  return sd;
}

void Net::load_state_dict(const StateDict& sd) {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (Param* p : layers[i]->params()) {
      const std::string key = std::to_string(i) + "." + p->name;
      const auto it = sd.find(key);
      if (it == sd.end()) fail("Net::load_state_dict ({}): key '{}' is missing", name, key);
      if (it->second.shape != p->shape ||
          static_cast<int64_t>(it->second.data.size()) != p->value.size()) {
        fail("Net::load_state_dict ({}): '{}' has {} values (expected {})", name, key,
             it->second.data.size(), p->value.size());
      }
      std::copy(it->second.data.begin(), it->second.data.end(), p->value.data());
    }
  }
}

void fold_batchnorm_into(WeightLayer& wl, const BatchNorm& bn) {
  if (wl.out_features() != bn.gamma.value.cols()) {
    fail("fold_batchnorm_into: layer has {} outputs, BatchNorm {} channels (expected equal)",
         wl.out_features(), bn.gamma.value.cols());
  }
  const Eigen::RowVectorXf scale = (bn.running_var.value.row(0).array() + bn.eps)
                                       .rsqrt()
                                       .matrix()
                                       .cwiseProduct(bn.gamma.value.row(0));
  for (int64_t o = 0; o < wl.weight.value.rows(); ++o) wl.weight.value.row(o) *= scale[o];
  wl.bias.value.row(0) = (wl.bias.value.row(0) - bn.running_mean.value.row(0)).cwiseProduct(scale) +
                         bn.beta.value.row(0);
}

void Net::fold_batchnorm() {
  for (std::size_t i = 1; i < layers.size(); ++i) {
    auto* bn = dynamic_cast<BatchNorm*>(layers[i].get());
    auto* wl = dynamic_cast<WeightLayer*>(layers[i - 1].get());
    if (!bn || !wl) continue;
    fold_batchnorm_into(*wl, *bn);
    layers.erase(layers.begin() + static_cast<std::ptrdiff_t>(i));
    --i;
  }
}

Net Net::clone() const {
  Net copy;
  copy.name = name;
  copy.input = input;
  for (const auto& layer : layers) copy.layers.push_back(layer->clone());
  return copy;
}

// ------------------------------------------------------------ data

Mat images_as_matrix(const Dataset& data, int64_t first, int64_t n) {
  const int64_t px = data.pixels();
  Mat x(n, px);
  const uint8_t* src = data.images.data() + first * px;
  for (int64_t i = 0; i < n * px; ++i) x.data()[i] = static_cast<float>(src[i]) * (1.0f / 255);
  return x;
}

Mat gather_images(const Dataset& data, const std::vector<int64_t>& indices) {
  const int64_t px = data.pixels();
  Mat x(static_cast<int64_t>(indices.size()), px);
  for (std::size_t r = 0; r < indices.size(); ++r) {
    const uint8_t* src = data.images.data() + indices[r] * px;
    float* dst = x.data() + static_cast<int64_t>(r) * px;
    for (int64_t j = 0; j < px; ++j) dst[j] = static_cast<float>(src[j]) * (1.0f / 255);
  }
  return x;
}

// ------------------------------------------------------------ training

double train(Trainable& net, const Dataset& data, const TrainConfig& config) {
  if (config.epochs < 1 || config.batch < 1 || data.count < 1) {
    fail("train ({}): epochs {}, batch {}, {} examples (expected all >= 1)", net.model_name(),
         config.epochs, config.batch, data.count);
  }
  std::vector<Param*> params = net.params();
  // A fresh optimizer per phase (pre-training, QAT, sparse fine-tuning).
  for (Param* p : params) {
    p->grad = Mat::Zero(p->value.rows(), p->value.cols());
    p->adam_m = p->grad;
    p->adam_v = p->grad;
  }
  const bool tty = stderr_is_tty();
  const int64_t steps_per_epoch = (data.count + config.batch - 1) / config.batch;
  const double total_steps = static_cast<double>(steps_per_epoch * config.epochs);
  const float beta1 = 0.9f, beta2 = 0.999f, adam_eps = 1e-8f;
  std::mt19937_64 rng(config.seed);
  std::vector<int64_t> order(static_cast<std::size_t>(data.count));
  std::iota(order.begin(), order.end(), 0);
  int64_t step = 0;
  double last_loss = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < config.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t first = s * config.batch;
      const int64_t n = std::min(config.batch, data.count - first);
      std::vector<int64_t> idx(order.begin() + first, order.begin() + first + n);
      const Mat x = gather_images(data, idx);
      const Mat logits = net.forward(x, true);
      // Softmax cross-entropy; dL/dlogits = (softmax - onehot) / n.
      Mat dlogits(logits.rows(), logits.cols());
      for (int64_t r = 0; r < n; ++r) {
        const auto row = logits.row(r);
        Eigen::Index arg = 0;
        const float mx = row.maxCoeff(&arg);
        const Eigen::RowVectorXf e = (row.array() - mx).exp().matrix();
        const float sum = e.sum();
        const int label = data.labels[static_cast<std::size_t>(idx[static_cast<std::size_t>(r)])];
        loss_sum += std::log(sum) - (row[label] - mx);
        correct += (arg == label);
        dlogits.row(r) = e / sum;
        dlogits(r, label) -= 1.0f;
      }
      dlogits /= static_cast<float>(n);
      seen += n;
      for (Param* p : params) p->grad.setZero();
      net.backward(dlogits);
      ++step;
      const double lr = config.lr_final + 0.5 * (config.lr - config.lr_final) *
                                              (1 + std::cos(M_PI * (step - 1) / total_steps));
      const float c1 = 1 - std::pow(beta1, static_cast<float>(step));
      const float c2 = 1 - std::pow(beta2, static_cast<float>(step));
      for (Param* p : params) {
        if (!p->trainable) continue;
        if (p->mask.size() != 0) p->grad.array() *= p->mask.array();
        p->adam_m = beta1 * p->adam_m + (1 - beta1) * p->grad;
        p->adam_v = beta2 * p->adam_v + (1 - beta2) * p->grad.cwiseAbs2();
        p->value.array() -= static_cast<float>(lr) * (p->adam_m.array() / c1) /
                            ((p->adam_v.array() / c2).sqrt() + adam_eps);
        if (p->mask.size() != 0) p->value.array() *= p->mask.array();
      }
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (tty && (s % 20 == 0 || s + 1 == steps_per_epoch)) {
        const int width = 30;
        const int filled = static_cast<int>(width * (s + 1) / steps_per_epoch);
        std::fprintf(stderr, "\r  %-22s epoch %d/%d [%s%s] %3d%%  loss %.4f  acc %5.2f%%  %5.1fs",
                     config.label.c_str(), epoch + 1, config.epochs,
                     std::string(static_cast<std::size_t>(filled), '#').c_str(),
                     std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
                     static_cast<int>(100 * (s + 1) / steps_per_epoch), loss_sum / seen,
                     100.0 * correct / seen, secs);
        std::fflush(stderr);
      }
    }
    last_loss = loss_sum / seen;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (tty) {
      std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "  %-22s epoch %d/%d  loss %.4f  train acc %5.2f%%  %6.1fs\n",
                   config.label.c_str(), epoch + 1, config.epochs, last_loss,
                   100.0 * correct / seen, secs);
    }
  }
  return last_loss;
}

double accuracy(Trainable& net, const Dataset& data) {
  int64_t correct = 0;
  const int64_t chunk = 1000;
  for (int64_t first = 0; first < data.count; first += chunk) {
    const int64_t n = std::min(chunk, data.count - first);
    const Mat logits = net.forward(images_as_matrix(data, first, n), false);
    for (int64_t r = 0; r < n; ++r) {
      Eigen::Index arg = 0;
      logits.row(r).maxCoeff(&arg);
      correct += (arg == data.labels[static_cast<std::size_t>(first + r)]);
    }
  }
  return static_cast<double>(correct) / static_cast<double>(data.count);
}

}  // namespace fashion
