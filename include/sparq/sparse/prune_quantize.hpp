// Prune, then quantize: INT8 qparams and values for an N:M-pruned layer.
//
// Order matters: pruning first and computing the quantization parameters
// from the SURVIVING weights gives the layer its range after pruning. (With
// sparq's qparams, whose range always includes 0, the result equals the
// qparams of the dense pruned matrix, zeros included; it differs from the
// qparams of the UNPRUNED matrix whenever a pruned weight was an extreme of
// the asymmetric range. For symmetric qparams the largest |w| of every group
// always survives, so the per-tensor and per-output-channel scales do not
// change, which is a property of magnitude pruning, not an assumption here.)
//
// Quantized sparse weights must be SYMMETRIC int8 (zero point 0): a pruned
// weight is then exactly q = 0 and contributes nothing, which is what lets
// the sparse GEMM skip it and what makes the compressed int8 values equal
// the dense pruned matrix quantized (q(0) = 0 at every position that the
// compressed format does not store). Other specs are refused.
//
// quantize_compressed() quantizes the stored values with exactly the
// scalar rule of sparq/quant/quantize.hpp (Quantizer<int8_t>::quantize:
// clamp(round_half_even(x * (1/scale)), qmin, qmax)), so
//     decompress(quantize_compressed(compress(P), qp, spec))
//       == quantize<int8_t>(P, shape, spec, qp)       (P: the pruned matrix)
// element for element, which sparse_prune_quantize_test checks.
#pragma once

#include <cstdint>
#include <span>

#include "sparq/quant/qparams.hpp"
#include "sparq/sparse/compressed.hpp"

namespace sparq {

/// Per-tensor qparams of the weights `mask` keeps. spec must be s8,
/// symmetric or asymmetric, per_tensor (asymmetric qparams are allowed here
/// for analysis; quantize_compressed refuses them). Throws sparq::Error on a
/// size mismatch, NaN/Inf weights or a spec of another granularity.
QParams pruned_qparams(std::span<const float> weights, const SparseMask& mask,
                       const QuantSpec& spec = {});

/// Per-output-channel qparams of the weights `mask` keeps, one per output.
/// spec must be per_channel with its axis on the outputs: 0 (or -2) for
/// out_in, 1 (or -1) for in_out; the result carries that axis, so it can be
/// passed with `spec` to sparq::quantize on the dense pruned matrix.
ChannelQParams pruned_channel_qparams(std::span<const float> weights, const SparseMask& mask,
                                      const QuantSpec& spec);

/// The int8 twin of compressed fp32 weights: same metadata, values
/// quantized with `qp` (per tensor) or `qp[o]` for output row o (per
/// channel: qp.size() must equal c.outputs). spec: dtype s8, scheme
/// symmetric, every zero point 0 (see the file comment); its qmin/qmax
/// (narrow_range, reduce_range, custom) are honoured.
CompressedNM<int8_t> quantize_compressed(const CompressedNM<float>& c, const QParams& qp,
                                         const QuantSpec& spec = {});
CompressedNM<int8_t> quantize_compressed(const CompressedNM<float>& c, const ChannelQParams& qp,
                                         const QuantSpec& spec);

}  // namespace sparq
