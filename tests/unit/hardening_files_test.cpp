// Issue 18 regression tests for files: what the loaders refuse (non-regular
// files, safetensors spec violations, observer counts that overflow, model
// file conv padding and non-finite FP32 parameters) and how saves write
// (modes, no temporary left behind by a killed save).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/files.hpp"
#include "nn/safetensors.hpp"
#include "sparq/nn/nn.hpp"
#include "sparq/observe/observers.hpp"
#include "support/error_of.hpp"
#include "support/file_image.hpp"
#include "util/fnv1a.hpp"
#include "support/temp_dir.hpp"

namespace nn = sparq::nn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using sparq::testing::TempDir;

void write_bytes(const fs::path& p, std::span<const std::byte> b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<std::byte> image(const std::string& header, const std::vector<std::byte>& data) {
  return sparq::testing::file_image(header, data);
}

sparq::nn::detail::StFile parse(const std::vector<std::byte>& bytes) {
  return sparq::nn::detail::parse_safetensors(bytes, "t.safetensors");
}

nn::QuantizedModel small_model() {
  nn::Sequential s{nn::Linear(4, 3), nn::ReLU(), nn::Linear(3, 2)};
  s.init_parameters(3);
  return nn::quantize_dynamic(s);
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 0777;
}

}  // namespace

// ---------------------------------------------------------------- defect 2
TEST(HardeningFiles, NonRegularFilesAreRefusedByNameWithoutBlocking) {
  TempDir dir;
  EXPECT_ERROR(nn::load_quantized(dir.path()), "is a directory");
  EXPECT_ERROR(nn::load_safetensors(dir.path()), "is a directory");
  EXPECT_ERROR(sparq::load_observer(dir.path()), "is a directory");
  nn::Sequential s{nn::Linear(2, 2)};
  EXPECT_ERROR(nn::load_weights(s, dir.path()), "is a directory");
  // A FIFO without a writer: opening it for reading would block forever.
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_ERROR(nn::load_quantized(dir / "fifo"), "is a FIFO");
  EXPECT_ERROR(sparq::load_observer(dir / "fifo"), "is a FIFO");
  if (fs::exists("/dev/null")) EXPECT_ERROR(nn::load_quantized("/dev/null"), "character device");
  EXPECT_ERROR(nn::load_quantized(dir / "missing"), "cannot open");
}

// ---------------------------------------------------------------- defect 3
TEST(HardeningFiles, SafetensorsSpecViolationsNameTheTensor) {
  const std::vector<std::byte> data(16, std::byte{0});
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string b = R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]})";
  ASSERT_NO_THROW(parse(image("{" + a + "," + b + "}", data)));
  // Duplicate tensor name (nlohmann alone would keep the last).
  EXPECT_ERROR(parse(image("{" + a + "," + b + "," + a + "}", data)), "tensor 'a' appears twice");
  // Duplicate __metadata__.
  EXPECT_ERROR(
      parse(image(R"({"__metadata__":{"x":"1"},)" + a + "," + b + R"(,"__metadata__":{"y":"2"}})",
                  data)),
      "two __metadata__");
  // Duplicate key inside a tensor entry.
  EXPECT_ERROR(
      parse(
          image(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]},)" + b + "}",
                data)),
      "key 'dtype' appears twice");
  // Overlap: b starts inside a.
  const std::string b_overlap = R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})";
  EXPECT_ERROR(parse(image("{" + a + "," + b_overlap + "}", std::vector<std::byte>(12))),
               "tensor 'b' data_offsets [4, 12] overlap tensor 'a'");
  // Gap between a and b.
  const std::string b_gap = R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]})";
  EXPECT_ERROR(parse(image("{" + a + "," + b_gap + "}", std::vector<std::byte>(20))),
               "tensor 'b' starts at 12");
  // Trailing bytes after the last tensor.
  EXPECT_ERROR(parse(image("{" + a + "," + b + "}", std::vector<std::byte>(20))),
               "4 trailing bytes after the last tensor 'b'");
  EXPECT_ERROR(parse(image("{}", std::vector<std::byte>(3))), "3 trailing bytes");
  // Zero-size tensors fit anywhere on the tiling.
  const std::string e = R"("e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]})";
  EXPECT_NO_THROW(parse(image("{" + a + "," + e + "," + b + "}", data)));
}

