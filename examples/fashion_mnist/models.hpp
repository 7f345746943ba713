// The demo's two networks, built for the trainer (train.hpp).
//
//   MLP: Linear(784,256) ReLU Linear(256,128) ReLU Linear(128,10)
//   CNN: Conv2d(1->C1,3x3,pad 1) BatchNorm2d ReLU MaxPool2d(2)
//        Conv2d(C1->C2,3x3,pad 1) BatchNorm2d ReLU MaxPool2d(2)
//        Flatten Linear(7*7*C2, 10)
// Sizes are chosen so the whole demo (training both, QAT, 2:4 fine-tuning,
// every quantized variant) fits in the 10-minute budget on 2 cores.
#pragma once

#include <cstdint>

#include "train.hpp"

namespace fashion {

Net make_mlp(uint64_t seed, int64_t hidden1 = 256, int64_t hidden2 = 128);
Net make_cnn(uint64_t seed, int64_t c1 = 8, int64_t c2 = 16);

}  // namespace fashion
