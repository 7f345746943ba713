// BERT for sequence classification as a Graph (include/sparq/nn/models.hpp),
// node for node Hugging Face's BertForSequenceClassification: node names are
// its module paths, so its state_dict loads without renaming. Dropout is the
// identity at inference and has no node.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/models.hpp"

namespace sparq::nn {

using sparq::detail::fail;

BertConfig bert_base_config() { return {}; }

BertConfig bert_tiny_config() {
  BertConfig c;
  c.num_layers = 2;
  c.hidden_size = 128;
  c.num_heads = 2;
  c.intermediate_size = 512;
  return c;
}

namespace {

/// `who` names the public function in the message.
void validate(const BertConfig& c, const char* who) {
  const std::pair<const char*, int64_t> sizes[] = {{"vocab_size", c.vocab_size},
                                                   {"hidden_size", c.hidden_size},
                                                   {"num_layers", c.num_layers},
                                                   {"num_heads", c.num_heads},
                                                   {"intermediate_size", c.intermediate_size},
                                                   {"max_positions", c.max_positions},
                                                   {"type_vocab_size", c.type_vocab_size},
                                                   {"num_labels", c.num_labels}};
  for (const auto& [name, value] : sizes) {
    if (value < 1) fail("{}: config.{} ({}) must be >= 1", who, name, value);
  }
  if (c.hidden_size % c.num_heads != 0) {
    fail("{}: config.num_heads ({}) must divide config.hidden_size ({})", who, c.num_heads,
         c.hidden_size);
  }
  if (!(c.layer_norm_eps > 0.0f) || !std::isfinite(c.layer_norm_eps)) {
    fail("{}: config.layer_norm_eps ({}) must be finite and > 0", who, c.layer_norm_eps);
  }
}

}  // namespace

std::string add_bert_layer(Graph& g, const BertConfig& c, const std::string& p,
                           const std::string& x, const std::string& mask) {
  validate(c, "add_bert_layer");
  const int64_t h = c.hidden_size;
  const std::string query = g.add(p + ".attention.self.query", Linear(h, h), {x});
  const std::string key = g.add(p + ".attention.self.key", Linear(h, h), {x});
  const std::string value = g.add(p + ".attention.self.value", Linear(h, h), {x});
  std::vector<std::string> attention_inputs = {query, key, value};
  if (!mask.empty()) attention_inputs.push_back(mask);
  g.add(p + ".attention.self", Attention(c.num_heads), attention_inputs);
  const std::string dense = g.add(p + ".attention.output.dense", Linear(h, h));
  g.add(p + ".attention.output.residual", Add(), {dense, x});
  const std::string attention_out =
      g.add(p + ".attention.output.LayerNorm", LayerNorm(h, c.layer_norm_eps));
  g.add(p + ".intermediate.dense", Linear(h, c.intermediate_size));
  g.add(p + ".intermediate.intermediate_act_fn", GELU());  // Hugging Face's "gelu": erf form
  const std::string out = g.add(p + ".output.dense", Linear(c.intermediate_size, h));
  g.add(p + ".output.residual", Add(), {out, attention_out});
  return g.add(p + ".output.LayerNorm", LayerNorm(h, c.layer_norm_eps));
}

Graph bert(const BertConfig& c) {
  validate(c, "bert");
  const int64_t h = c.hidden_size;
  Graph g({"input_ids", "attention_mask"});
  // Embeddings: word + position + token type (every token_type_id is 0).
  const std::string words =
      g.add("bert.embeddings.word_embeddings", Embedding(c.vocab_size, h), {"input_ids"});
  const std::string positions = g.add("bert.embeddings.position_embeddings",
                                      Embedding(c.max_positions, h, true), {"input_ids"});
  const std::string types = g.add("bert.embeddings.token_type_embeddings",
                                  Embedding(c.type_vocab_size, h, false, 0), {"input_ids"});
  g.add("bert.embeddings.add_positions", Add(), {words, positions});
  g.add("bert.embeddings.add_token_types", Add(), {"bert.embeddings.add_positions", types});
  std::string x = g.add("bert.embeddings.LayerNorm", LayerNorm(h, c.layer_norm_eps));
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    x = add_bert_layer(g, c, "bert.encoder.layer." + std::to_string(layer), x, "attention_mask");
  }
  const std::string last_hidden_state = x;
  // Pooler: dense + tanh on the first ([CLS]) token.
  g.add("bert.pooler.first_token", SelectIndex{.axis = 1, .index = 0}, {last_hidden_state});
  g.add("bert.pooler.dense", Linear(h, h));
  g.add("bert.pooler.activation", Tanh());
  g.add("classifier", Linear(h, c.num_labels));
  g.set_outputs({"classifier", last_hidden_state});
  return g;
}

}  // namespace sparq::nn