// ---------------------------------------------------------------- defect 1 (files)
TEST(HardeningFiles, SizesBeyondTheLimitsAreErrors) {
  // 2^62 x 4 F32 would wrap a 64-bit byte count.
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})";
  EXPECT_ERROR(parse(image(h, std::vector<std::byte>(16))), "exceeds the limit");
  const std::string h2 =
      R"({"a":{"dtype":"F32","shape":[16777216,16777216,16777216],"data_offsets":[0,16]}})";
  EXPECT_ERROR(parse(image(h2, std::vector<std::byte>(16))), "element count exceeds the limit");
}

TEST(HardeningFiles, ModelFileConvPaddingIsBoundedByTheKernel) {
  nn::Sequential s;
  s.add(nn::Conv2d(1, 2, 3, {.padding = {1, 1}})).add(nn::Flatten());
  s.init_parameters(1);
  const TempDir dir;
  nn::save(nn::quantize_dynamic(s), dir / "c.sparq");
  std::vector<std::byte> bytes = sparq::detail::read_regular_file(dir / "c.sparq", "test");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(std::string(reinterpret_cast<const char*>(bytes.data()) + 8, n));
  const std::vector<std::byte> data(bytes.begin() + static_cast<std::ptrdiff_t>(8 + n),
                                    bytes.end());
  json model = json::parse(header["__metadata__"]["model"].get<std::string>());
  ASSERT_NO_THROW(nn::load_quantized(std::span<const std::byte>(bytes)));
  for (const int64_t pad : {int64_t{3}, int64_t{1} << 24}) {
    model["units"][0]["padding"] = {pad, 1};
    header["__metadata__"]["model"] = model.dump();
    const std::vector<std::byte> bad = image(header.dump(), data);
    EXPECT_ERROR(nn::load_quantized(std::span<const std::byte>(bad)),
                 "must be at most dilation * (kernel - 1) = 2x2");
  }
}

// ---------------------------------------------------------------- defect 7 (files)
TEST(HardeningFiles, NonFiniteFp32ParametersAreRefusedLikeQuantizedOnes) {
  nn::Sequential s{nn::Linear(3, 2)};
  s.init_parameters(5);
  nn::Calibrator cal(s);
  nn::Tensor x({2, 3});
  for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = 0.1f * static_cast<float>(i);
  cal.observe(x);
  nn::StaticConfig keep;
  keep.overrides["0"].keep_fp32 = true;
  const TempDir dir;
  nn::save(nn::quantize_static(cal, keep), dir / "f.sparq");
  std::vector<std::byte> bytes = sparq::detail::read_regular_file(dir / "f.sparq", "test");
  ASSERT_NO_THROW(nn::load_quantized(std::span<const std::byte>(bytes)));
  const auto file = parse(bytes);
  const auto it = file.tensors.find("0.0.weight");  // FP32 block, layer 0, weight
  ASSERT_NE(it, file.tensors.end());
  const auto at = static_cast<std::size_t>(it->second.bytes.data() - bytes.data());
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<std::byte> b = bytes;
    std::memcpy(b.data() + at + 4, &bad, 4);
    EXPECT_ERROR(nn::load_quantized(std::span<const std::byte>(b)),
                 "tensor '0.0.weight' value [1] is");
  }
  // load_weights applies the same rule to FP32 parameters.
  nn::TensorMap params = s.state_dict();
  params["0.weight"].data[2] = std::numeric_limits<float>::quiet_NaN();
  nn::save_safetensors(dir / "w.safetensors", params);
  nn::Sequential t{nn::Linear(3, 2)};
  EXPECT_ERROR(nn::load_weights(t, dir / "w.safetensors"), "tensor '0.weight' value [2] is nan");
}

