// sparq bench model: latency and weight bytes of a whole model, FP32 and
// INT8, next to PyTorch on the same machine (see bench_model.hpp).
//
//   sparq bench model NAME [--int8|--fp32|--both] [--threads N] [--batch B]
//                          [--repeat R] [--size 224] [--seq 128] [--json]
//                          [--no-peer] [--peer-script PATH] [--python EXE]
//
// NAME: resnet18, resnet50, mobilenet_v2 (NHWC input [B][size][size][3]),
// bert-tiny, bert-base (input_ids uniform in [0, vocab), attention_mask all
// ones, [B][seq]). Weights are random (Graph::init_parameters, fixed seed):
// latency does not depend on their values. Variants:
//   fp32          nn::freeze(graph).forward: BatchNorm folded, weights
//                 packed once, ReLU fused into the GEMM store (sparq's best
//                 FP32; Graph::forward packs the weights on every call)
//   int8          CNNs: quantize_static after a GraphCalibrator saw two
//                 random batches; BERT: quantize_dynamic with per-row
//                 activation scales
//   pytorch-fp32  torchvision / torch eager, and pytorch-int8 (CNNs: FX
//                 static quantization; BERT: dynamic), measured by
//                 tests/pytorch/bench_model_peer.py in a child process with
//                 the same threads, batch and repeats
// Each is timed as the median of R forward calls after one warm-up call.
#include <fmt/format.h>

#include <stdio.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "commands/bench_args.hpp"
#include "commands/bench_gemm.hpp"
#include "commands/bench_model.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/graph_frozen.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/threads.hpp"

namespace {

namespace nn = sparq::nn;
using sparq::detail::fail;
using namespace sparq::tool::bench_args;

constexpr const char* kCommand = "bench model";
constexpr const char* kModels[] = {"resnet18", "resnet50", "mobilenet_v2", "bert-tiny",
                                   "bert-base"};
// Image sizes: 32 is the smallest every CNN here reduces to 1x1 without an
// empty feature map (five stride-2 stages); 4096 keeps one FP32 activation
// of ResNet's first stage (2048 x 2048 x 64 floats, 1 GiB) within memory.
constexpr int64_t kMinSize = 32, kMaxSize = 4096;
// Batches: beyond 1024 images or sequences one forward call holds tens of
// GiB of activations.
constexpr int64_t kMaxBatch = 1024;
// Weights and calibration data come from fixed seeds, so runs are comparable.
constexpr uint64_t kWeightSeed = 42;
constexpr uint32_t kInputSeed = 7;

struct Options {
  std::string model;
  bool fp32 = true;
  bool int8 = true;
  int threads = 1;
  int64_t batch = 1;
  int repeat = 5;
  int64_t size = 224;
  int64_t seq = 128;
  bool json = false;
  bool peer = true;
  bool profile = false;
  std::string peer_script;
  std::string python = "python3";
};

struct Record {
  std::string model;
  std::string variant;
  int64_t batch = 0;
  int threads = 0;
  std::size_t bytes = 0;
  double ms = 0;
};

bool is_bert(const std::string& model) { return model.starts_with("bert-"); }

nn::BertConfig bert_config(const std::string& model) {
  return model == "bert-tiny" ? nn::bert_tiny_config() : nn::bert_base_config();
}

std::string default_peer_script() {
#if defined(SPARQ_SOURCE_DIR)
  return std::string(SPARQ_SOURCE_DIR) + "/tests/pytorch/bench_model_peer.py";
#else
  return {};
#endif
}

void print_usage() {
  fmt::print(
      "usage: sparq bench model NAME [--int8|--fp32|--both] [--threads N] [--batch B]\n"
      "                              [--repeat R] [--size 224] [--seq 128] [--json]\n"
      "                              [--no-peer] [--peer-script PATH] [--python EXE]\n"
      "                              [--profile]\n"
      "  NAME: resnet18, resnet50, mobilenet_v2, bert-tiny, bert-base (random weights).\n"
      "  Median latency of R forward calls after one warm-up and the weight bytes of\n"
      "  sparq FP32 (nn::freeze: BatchNorm folded, weights packed once) and INT8 (CNNs: "
      "quantize_static, 2 calibration\n"
      "  batches; BERT: quantize_dynamic, per-row activations), and of PyTorch when\n"
      "  python3 has torch (tests/pytorch/bench_model_peer.py; --no-peer skips it).\n"
      "  --size: CNN image height and width; --seq: BERT sequence length.\n"
      "  --profile: time per operator kind (conv by kernel shape) of each variant, averaged\n"
      "             over R runs (INT8: per quantized step, fusions included).\n");
}

Options parse(const sparq::tool::Args& args) {
  Options o;
  o.peer_script = default_peer_script();
  if (args.empty() || args[0].starts_with("-")) {
    fail(
        "{}: expected a model name first (one of resnet18, resnet50, mobilenet_v2, bert-tiny, "
        "bert-base), got '{}'",
        kCommand, args.empty() ? "" : args[0]);
  }
  o.model = args[0];
  if (std::find(std::begin(kModels), std::end(kModels), o.model) == std::end(kModels)) {
    fail(
        "{}: unknown model '{}'; expected resnet18, resnet50, mobilenet_v2, bert-tiny or "
        "bert-base",
        kCommand, o.model);
  }
  bool size_given = false, seq_given = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) fail("{}: {} needs a value", kCommand, a);
      return args[++i];
    };
    if (a == "--int8") {
      o.fp32 = false, o.int8 = true;
    } else if (a == "--fp32") {
      o.fp32 = true, o.int8 = false;
    } else if (a == "--both") {
      o.fp32 = o.int8 = true;
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_positive(kCommand, a, value(), kMaxThreads));
    } else if (a == "--batch") {
      o.batch = parse_positive(kCommand, a, value(), kMaxBatch);
    } else if (a == "--repeat") {
      o.repeat = static_cast<int>(parse_positive(kCommand, a, value(), kMaxRepeat));
    } else if (a == "--size") {
      o.size = parse_positive(kCommand, a, value(), kMaxSize);
      size_given = true;
    } else if (a == "--seq") {
      o.seq = parse_positive(kCommand, a, value(), bert_config("bert-base").max_positions);
      seq_given = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--profile") {
      o.profile = true;
    } else if (a == "--no-peer") {
      o.peer = false;
    } else if (a == "--peer-script") {
      o.peer_script = value();
    } else if (a == "--python") {
      o.python = value();
    } else {
      fail("{}: unknown option '{}' (see sparq bench model --help)", kCommand, a);
    }
  }
  if (is_bert(o.model) && size_given) {
    fail("{}: --size applies to the CNNs; {} takes --seq", kCommand, o.model);
  }
  if (!is_bert(o.model) && seq_given) {
    fail("{}: --seq applies to BERT; {} takes --size", kCommand, o.model);
  }
  if (!is_bert(o.model) && o.size < kMinSize) {
    fail("{}: --size {} is too small; expected {} <= size <= {}", kCommand, o.size, kMinSize,
         kMaxSize);
  }
  return o;
}

