// nn::bert: Hugging Face's parameter names and counts, output shapes, the
// padding mask, config checks. The comparison with PyTorch's numbers is the
// bert_pytorch ctest (tests/pytorch/).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/threads.hpp"
#include "support/tiny_bert.hpp"

namespace nn = sparq::nn;

namespace {

// Every state_dict key of Hugging Face's BertForSequenceClassification
// (without the position_ids / token_type_ids buffers, which are not parameters).
std::set<std::string> hf_keys(int64_t layers) {
  std::set<std::string> keys = {"bert.embeddings.word_embeddings.weight",
                                "bert.embeddings.position_embeddings.weight",
                                "bert.embeddings.token_type_embeddings.weight",
                                "bert.embeddings.LayerNorm.weight",
                                "bert.embeddings.LayerNorm.bias",
                                "bert.pooler.dense.weight",
                                "bert.pooler.dense.bias",
                                "classifier.weight",
                                "classifier.bias"};
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "bert.encoder.layer." + std::to_string(l) + ".";
    for (const char* module : {"attention.self.query", "attention.self.key", "attention.self.value",
                               "attention.output.dense", "attention.output.LayerNorm",
                               "intermediate.dense", "output.dense", "output.LayerNorm"}) {
      keys.insert(p + module + ".weight");
      keys.insert(p + module + ".bias");
    }
  }
  return keys;
}

int64_t parameter_count(const nn::TensorMap& state) {
  int64_t n = 0;
  for (const auto& [key, t] : state) n += t.numel();
  return n;
}

// Hidden 32, 2 layers, 4 heads, intermediate 64, 3 labels.
nn::BertConfig small_config() { return sparq::test::small_bert_config(32, 2, 4, 3); }

}  // namespace

TEST(Bert, TinyHasHuggingFacesParameterNamesAndCount) {
  const nn::Graph g = nn::bert(nn::bert_tiny_config());
  const nn::TensorMap state = g.state_dict();
  std::set<std::string> keys;
  for (const auto& [key, t] : state) keys.insert(key);
  // 41 tensors: 5 embedding, 16 per layer x 2, 2 pooler, 2 classifier.
  EXPECT_EQ(keys.size(), 41u);
  EXPECT_EQ(keys, hf_keys(2));
  // prajjwal1/bert-tiny with a 2-label head: 3,972,864 embedding (30522 + 512
  // + 2 rows of 128, LayerNorm 256) + 2 x 198,272 per layer + 16,512 pooler
  // + 258 classifier = 4,386,178.
  EXPECT_EQ(parameter_count(state), 4'386'178);
  EXPECT_EQ(state.at("bert.encoder.layer.1.intermediate.dense.weight").shape,
            (std::vector<int64_t>{512, 128}));
  EXPECT_EQ(state.at("bert.embeddings.LayerNorm.weight").data.front(), 1.0f);  // starts at 1
}

TEST(Bert, BaseConfigIsBertBaseUncased) {
  const nn::BertConfig c = nn::bert_base_config();
  EXPECT_EQ(c.vocab_size, 30522);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.num_layers, 12);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.max_positions, 512);
  EXPECT_EQ(c.layer_norm_eps, 1e-12f);
  // bert-base-uncased's 109,482,240 parameters + the 768 x 2 + 2 classifier.
  EXPECT_EQ(nn::bert(c).weight_bytes(), 109'483'778u * sizeof(float));
}

TEST(Bert, OutputsLogitsAndTheLastHiddenState) {
  nn::Graph g = nn::bert(small_config());
  g.init_parameters(1);
  ASSERT_EQ(g.input_names(), (std::vector<std::string>{"input_ids", "attention_mask"}));
  EXPECT_EQ(g.outputs(),
            (std::vector<std::string>{"classifier", "bert.encoder.layer.1.output.LayerNorm"}));
  const nn::Tensor ids({2, 7}, {1, 5, 9, 13, 2, 0, 0, 1, 44, 3, 49, 8, 7, 6});
  const nn::Tensor mask({2, 7}, {1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1});
  const std::vector<nn::Tensor> out = g.forward_outputs({ids, mask});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out[1].shape, (std::vector<int64_t>{2, 7, 32}));
  for (const nn::Tensor& t : out)
    for (float v : t.data) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(g.forward({ids, mask}).data, out[0].data);  // forward: the first output
}

