// Prune-then-quantize (see sparq/sparse/prune_quantize.hpp).
#include "sparq/sparse/prune_quantize.hpp"

#include <algorithm>
#include <tuple>
#include <utility>

#include "sparq/quant/quantize.hpp"

namespace sparq {

namespace {

// min/max of the kept weights of output o (or of all outputs if o < 0).
// Nothing kept -> [0, 0] (compute_qparams then gives the smallest scale).
std::pair<float, float> kept_range(std::span<const float> w, const SparseMask& mask, int64_t o) {
  float lo = 0.0f, hi = 0.0f;
  bool any = false;
  const WeightShape& s = mask.shape;
  const int64_t o0 = o < 0 ? 0 : o, o1 = o < 0 ? s.outputs : o + 1;
  for (int64_t r = o0; r < o1; ++r) {
    for (int64_t i = 0; i < s.inputs; ++i) {
      const int64_t e = s.index(r, i);
      if (!mask.keep[e]) continue;
      lo = any ? std::min(lo, w[e]) : w[e];
      hi = any ? std::max(hi, w[e]) : w[e];
      any = true;
    }
  }
  return {lo, hi};
}

void check_weights(std::span<const float> w, const SparseMask& mask, const char* who) {
  mask.shape.validate(mask.keep.size(), who);
  mask.shape.validate(w.size(), who);
  detail::check_finite_weights(w, mask.shape, who);
}

}  // namespace

QParams pruned_qparams(std::span<const float> weights, const SparseMask& mask,
                       const QuantSpec& spec) {
  detail::check_spec_for<int8_t>(spec, Granularity::per_tensor, "pruned_qparams");
  check_weights(weights, mask, "pruned_qparams");
  const auto [lo, hi] = kept_range(weights, mask, -1);
  return compute_qparams(lo, hi, spec);
}

ChannelQParams pruned_channel_qparams(std::span<const float> weights, const SparseMask& mask,
                                      const QuantSpec& spec) {
  detail::check_spec_for<int8_t>(spec, Granularity::per_channel, "pruned_channel_qparams");
  check_weights(weights, mask, "pruned_channel_qparams");
  const bool out_in = mask.shape.layout == WeightLayout::out_in;
  const int axis = spec.axis < 0 ? spec.axis + 2 : spec.axis;
  if (axis != (out_in ? 0 : 1)) {
    detail::fail(
        "pruned_channel_qparams: spec.axis ({}) must be the output axis of the {} "
        "layout: {} (or {})",
        spec.axis, out_in ? "out_in" : "in_out", out_in ? 0 : 1, out_in ? -2 : -1);
  }
  std::vector<float> mins(static_cast<std::size_t>(mask.shape.outputs));
  std::vector<float> maxs(mins.size());
  for (int64_t o = 0; o < mask.shape.outputs; ++o) {
    std::tie(mins[o], maxs[o]) = kept_range(weights, mask, o);
  }
  ChannelQParams qp = compute_qparams(mins, maxs, spec);
  qp.axis = spec.axis;
  return qp;
}

namespace {

template <class QuantizerFor>
CompressedNM<int8_t> quantize_rows(const CompressedNM<float>& c, QuantizerFor&& quantizer_for) {
  c.validate();
  CompressedNM<int8_t> q;
  q.pattern = c.pattern;
  q.outputs = c.outputs;
  q.inputs = c.inputs;
  q.metadata = c.metadata;
  q.values.resize(c.values.size());
  const int64_t v = c.values_per_row();
  for (int64_t o = 0; o < c.outputs; ++o) {
    const Quantizer<int8_t> quantizer = quantizer_for(o);
    for (int64_t j = o * v; j < (o + 1) * v; ++j) q.values[j] = quantizer.quantize(c.values[j]);
  }
  return q;
}

void check_symmetric_s8(const QuantSpec& spec, const char* who) {
  spec.validate();
  if (spec.dtype != DType::s8 || spec.scheme != Scheme::symmetric) {
    detail::fail(
        "{}: spec is {} {}; expected symmetric s8 (zero point 0, so that pruned "
        "weights stay exact zeros)",
        who, dtype_name(spec.dtype), spec.scheme == Scheme::symmetric ? "symmetric" : "asymmetric");
  }
}

}  // namespace

CompressedNM<int8_t> quantize_compressed(const CompressedNM<float>& c, const QParams& qp,
                                         const QuantSpec& spec) {
  check_symmetric_s8(spec, "quantize_compressed");
  // The Quantizer validates scale and zero point (it rejects zp != 0 for
  // symmetric int8) before any value is written.
  const Quantizer<int8_t> quantizer(qp, spec.qmin(), spec.qmax());
  return quantize_rows(c, [&](int64_t) { return quantizer; });
}

CompressedNM<int8_t> quantize_compressed(const CompressedNM<float>& c, const ChannelQParams& qp,
                                         const QuantSpec& spec) {
  check_symmetric_s8(spec, "quantize_compressed");
  if (static_cast<int64_t>(qp.size()) != c.outputs || qp.zero_points.size() != qp.size()) {
    detail::fail(
        "quantize_compressed: {} channel qparams ({} zero points); expected one per "
        "output ({})",
        qp.size(), qp.zero_points.size(), c.outputs);
  }
  std::vector<Quantizer<int8_t>> quantizers;
  quantizers.reserve(qp.size());
  for (std::size_t o = 0; o < qp.size(); ++o)
    quantizers.emplace_back(qp[o], spec.qmin(), spec.qmax());
  return quantize_rows(c, [&](int64_t o) { return quantizers[static_cast<std::size_t>(o)]; });
}

}  // namespace sparq