// Refuses a batch whose activations cannot fit before building anything. A
// rough upper estimate of the live FP32 activations per image or sequence,
// about three maps (input, output, residual) of the widest layer:
//   CNNs: ResNet's stem output (64 channels at size/2) and MobileNetV2's
//         first expansion (96 channels at size/2): <= 24 size^2 floats;
//   BERT: the feed-forward activation (intermediate per token) and the
//         attention scores (heads x seq per token).
void check_memory(const Options& o) {
  const auto batch = static_cast<uint64_t>(o.batch);
  uint64_t per_item = 0;
  if (is_bert(o.model)) {
    const nn::BertConfig c = bert_config(o.model);
    const auto seq = static_cast<uint64_t>(o.seq);
    per_item = 3 * 4 * seq *
               static_cast<uint64_t>(c.intermediate_size + c.num_heads * o.seq + c.hidden_size);
  } else {
    const auto size = static_cast<uint64_t>(o.size);
    per_item = 3 * 4 * 24 * size * size;
  }
  const uint64_t need = batch * per_item;  // < 2^64: batch <= 2^10, size <= 2^12, seq <= 2^9
  const uint64_t available = available_memory();
  if (need > available) {
    fail(
        "{}: {} at batch {} needs about {} MiB of activations but {} MiB of memory are "
        "available; use a smaller --batch{}",
        kCommand, o.model, o.batch, need >> 20, available >> 20,
        is_bert(o.model) ? " or --seq" : " or --size");
  }
}

nn::Graph build(const std::string& model) {
  if (model == "resnet18") return nn::resnet18();
  if (model == "resnet50") return nn::resnet50();
  if (model == "mobilenet_v2") return nn::mobilenet_v2();
  return nn::bert(bert_config(model));
}

// One set of graph inputs: an NHWC image batch (standard normal, like
// normalised pixels), or BERT's token ids and an all-ones mask.
std::vector<nn::Tensor> random_inputs(const Options& o, std::mt19937& rng) {
  if (is_bert(o.model)) {
    const int64_t vocab = bert_config(o.model).vocab_size;
    std::uniform_int_distribution<int64_t> token(0, vocab - 1);
    nn::Tensor ids({o.batch, o.seq});
    for (float& v : ids.data) v = static_cast<float>(token(rng));
    nn::Tensor mask({o.batch, o.seq});
    std::fill(mask.data.begin(), mask.data.end(), 1.0f);
    return {ids, mask};
  }
  nn::Tensor x({o.batch, o.size, o.size, 3});
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x.data) v = normal(rng);
  return {x};
}

