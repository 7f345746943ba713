// fashion_import_check MODEL WEIGHTS IO: loads WEIGHTS (a safetensors file
// written by export_from_pytorch.py) into the demo's MODEL architecture
// ("mlp" or "cnn") with sparq::nn::load_weights, runs IO's "input" tensor
// through it and compares with IO's "expected" (PyTorch's output).
// Exit 0 when they agree, 1 otherwise. Used by test_export_from_pytorch.py.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "bridge.hpp"
#include "models.hpp"

int main(int argc, char** argv) {
  using namespace fashion;
  if (argc != 4) {
    fmt::print(stderr, "usage: {} mlp|cnn WEIGHTS.safetensors IO.safetensors\n", argv[0]);
    return 2;
  }
  try {
    const std::string arch = argv[1];
    if (arch != "mlp" && arch != "cnn") {
      fmt::print(stderr, "fashion_import_check: model '{}' (expected mlp or cnn)\n", arch);
      return 2;
    }
    nn::Sequential model = sparq_architecture(arch == "mlp" ? make_mlp(1) : make_cnn(1));
    nn::load_weights(model, argv[2]);
    const nn::TensorMap io = nn::load_safetensors(argv[3]);
    const nn::Tensor y = model.forward(io.at("input"));
    const nn::Tensor& expected = io.at("expected");
    if (y.shape != expected.shape) {
      fmt::print(stderr, "fashion_import_check: output shape {} but PyTorch's is {}\n",
                 nn::shape_to_string(y.shape), nn::shape_to_string(expected.shape));
      return 1;
    }
    double max_err = 0, max_ref = 0;
    for (std::size_t i = 0; i < y.data.size(); ++i) {
      max_err = std::max(max_err, std::abs(double{y.data[i]} - expected.data[i]));
      max_ref = std::max(max_ref, std::abs(double{expected.data[i]}));
    }
    // Both sides compute in FP32 with different summation orders (K up to
    // 784): the error is a few ulps of the largest partial sums, far below
    // 1e-4 relative; a layout mistake (OIHW vs OHWI, CHW vs HWC flatten)
    // gives errors of the order of the outputs themselves.
    const double tolerance = 1e-4 * std::max(1.0, max_ref);
    const bool ok = max_err <= tolerance;
    fmt::print("{}: max |sparq - PyTorch| = {:.3g} (max |output| {:.3g}, tolerance {:.3g}): {}\n",
               arch, max_err, max_ref, tolerance, ok ? "ok" : "MISMATCH");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "fashion_import_check: error: {}\n", e.what());
    return 1;
  }
}