TEST(Bert, PaddedTokensDoNotChangeTheOutput) {
  nn::Graph g = nn::bert(small_config());
  g.init_parameters(2);
  nn::Tensor ids({2, 6}, {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
  const nn::Tensor mask({2, 6}, {1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1});
  const std::vector<nn::Tensor> before = g.forward_outputs({ids, mask});
  ids.data[4] = 42;  // sequence 0's first padded token
  const std::vector<nn::Tensor> padded_changed = g.forward_outputs({ids, mask});
  // A padded key's softmax weight is exactly 0: the logits and the hidden
  // states of the real tokens are bit-identical.
  EXPECT_EQ(padded_changed[0].data, before[0].data);
  for (int64_t i = 0; i < 4 * 32; ++i) EXPECT_EQ(padded_changed[1].data[i], before[1].data[i]) << i;
  // The same change on an attended token does move sequence 0's logits (the
  // test can fail), and leaves sequence 1's alone.
  ids.data[4] = 8;
  ids.data[2] = 42;
  const std::vector<nn::Tensor> real_changed = g.forward_outputs({ids, mask});
  EXPECT_NE(real_changed[0].data[0], before[0].data[0]);
  for (int64_t i = 3; i < 6; ++i) EXPECT_EQ(real_changed[0].data[i], before[0].data[i]);
}

TEST(Bert, RejectsBadConfigsAndIds) {
  nn::BertConfig c = small_config();
  c.num_heads = 5;
  EXPECT_THROW(nn::bert(c), sparq::Error);
  try {
    nn::bert(c);
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_heads (5)"), std::string::npos) << e.what();
  }
  c = small_config();
  c.num_layers = 0;
  EXPECT_THROW(nn::bert(c), sparq::Error);
  c = small_config();
  c.layer_norm_eps = 0.0f;
  EXPECT_THROW(nn::bert(c), sparq::Error);
  nn::Graph g = nn::bert(small_config());
  const nn::Tensor mask({1, 2}, {1, 1});
  try {
    g.forward({nn::Tensor({1, 2}, {3, 50}), mask});
    ADD_FAILURE() << "id 50 of a 50-row vocabulary accepted";
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("id (50)"), std::string::npos) << e.what();
  }
}

// FP32 latency at sequence 128, batch 1 (docs/transformers.md), for bert-tiny
// and bert-base with random weights: the median of repeated forwards after a
// warm-up, at 1 thread and at the machine's count. Not a correctness test:
// run it with --gtest_also_run_disabled_tests --gtest_filter='*Latency*'.
TEST(Bert, DISABLED_LatencySeq128Batch1) {
  const int64_t seq = 128;
  const nn::Tensor mask({1, seq}, std::vector<float>(seq, 1.0f));
  nn::Tensor ids({1, seq});
  std::mt19937 rng(3);
  for (float& id : ids.data)
    id = static_cast<float>(std::uniform_int_distribution<int>(0, 30521)(rng));
  const int saved = sparq::num_threads();
  for (const auto& [name, config] : {std::pair{"bert-tiny", nn::bert_tiny_config()},
                                     std::pair{"bert-base", nn::bert_base_config()}}) {
    nn::Graph g = nn::bert(config);
    g.init_parameters(4);
    const int reps = config.num_layers > 2 ? 7 : 51;
    for (const int threads : {1, saved}) {
      sparq::set_num_threads(threads);
      g.forward({ids, mask});  // warm-up: scratch buffers, page faults
      std::vector<double> ms;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        g.forward({ids, mask});
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
      std::printf("%s FP32 seq %lld batch 1, %d thread(s): median %.2f ms of %d runs\n", name,
                  static_cast<long long>(seq), threads, ms[reps / 2], reps);
    }
  }
  sparq::set_num_threads(saved);
}
