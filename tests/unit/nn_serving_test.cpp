// The serving path: QuantizedModel::forward(TensorView, Workspace&) reads
// the caller's buffer in place, gives the bytes forward(Tensor) gives, and
// once the workspace has seen the largest batch it allocates nothing (one
// thread, INT8 units only). Allocations are counted by replacing the global
// operator new in this test binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/nn.hpp"
#include "sparq/threads.hpp"
#include "support/isa_param.hpp"

// GCC sees free() on memory from the (replaced) operator new and warns of a
// mismatch; here both sides are malloc/free by construction.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  const auto align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

namespace nn = sparq::nn;

/// Allocations made by f().
template <class F>
long allocations_in(F&& f) {
  g_allocations = 0;
  g_counting = true;
  f();
  g_counting = false;
  return g_allocations.load();
}

nn::Tensor random_input(std::vector<int64_t> shape, uint32_t seed) {
  nn::Tensor x(std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 2.0f);
  for (float& v : x.data) v = u(rng);
  return x;
}

/// A small CNN (conv + fused pool, a second conv, flatten, linear) and an
/// MLP, each quantized statically and dynamically.
std::vector<std::pair<std::string, nn::QuantizedModel>> models() {
  nn::Sequential cnn;
  cnn.add(nn::Conv2d(1, 8, 3, {.padding = {1, 1}}))
      .add(nn::ReLU())
      .add(nn::MaxPool2d(2))
      .add(nn::Conv2d(8, 4, 3, {.stride = {2, 2}}))
      .add(nn::ReLU())
      .add(nn::Flatten())
      .add(nn::Linear(4 * 3 * 3, 10));
  cnn.init_parameters(3);
  nn::Sequential mlp;
  mlp.add(nn::Linear(20, 16)).add(nn::ReLU()).add(nn::Linear(16, 5));
  mlp.init_parameters(4);
  std::vector<std::pair<std::string, nn::QuantizedModel>> out;
  for (auto [name, model, shape] : {std::tuple{"cnn", &cnn, std::vector<int64_t>{16, 14, 14, 1}},
                                    std::tuple{"mlp", &mlp, std::vector<int64_t>{16, 20}}}) {
    nn::CalibrationConfig cc;
    cc.observer.kind = sparq::ObserverKind::minmax;
    cc.keep_samples = 0;
    nn::Calibrator cal(*model, cc);
    cal.observe(random_input(shape, 5));
    out.emplace_back(std::string(name) + " static", nn::quantize_static(cal));
    out.emplace_back(std::string(name) + " dynamic", nn::quantize_dynamic(*model));
  }
  return out;
}

std::vector<int64_t> input_shape(const std::string& name, int64_t batch) {
  if (name.starts_with("cnn")) return {batch, 14, 14, 1};
  return {batch, 20};
}

class Serving : public sparq::testing::IsaTest {};

TEST_P(Serving, GivesTheBytesOfForwardOnTheCallersBuffer) {
  for (auto& [name, q] : models()) {
    SCOPED_TRACE(name);
    nn::Workspace ws;
    for (int64_t batch : {7, 1, 16}) {
      const nn::Tensor x = random_input(input_shape(name, batch), static_cast<uint32_t>(batch));
      const nn::Tensor expected = q.forward(x);
      const nn::TensorView y = q.forward(nn::TensorView(x.data.data(), x.shape), ws);
      ASSERT_EQ(std::vector<int64_t>(y.shape.begin(), y.shape.end()), expected.shape);
      ASSERT_EQ(std::vector<float>(y.data, y.data + y.numel()), expected.data);
      EXPECT_EQ(nn::argmax(y), nn::argmax(expected));
    }
  }
}

TEST_P(Serving, AllocatesNothingOnceTheWorkspaceHasGrown) {
  sparq::set_num_threads(1);  // OpenMP's team may allocate; documented as one thread
  for (auto& [name, q] : models()) {
    SCOPED_TRACE(name);
    nn::Workspace ws;
    const nn::Tensor big = random_input(input_shape(name, 16), 1);
    const nn::Tensor small = random_input(input_shape(name, 3), 2);
    q.forward(big, ws);  // grows the workspace and the kernels' per-thread buffers
    q.forward(small, ws);
    float checksum = 0.0f;
    const long n = allocations_in([&] {
      for (int rep = 0; rep < 3; ++rep) {
        checksum += q.forward(big, ws).data[0];
        checksum += q.forward(small, ws).data[0];
      }
    });
    EXPECT_EQ(n, 0) << "allocations in 6 warm calls";
    EXPECT_EQ(checksum, checksum);  // the results were used (and are not NaN)
    // The counter itself works: forward(Tensor) builds its output Tensor.
    EXPECT_GT(allocations_in([&] { (void)q.forward(small); }), 0);
  }
  sparq::set_num_threads(0);
}

TEST(ServingErrors, NameTheProblem) {
  auto all = models();
  const nn::QuantizedModel& q = all.front().second;  // cnn static
  nn::Workspace ws;
  const std::vector<int64_t> shape{2, 14, 14, 1};
  try {
    q.forward(nn::TensorView(nullptr, shape), ws);
    FAIL() << "a null buffer was accepted";
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.data is null"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 14, 14, 1]"), std::string::npos) << e.what();
  }
  const nn::Tensor wrong = random_input({2, 14, 14, 3}, 1);
  try {
    q.forward(wrong, ws);
    FAIL() << "3 input channels were accepted by a 1-channel conv";
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unit '0'"), std::string::npos) << e.what();
  }
  const std::vector<int64_t> negative{-1, 14, 14, 1};
  EXPECT_THROW(q.forward(nn::TensorView(wrong.data.data(), negative), ws), sparq::Error);
  // A moved-from workspace still works (it starts over); the moved-to one
  // keeps the buffers.
  const nn::Tensor x = random_input({2, 14, 14, 1}, 9);
  q.forward(x, ws);
  const std::size_t grown = ws.bytes();
  EXPECT_GT(grown, 0u);
  nn::Workspace other = std::move(ws);
  EXPECT_EQ(other.bytes(), grown);
  const nn::TensorView a = q.forward(x, ws);
  EXPECT_EQ(std::vector<float>(a.data, a.data + a.numel()), q.forward(x).data);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(Serving);

}  // namespace