double median_ms(const std::function<void()>& fn, int repeat) {
  // min_seconds 0: one call per repetition (a model call is long enough to time alone).
  return sparq::tool::gemm_bench::median_seconds(fn, repeat, 0.0) * 1e3;
}

// Records go out as JSON lines as they are measured (--json), or as one table
// once every variant, the peer's included, is in: its "x best fp32" column is
// each variant's speedup over the faster FP32 of the run, sparq's or
// PyTorch's (docs/design.md rule 11).
class Printer {
 public:
  explicit Printer(const Options& o) : o_(o) {}

  void print(const Record& r) {
    if (!o_.json) {
      records_.push_back(r);
      return;
    }
    const nlohmann::json j = {{"model", r.model},     {"variant", r.variant}, {"batch", r.batch},
                              {"threads", r.threads}, {"bytes", r.bytes},     {"ms", r.ms},
                              {"input", input_size()}};
    fmt::print("{}\n", j.dump());
    std::fflush(stdout);
  }

  /// A variant's profile: one JSON line now, or a table sorted by time at the end.
  void profile(const std::string& variant, const std::map<std::string, double>& ms_by_label) {
    if (!o_.json) {
      profiles_.emplace_back(variant, ms_by_label);
      return;
    }
    fmt::print("{}\n", nlohmann::json{{"model", o_.model},
                                      {"variant", variant + "-profile"},
                                      {"batch", o_.batch},
                                      {"threads", o_.threads},
                                      {"ms_by_op", ms_by_label}}
                           .dump());
    std::fflush(stdout);
  }

  /// Remarks (the peer skipped, ...): stderr with --json, so stdout stays JSON lines.
  void note(const std::string& text) const {
    fmt::print(o_.json ? stderr : stdout, "note: {}\n", text);
    std::fflush(o_.json ? stderr : stdout);
  }

  /// The human table (nothing with --json).
  void finish() const {
    if (o_.json) return;
    const std::string input = is_bert(o_.model) ? fmt::format("sequence {}", o_.seq)
                                                : fmt::format("{}x{}", o_.size, o_.size);
    fmt::print(
        "sparq bench model {}: batch {}, {}, {} thread(s), median of {} runs after 1 "
        "warm-up\n",
        o_.model, o_.batch, input, o_.threads, o_.repeat);
    std::optional<double> best_fp32_ms;
    for (const Record& r : records_) {
      if (r.variant == "fp32" || r.variant == "pytorch-fp32")
        best_fp32_ms = std::min(r.ms, best_fp32_ms.value_or(r.ms));
    }
    fmt::print("{:<14} {:<14} {:>6} {:>8} {:>10} {:>10} {:>12}\n", "model", "variant", "batch",
               "threads", "MB", "ms", "x best fp32");
    for (const Record& r : records_) {
      fmt::print("{:<14} {:<14} {:>6} {:>8} {:>10.1f} {:>10.2f} {:>12}\n", r.model, r.variant,
                 r.batch, r.threads, static_cast<double>(r.bytes) / 1e6, r.ms,
                 best_fp32_ms ? fmt::format("{:.2f}", *best_fp32_ms / r.ms) : "-");
    }
    for (const auto& [variant, by_label] : profiles_) {
      std::vector<std::pair<double, std::string>> rows;
      double total = 0;
      for (const auto& [label, ms] : by_label) {
        rows.emplace_back(ms, label);
        total += ms;
      }
      std::sort(rows.rbegin(), rows.rend());
      fmt::print("{} time by operator (mean of {} runs):\n", variant, o_.repeat);
      for (const auto& [ms, label] : rows)
        fmt::print("  {:<24} {:>10.2f} ms {:>6.1f}%\n", label, ms, 100.0 * ms / total);
    }
  }

 private:
  int64_t input_size() const { return is_bert(o_.model) ? o_.seq : o_.size; }
  const Options& o_;
  std::vector<Record> records_;
  std::vector<std::pair<std::string, std::map<std::string, double>>> profiles_;
};