// ---------------------------------------------------------------- defect 4
namespace {

// Frame: magic 8, version 4, payload size 8, payload, FNV-1a 8. Payload:
// config (42 bytes), stats observed/nan/inf (i64 at 42, 50, 58), state.
constexpr std::size_t kHead = 20;
constexpr std::size_t kStats = 42;
constexpr std::size_t kState = 66;

template <class T>
void poke(std::vector<std::byte>& file, std::size_t payload_offset, T v) {
  std::memcpy(file.data() + kHead + payload_offset, &v, sizeof v);
  const std::size_t size = file.size() - kHead - 8;
  const uint64_t sum =
      sparq::detail::fnv1a64(std::span<const std::byte>(file).subspan(kHead, size));
  std::memcpy(file.data() + file.size() - 8, &sum, 8);
}

}  // namespace

TEST(HardeningFiles, ObserverCountsThatOverflowAreRefused) {
  const TempDir dir;
  std::vector<float> x(64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 20.0f;
  const std::vector<int64_t> shape{8, 8};
  {
    sparq::ObserverConfig c;
    c.kind = sparq::ObserverKind::histogram;
    c.bins = 16;
    auto h = sparq::make_observer(c);
    h->observe(x, shape);
    h->save(dir / "h.obs");
    ASSERT_NO_THROW(sparq::load_observer(dir / "h.obs"));
    std::vector<std::byte> f = sparq::detail::read_regular_file(dir / "h.obs", "test");
    // counts start after min, max, exponent, k0, bins (4 + 4 + 4 + 8 + 4).
    const std::size_t counts = kState + 24;
    uint64_t c0 = 0, c1 = 0;
    std::memcpy(&c0, f.data() + kHead + counts, 8);
    std::memcpy(&c1, f.data() + kHead + counts + 8, 8);
    // Both counts gain 2^63: the sum wraps back to the true total.
    poke<uint64_t>(f, counts, c0 + (uint64_t{1} << 63));
    poke<uint64_t>(f, counts + 8, c1 + (uint64_t{1} << 63));
    write_bytes(dir / "wrap.obs", f);
    EXPECT_ERROR(sparq::load_observer(dir / "wrap.obs"), "takes the total beyond");
  }
  {
    auto m = sparq::make_observer(sparq::ObserverConfig{});
    m->observe(x, shape);
    m->save(dir / "m.obs");
    std::vector<std::byte> f = sparq::detail::read_regular_file(dir / "m.obs", "test");
    // observed = nan = INT64_MAX, inf = 1: finite() would overflow int64.
    const int64_t big = std::numeric_limits<int64_t>::max();
    poke<int64_t>(f, kStats, big);
    poke<int64_t>(f, kStats + 8, big);
    poke<int64_t>(f, kStats + 16, 1);
    write_bytes(dir / "nan.obs", f);
    EXPECT_ERROR(sparq::load_observer(dir / "nan.obs"), "inconsistent");
    // More batches than values: merged batch counts could overflow.
    std::vector<std::byte> g = sparq::detail::read_regular_file(dir / "m.obs", "test");
    poke<int64_t>(g, kState + 8, 65);  // batches, after min and max; 64 values observed
    write_bytes(dir / "batches.obs", g);
    EXPECT_ERROR(sparq::load_observer(dir / "batches.obs"), "expected 0 <= batches <= 64");
  }
  {
    // A per-channel observer that saw nothing has 0 channels: it loads
    // (no memcpy to a null buffer, which UBSan reports) and equals itself.
    sparq::ObserverConfig c;
    c.kind = sparq::ObserverKind::per_channel_minmax;
    auto p = sparq::make_observer(c);
    p->save(dir / "p.obs");
    const auto q = sparq::load_observer(dir / "p.obs");
    EXPECT_EQ(q->stats(), p->stats());
  }
  {
    // Merging two loaded observers whose counts add beyond int64.
    auto a = sparq::make_observer(sparq::ObserverConfig{});
    a->observe(x, shape);
    a->save(dir / "a.obs");
    std::vector<std::byte> f = sparq::detail::read_regular_file(dir / "a.obs", "test");
    const int64_t big = int64_t{1} << 62;  // the largest count a file may hold
    poke<int64_t>(f, kStats, big);
    write_bytes(dir / "big.obs", f);
    auto b1 = sparq::load_observer(dir / "big.obs");
    const auto b2 = sparq::load_observer(dir / "big.obs");
    EXPECT_ERROR(b1->merge(*b2), "overflow int64");
  }
}

// ---------------------------------------------------------------- defect 5
TEST(HardeningFiles, SavesKeepTheExistingModeElseRespectTheUmask) {
  const TempDir dir;
  const nn::QuantizedModel q = small_model();
  const mode_t old_mask = ::umask(077);
  nn::save(q, dir / "new.sparq");
  EXPECT_EQ(mode_of(dir / "new.sparq"), 0600u);
  ::umask(022);
  nn::save(q, dir / "new2.sparq");
  EXPECT_EQ(mode_of(dir / "new2.sparq"), 0644u);
  // Replacing a file keeps its mode, whatever the umask.
  ASSERT_EQ(::chmod((dir / "new2.sparq").c_str(), 0600), 0);
  nn::save(q, dir / "new2.sparq");
  EXPECT_EQ(mode_of(dir / "new2.sparq"), 0600u);
  ASSERT_EQ(::chmod((dir / "new2.sparq").c_str(), 0640), 0);
  ::umask(077);
  nn::save(q, dir / "new2.sparq");
  EXPECT_EQ(mode_of(dir / "new2.sparq"), 0640u);
  ::umask(old_mask);
  EXPECT_NO_THROW(nn::load_quantized(dir / "new2.sparq"));
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"new.sparq", "new2.sparq"}));
}

