#include "train_graph.hpp"

#include <algorithm>

#include "sparq/error.hpp"

namespace fashion {

using sparq::detail::fail;

// ------------------------------------------------------------ GroupedConv2d

GroupedConv2d::GroupedConv2d(Shape3 in, int64_t out_channels, int64_t kernel, int64_t stride,
                             int64_t padding, int64_t groups, std::mt19937& rng)
    : in_(in), k_(kernel), stride_(stride), pad_(padding), groups_(groups) {
  if (kernel < 1 || stride < 1 || padding < 0) {
    fail(
        "GroupedConv2d: kernel {}, stride {}, padding {} (expected kernel, stride >= 1, "
        "padding >= 0)",
        kernel, stride, padding);
  }
  if (groups < 1 || in.c % groups != 0 || out_channels % groups != 0) {
    fail(
        "GroupedConv2d: groups {} with {} input and {} output channels (expected a divisor of "
        "both)",
        groups, in.c, out_channels);
  }
  out_ = {(in.h + 2 * padding - kernel) / stride + 1, (in.w + 2 * padding - kernel) / stride + 1,
          out_channels};
  if (in.h + 2 * padding < kernel || in.w + 2 * padding < kernel) {
    fail("GroupedConv2d: input {}x{} with padding {} is smaller than kernel {}", in.h, in.w,
         padding, kernel);
  }
  const int64_t fan_in = kernel * kernel * (in.c / groups);
  weight =
      make_param("weight", {out_channels, kernel, kernel, in.c / groups}, out_channels, fan_in);
  bias = make_param("bias", {out_channels}, 1, out_channels);
  he_uniform(weight.value, fan_in, rng);
}

Mat GroupedConv2d::forward(const Mat& x, bool train) {
  if (x.cols() != in_.c || x.rows() % (in_.h * in_.w) != 0) {
    fail("GroupedConv2d::forward: input is {} x {} (expected batch*{}*{} rows of {} channels)",
         x.rows(), x.cols(), in_.h, in_.w, in_.c);
  }
  const Mat xin = prepare_input(x, train);
  const Mat& w = effective_weight();
  const int64_t batch = x.rows() / (in_.h * in_.w);
  const int64_t cg = in_.c / groups_, og = out_.c / groups_, kk = k_ * k_ * cg;
  const int64_t rows = batch * out_.h * out_.w;
  cols_.resize(static_cast<std::size_t>(groups_));
  Mat y(rows, out_.c);
  for (int64_t g = 0; g < groups_; ++g) {
    Mat& cols = cols_[static_cast<std::size_t>(g)];
    cols.resize(rows, kk);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t oh = 0; oh < out_.h; ++oh) {
        for (int64_t ow = 0; ow < out_.w; ++ow) {
          float* dst = cols.data() + ((b * out_.h + oh) * out_.w + ow) * kk;
          for (int64_t kh = 0; kh < k_; ++kh) {
            const int64_t ih = oh * stride_ + kh - pad_;
            for (int64_t kw = 0; kw < k_; ++kw, dst += cg) {
              const int64_t iw = ow * stride_ + kw - pad_;
              if (ih < 0 || ih >= in_.h || iw < 0 || iw >= in_.w) {
                std::fill(dst, dst + cg, 0.0f);
              } else {
                const float* src = xin.data() + ((b * in_.h + ih) * in_.w + iw) * in_.c + g * cg;
                std::copy(src, src + cg, dst);
              }
            }
          }
        }
      }
    }
    y.middleCols(g * og, og).noalias() = cols * w.middleRows(g * og, og).transpose();
  }
  y.rowwise() += bias.value.row(0);
  return y;
}

