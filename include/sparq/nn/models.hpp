// Model builders whose node names are the state_dict keys of the reference
// implementations, so their trained weights load with one call:
//
//   nn::Graph g = nn::resnet50();
//   nn::load_weights(g, "resnet50.safetensors");   // torchvision state_dict, OIHW
//
// CNNs take NHWC input [batch][224][224][3] (any size the strides allow) and
// return logits [batch][num_classes]. BERT takes two inputs, "input_ids" and
// "attention_mask" ([batch][seq], FP32 holding integers; mask 1 = token,
// 0 = padding) and returns the classifier logits [batch][num_labels].
#pragma once

#include <cstdint>

#include "sparq/nn/graph.hpp"

namespace sparq::nn {

/// torchvision.models.resnet18 / resnet50 (v1.5: stride on the 3x3 conv).
Graph resnet18(int64_t num_classes = 1000);
Graph resnet50(int64_t num_classes = 1000);
/// torchvision.models.mobilenet_v2 (width 1.0).
Graph mobilenet_v2(int64_t num_classes = 1000);

/// Hugging Face BertForSequenceClassification's shape and names
/// ("bert.embeddings.word_embeddings.weight", ..., "classifier.weight").
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_positions = 512;
  int64_t type_vocab_size = 2;
  int64_t num_labels = 2;
  float layer_norm_eps = 1e-12f;
};
BertConfig bert_base_config();  ///< the defaults above
BertConfig bert_tiny_config();  ///< 2 layers, hidden 128, 2 heads, intermediate 512
Graph bert(const BertConfig& config);

}  // namespace sparq::nn
