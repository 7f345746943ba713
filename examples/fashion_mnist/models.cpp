#include "models.hpp"

namespace fashion {

Net make_mlp(uint64_t seed, int64_t hidden1, int64_t hidden2) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  Net net;
  net.name = "MLP";
  net.input = {28, 28, 1};
  net.layers.push_back(std::make_unique<Linear>(784, hidden1, rng));
  net.layers.push_back(std::make_unique<ReLU>());
  net.layers.push_back(std::make_unique<Linear>(hidden1, hidden2, rng));
  net.layers.push_back(std::make_unique<ReLU>());
  net.layers.push_back(std::make_unique<Linear>(hidden2, 10, rng));
  return net;
}

Net make_cnn(uint64_t seed, int64_t c1, int64_t c2) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  Net net;
  net.name = "CNN";
  net.input = {28, 28, 1};
  // conv 3x3 (padding 1) -> BatchNorm -> ReLU -> 2x2 max pool; returns the
  // pooled shape. Called in layer order, so the weights draw from rng in
  // the same order as the layers stand.
  auto conv_block = [&](Shape3 in, int64_t channels) {
    auto conv = std::make_unique<Conv2d>(in, channels, 3, 1, rng);
    const Shape3 conv_out = conv->out_shape();
    net.layers.push_back(std::move(conv));
    net.layers.push_back(std::make_unique<BatchNorm>(channels, true));
    net.layers.push_back(std::make_unique<ReLU>());
    auto pool = std::make_unique<MaxPool2d>(conv_out);
    const Shape3 pooled = pool->out_shape();
    net.layers.push_back(std::move(pool));
    return pooled;
  };
  const Shape3 s2 = conv_block(net.input, c1);
  const Shape3 s4 = conv_block(s2, c2);
  net.layers.push_back(std::make_unique<Flatten>(s4));
  net.layers.push_back(std::make_unique<Linear>(s4.size(), 10, rng));
  return net;
}

}  // namespace fashion