Mat GroupedConv2d::backward(const Mat& dy) {
  const int64_t batch = dy.rows() / (out_.h * out_.w);
  const int64_t cg = in_.c / groups_, og = out_.c / groups_, kk = k_ * k_ * cg;
  // The straight-through estimator, as WeightLayer::affine_backward: dL/dx
  // through the fake-quantized weights the forward pass used.
  const Mat& w = (qat && qat->weights) ? wq_ : weight.value;
  bias.grad += dy.colwise().sum();
  Mat dx = Mat::Zero(batch * in_.h * in_.w, in_.c);
  for (int64_t g = 0; g < groups_; ++g) {
    const Mat& cols = cols_[static_cast<std::size_t>(g)];
    const auto dy_g = dy.middleCols(g * og, og);
    weight.grad.middleRows(g * og, og).noalias() += dy_g.transpose() * cols;
    Mat dcols(dy.rows(), kk);
    dcols.noalias() = dy_g * w.middleRows(g * og, og);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t oh = 0; oh < out_.h; ++oh) {
        for (int64_t ow = 0; ow < out_.w; ++ow) {
          const float* src = dcols.data() + ((b * out_.h + oh) * out_.w + ow) * kk;
          for (int64_t kh = 0; kh < k_; ++kh) {
            const int64_t ih = oh * stride_ + kh - pad_;
            for (int64_t kw = 0; kw < k_; ++kw, src += cg) {
              const int64_t iw = ow * stride_ + kw - pad_;
              if (ih < 0 || ih >= in_.h || iw < 0 || iw >= in_.w) continue;
              float* dst = dx.data() + ((b * in_.h + ih) * in_.w + iw) * in_.c + g * cg;
              for (int64_t c = 0; c < cg; ++c) dst[c] += src[c];
            }
          }
        }
      }
    }
  }
  if (input_pass_.size() != 0) dx.array() *= input_pass_.array();
  return dx;
}

// ------------------------------------------------------------ GlobalAvgPool

Mat GlobalAvgPool::forward(const Mat& x, bool) {
  const int64_t pixels = in_.h * in_.w;
  if (x.cols() != in_.c || x.rows() % pixels != 0) {
    fail("GlobalAvgPool::forward: input is {} x {} (expected batch*{}*{} rows of {} channels)",
         x.rows(), x.cols(), in_.h, in_.w, in_.c);
  }
  const int64_t batch = x.rows() / pixels;
  Mat y(batch, in_.c);
  for (int64_t b = 0; b < batch; ++b) {
    y.row(b) = x.middleRows(b * pixels, pixels).colwise().sum() / static_cast<float>(pixels);
  }
  return y;
}

Mat GlobalAvgPool::backward(const Mat& dy) {
  const int64_t pixels = in_.h * in_.w;
  Mat dx(dy.rows() * pixels, in_.c);
  for (int64_t b = 0; b < dy.rows(); ++b) {
    dx.middleRows(b * pixels, pixels).rowwise() = dy.row(b) / static_cast<float>(pixels);
  }
  return dx;
}

// ------------------------------------------------------------ GraphNet

int GraphNet::add(std::string node_name, std::unique_ptr<Layer> layer, int from) {
  if (!layer) fail("GraphNet::add ({}): node '{}' has no layer", name, node_name);
  if (from == -2) from = nodes.empty() ? kImage : static_cast<int>(nodes.size()) - 1;
  if (from < kImage || from >= static_cast<int>(nodes.size())) {
    fail("GraphNet::add ({}): node '{}' reads node {} (expected -1 .. {})", name, node_name, from,
         nodes.size() - 1);
  }
  nodes.push_back({std::move(node_name), std::move(layer), {from}});
  return static_cast<int>(nodes.size()) - 1;
}

int GraphNet::add_sum(std::string node_name, int a, int b) {
  const int n = static_cast<int>(nodes.size());
  if (a < 0 || a >= n || b < 0 || b >= n) {
    fail("GraphNet::add_sum ({}): node '{}' adds nodes {} and {} (expected 0 .. {})", name,
         node_name, a, b, n - 1);
  }
  nodes.push_back({std::move(node_name), nullptr, {a, b}});
  return n;
}