TEST(HardeningFiles, StaleTemporariesOfDeadSavesAreRemovedLiveOnesKept) {
  const TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // `child` is now a dead process id
  const std::string prefix = sparq::detail::atomic_temp_prefix(dir / "m.sparq");
  const std::string dead = prefix + std::to_string(child) + ".1a2b";
  const std::string live = prefix + std::to_string(::getpid()) + ".3c4d";
  const std::string other = ".other.sparq.sparq-tmp." + std::to_string(child) + ".5e";
  // The temporary of a target named "m.sparq.sparq-tmp.<pid>" starts with
  // the same prefix.
  const std::string extended =
      prefix + std::to_string(child) + ".sparq-tmp." + std::to_string(child) + ".7f";
  for (const auto& name : {dead, live, other, extended})
    write_bytes(dir / name, std::vector<std::byte>(7));
  nn::save(small_model(), dir / "m.sparq");
  EXPECT_FALSE(fs::exists(dir / dead));
  EXPECT_TRUE(fs::exists(dir / live));   // this process is alive: maybe another thread's save
  EXPECT_TRUE(fs::exists(dir / other));  // another target's temporary is not ours to remove
  EXPECT_TRUE(fs::exists(dir / extended));
}

TEST(HardeningFiles, AKilledSaveLeavesNothingAfterTheNextSave) {
  const TempDir dir;
  // 8 MB tensors: a save takes long enough to be killed in the middle.
  nn::TensorMap big;
  big["w"] = nn::Tensor({2048, 1024});
  for (int round = 0; round < 3; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (;;) nn::save_safetensors(dir / "w.safetensors", big);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + 20 * round));
    ::kill(child, SIGKILL);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
    // Whatever the kill interrupted, the target is either absent or complete.
    if (fs::exists(dir / "w.safetensors")) {
      EXPECT_NO_THROW(nn::load_safetensors(dir / "w.safetensors"));
    }
  }
  nn::save_safetensors(dir / "w.safetensors", big);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"});
}