// Time per operator kind: the wall time between consecutive step (node)
// ends of a forward_visit, averaged over `repeat` calls after a warm-up.
template <class Visit>
std::map<std::string, double> profile_steps(const Options& o,
                                            const std::vector<std::string>& label_of_step,
                                            Visit&& forward_visit) {
  using Clock = std::chrono::steady_clock;
  std::map<std::string, double> ms_by_label;
  forward_visit([](std::size_t) {});
  for (int r = 0; r < o.repeat; ++r) {
    Clock::time_point last = Clock::now();
    forward_visit([&](std::size_t step) {
      const Clock::time_point now = Clock::now();
      ms_by_label[label_of_step[step]] +=
          std::chrono::duration<double, std::milli>(now - last).count() / o.repeat;
      last = now;
    });
  }
  return ms_by_label;
}

void profile_fp32(const Options& o, const nn::FrozenGraph& f, const std::vector<nn::Tensor>& inputs,
                  Printer& out) {
  out.profile("fp32", profile_steps(o, f.step_kinds(), [&](auto&& after) {
                (void)f.forward_visit(inputs, [&](std::size_t step) { after(step); });
              }));
}

void profile_int8(const Options& o, const nn::QuantizedGraph& q,
                  const std::vector<nn::Tensor>& inputs, Printer& out) {
  out.profile("int8", profile_steps(o, q.step_kinds(), [&](auto&& after) {
                (void)q.forward_visit(inputs, [&](std::size_t step) { after(step); });
              }));
}

void run_sparq(const Options& o, Printer& out) {
  sparq::set_num_threads(o.threads);
  nn::Graph g = build(o.model);
  g.init_parameters(kWeightSeed);
  std::mt19937 rng(kInputSeed);
  const std::vector<nn::Tensor> inputs = random_inputs(o, rng);
  // One row: the median time of `forward` and the weight bytes it reads.
  auto print_row = [&](const char* variant, std::size_t bytes,
                       const std::function<void()>& forward) {
    out.print(Record{o.model, variant, o.batch, o.threads, bytes, median_ms(forward, o.repeat)});
  };
  if (o.fp32) {
    const nn::FrozenGraph f = nn::freeze(g);
    print_row("fp32", f.weight_bytes(), [&] { (void)f.forward(inputs); });
    if (o.profile) profile_fp32(o, f, inputs, out);
  }
  if (o.int8) {
    nn::QuantizedGraph q;
    if (is_bert(o.model)) {
      q = nn::quantize_dynamic(g, {.per_row_activations = true});
    } else {
      nn::GraphCalibrator calibrator(g);
      for (int b = 0; b < 2; ++b) calibrator.observe(random_inputs(o, rng));
      q = nn::quantize_static(calibrator);
    }
    print_row("int8", q.weight_bytes(), [&] { (void)q.forward(inputs); });
    if (o.profile) profile_int8(o, q, inputs, out);
  }
}

// A shell word: single-quoted, with embedded quotes closed and escaped.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs the PyTorch peer and prints its JSON records. It exits 77 without
// torch (or torchvision for the CNNs): a note, not an error.
void run_peer(const Options& o, Printer& out) {
  if (o.peer_script.empty()) {
    out.note("PyTorch peer not run: no peer script known (pass --peer-script PATH)");
    return;
  }
  std::string variants = o.fp32 && o.int8 ? "fp32,int8" : o.fp32 ? "fp32" : "int8";
  const std::string cmd = fmt::format(
      "{} {} --model {} --batch {} --threads {} --repeat {} --size {} --seq {} --variants {}",
      shell_quote(o.python), shell_quote(o.peer_script), o.model, o.batch, o.threads, o.repeat,
      o.size, o.seq, variants);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
  if (!pipe) fail("{}: could not start the PyTorch peer: {}", kCommand, cmd);
  std::string line;
  int c;
  auto flush_line = [&] {
    if (line.empty()) return;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      out.note(fmt::format("PyTorch peer: {}", line));
    } else {
      out.print(Record{j.value("model", o.model), j.value("variant", std::string("pytorch")),
                       j.value("batch", o.batch), j.value("threads", o.threads),
                       j.value("bytes", std::size_t{0}), j.value("ms", 0.0)});
    }
    line.clear();
  };
  while ((c = std::fgetc(pipe.get())) != EOF) {
    if (c == '\n') {
      flush_line();
    } else {
      line += static_cast<char>(c);
    }
  }
  flush_line();
  const int status = ::pclose(pipe.release());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 77) {
    out.note("PyTorch peer skipped: python3 has no torch/torchvision");
  } else if (code != 0) {
    out.note(fmt::format("PyTorch peer failed (exit status {}): {}", code, cmd));
  }
}

}  // namespace

int run_model_bench(const sparq::tool::Args& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    print_usage();
    return 0;
  }
  const Options o = parse(args);
  check_memory(o);
  Printer out(o);
  run_sparq(o, out);
  if (o.peer) run_peer(o, out);
  out.finish();
  return 0;
}