Mat GraphNet::forward(const Mat& x, bool train) {
  if (x.cols() != input.size()) {
    fail("GraphNet::forward ({}): input has {} features (expected {})", name, x.cols(),
         input.size());
  }
  if (nodes.empty()) fail("GraphNet::forward ({}): the net has no nodes", name);
  // NHWC pixel rows, the layout of every convolution.
  const Mat image = Eigen::Map<const Mat>(x.data(), x.rows() * input.h * input.w, input.c);
  // Every node's output: backward needs none of them (each layer keeps what
  // its own backward needs), so they live for this call only.
  std::vector<Mat> outputs(nodes.size());
  auto value = [&](int i) -> const Mat& {
    return i == kImage ? image : outputs[static_cast<std::size_t>(i)];
  };
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.layer) {
      outputs[i] = n.layer->forward(value(n.inputs[0]), train);
    } else {
      const Mat& a = value(n.inputs[0]);
      const Mat& b = value(n.inputs[1]);
      if (a.rows() != b.rows() || a.cols() != b.cols()) {
        fail("GraphNet::forward ({}): Add '{}' of {} x {} and {} x {} (expected equal shapes)",
             name, n.name, a.rows(), a.cols(), b.rows(), b.cols());
      }
      outputs[i] = a + b;
    }
  }
  return std::move(outputs.back());
}

void GraphNet::backward(const Mat& dlogits) {
  std::vector<Mat> grads(nodes.size());
  grads.back() = dlogits;
  auto accumulate = [&](int i, Mat g) {
    if (i == kImage) return;
    Mat& acc = grads[static_cast<std::size_t>(i)];
    if (acc.size() == 0) {
      acc = std::move(g);
    } else {
      acc += g;
    }
  };
  // Nodes are in topological order, so every reader of node i is after it
  // and its gradient is complete when the loop reaches it.
  for (std::size_t k = nodes.size(); k-- > 0;) {
    const Node& n = nodes[k];
    if (grads[k].size() == 0) continue;
    if (n.layer) {
      accumulate(n.inputs[0], n.layer->backward(grads[k]));
    } else {
      accumulate(n.inputs[0], grads[k]);
      accumulate(n.inputs[1], std::move(grads[k]));
    }
    grads[k] = Mat();
  }
}

std::vector<Param*> GraphNet::params() {
  std::vector<Param*> out;
  for (auto& n : nodes) {
    if (!n.layer) continue;
    for (Param* p : n.layer->params()) out.push_back(p);
  }
  return out;
}

StateDict GraphNet::state_dict() const {
  StateDict sd;
  for (const auto& n : nodes) {
    if (!n.layer) continue;
    for (Param* p : n.layer->params()) {
      NamedTensor t;
      t.shape = p->shape;
      t.data.assign(p->value.data(), p->value.data() + p->value.size());
      sd[n.name + "." + p->name] = std::move(t);
    }
  }
  return sd;
}

void GraphNet::fold_batchnorm() {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto* bn = dynamic_cast<const BatchNorm*>(nodes[i].layer.get());
    if (!bn) continue;
    const int src = nodes[i].inputs[0];
    if (src == kImage) continue;
    auto* wl = dynamic_cast<WeightLayer*>(nodes[static_cast<std::size_t>(src)].layer.get());
    if (!wl) continue;
    int readers = 0;
    for (const auto& n : nodes)
      readers += static_cast<int>(std::count(n.inputs.begin(), n.inputs.end(), src));
    if (readers != 1) continue;
    fold_batchnorm_into(*wl, *bn);
    // Readers of the BatchNorm read the layer instead; later indices shift by one.
    const int removed = static_cast<int>(i);
    nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(i));
    for (auto& n : nodes) {
      for (int& in : n.inputs) {
        if (in == removed) {
          in = src;
        } else if (in > removed) {
          --in;
        }
      }
    }
    --i;
  }
}

std::vector<WeightLayer*> GraphNet::weight_layers() {
  std::vector<WeightLayer*> out;
  for (auto& n : nodes) {
    if (auto* wl = dynamic_cast<WeightLayer*>(n.layer.get())) out.push_back(wl);
  }
  return out;
}

GraphNet GraphNet::clone() const {
  GraphNet copy;
  copy.name = name;
  copy.input = input;
  for (const auto& n : nodes) {
    copy.nodes.push_back({n.name, n.layer ? n.layer->clone() : nullptr, n.inputs});
  }
  return copy;
}

}  // namespace fashion
