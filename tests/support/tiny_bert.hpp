// Small BERT configurations and inputs shared by the nn tests (nn_bert_test,
// nn_smoothquant_test, nn_transformer_int8_attention_test,
// nn_embedding_int8_test), and the SQNR they compare outputs with.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "sparq/nn/models.hpp"
#include "sparq/nn/tensor.hpp"

namespace sparq::test {

/// A BertConfig small enough for a unit test: vocabulary 50, 16 positions,
/// intermediate size 2 x hidden.
inline nn::BertConfig small_bert_config(int64_t hidden, int64_t layers, int64_t heads,
                                        int64_t labels = 2) {
  nn::BertConfig c;
  c.vocab_size = 50;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.intermediate_size = 2 * hidden;
  c.max_positions = 16;
  c.num_labels = labels;
  return c;
}

/// nn::bert's inputs {input_ids, attention_mask}, [batch][seq] each: ids
/// uniform in [0, vocab), the last `padded` positions of every sequence
/// masked out.
inline std::vector<nn::Tensor> bert_batch(int64_t batch, int64_t seq, int64_t vocab, int64_t padded,
                                          uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> id(0, static_cast<int>(vocab) - 1);
  nn::Tensor ids({batch, seq}), mask({batch, seq});
  for (std::size_t i = 0; i < ids.data.size(); ++i) {
    ids.data[i] = static_cast<float>(id(rng));
    mask.data[i] = static_cast<int64_t>(i) % seq < seq - padded ? 1.0f : 0.0f;
  }
  return {ids, mask};
}

/// 10 log10(signal / noise) of `test` against `reference` (same size), in dB.
inline double sqnr_db(const nn::Tensor& reference, const nn::Tensor& test) {
  double signal = 0, noise = 0;
  for (std::size_t i = 0; i < reference.data.size(); ++i) {
    signal += static_cast<double>(reference.data[i]) * reference.data[i];
    const double e = static_cast<double>(test.data[i]) - reference.data[i];
    noise += e * e;
  }
  return 10.0 * std::log10(signal / noise);
}

}  // namespace sparq::test
