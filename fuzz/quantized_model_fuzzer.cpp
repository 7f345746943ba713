// libFuzzer target: sparq::nn::load_quantized on arbitrary bytes.
//
// The contract under test: any input either loads into a valid model or
// throws sparq::Error. Any other exception escapes and aborts (a finding), as
// do crashes, sanitizer reports, timeouts and out-of-memory. A model that
// loads is also run once on a tiny input, so the parameters the loader
// accepted are exercised by the forward pass (whose shape errors are
// sparq::Error too).
#include <cstddef>
#include <cstdint>
#include <span>

#include "sparq/error.hpp"
#include "sparq/nn/nn.hpp"

namespace {

/// A small input the first unit accepts, or an empty tensor when there is none.
sparq::nn::Tensor probe_input(const sparq::nn::QuantizedModel& q) {
  if (q.units().empty()) return {};
  const auto& op = q.units().front().op;
  if (const auto* l = std::get_if<sparq::nn::QLinear>(&op)) {
    if (l->in_features <= 4096) return sparq::nn::Tensor({2, l->in_features});
  } else if (const auto* c = std::get_if<sparq::nn::QConv2d>(&op)) {
    const int64_t h = std::max<int64_t>(1, c->dilation_h * (c->kernel_h - 1) + 1 - 2 * c->pad_h);
    const int64_t w = std::max<int64_t>(1, c->dilation_w * (c->kernel_w - 1) + 1 - 2 * c->pad_w);
    if (h <= 64 && w <= 64 && c->in_channels <= 256)
      return sparq::nn::Tensor({1, h, w, c->in_channels});
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const sparq::nn::QuantizedModel q = sparq::nn::load_quantized(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
    (void)q.summary();
    if (q.weight_bytes() <= (1u << 20)) {
      sparq::nn::Tensor x = probe_input(q);
      for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = static_cast<float>(i % 7) - 3.0f;
      if (!x.empty()) (void)q.forward(x);
    }
  } catch (const sparq::Error&) {
    // the documented outcome for a bad file or an input the model cannot take
  }
  return 0;
}
