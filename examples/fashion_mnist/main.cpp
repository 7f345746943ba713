#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "idx.hpp"
#include "models.hpp"
using namespace fashion;
int main(int argc, char** argv) {
  auto train_set = load_fashion_mnist(default_data_dir(), "train");
  auto test_set = load_fashion_mnist(default_data_dir(), "t10k");
  int epochs = argc > 1 ? std::atoi(argv[1]) : 1;
  for (int which = 0; which < 2; ++which) {
    Net net = which == 0 ? make_mlp(1) : make_cnn(1);
    TrainConfig cfg; cfg.epochs = epochs; cfg.label = net.name; cfg.lr = which == 0 ? 1e-3f : 2e-3f;
    auto t0 = std::chrono::steady_clock::now();
    train(net, train_set, cfg);
    auto t1 = std::chrono::steady_clock::now();
    std::printf("%s: %.2f%% in %.1fs\n", net.name.c_str(), 100*accuracy(net, test_set), std::chrono::duration<double>(t1-t0).count());
  }
}
