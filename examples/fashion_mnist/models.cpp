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
  const Shape3 s0{28, 28, 1};
  auto conv1 = std::make_unique<Conv2d>(s0, c1, 3, 1, rng);
  const Shape3 s1 = conv1->out_shape();
  net.layers.push_back(std::move(conv1));
  net.layers.push_back(std::make_unique<BatchNorm>(c1, true));
  net.layers.push_back(std::make_unique<ReLU>());
  auto pool1 = std::make_unique<MaxPool2d>(s1);
  const Shape3 s2 = pool1->out_shape();
  net.layers.push_back(std::move(pool1));
  auto conv2 = std::make_unique<Conv2d>(s2, c2, 3, 1, rng);
  const Shape3 s3 = conv2->out_shape();
  net.layers.push_back(std::move(conv2));
  net.layers.push_back(std::make_unique<BatchNorm>(c2, true));
  net.layers.push_back(std::make_unique<ReLU>());
  auto pool2 = std::make_unique<MaxPool2d>(s3);
  const Shape3 s4 = pool2->out_shape();
  net.layers.push_back(std::move(pool2));
  net.layers.push_back(std::make_unique<Flatten>(s4));
  net.layers.push_back(std::make_unique<Linear>(s4.size(), 10, rng));
  return net;
}

}  // namespace fashion
