// Shared helpers for the GEMM tests: random data and the straightforward
// int64 reference C[i][n] = sum_k (a[i][k] - zp_a) * w[n][k].
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace sparq::testing {

template <class T>
std::vector<T> random_bytes(std::size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(std::is_signed_v<T> ? -128 : 0,
                                          std::is_signed_v<T> ? 127 : 255);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

/// a: m x k with leading dimension lda; w: n x k dense ([out][in]).
template <class T>
std::vector<int64_t> reference_gemm(const T* a, int64_t m, int64_t k, int64_t lda, int32_t zp,
                                    const int8_t* w, int64_t n) {
  std::vector<int64_t> c(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        s += (int64_t{a[i * lda + kk]} - zp) * int64_t{w[j * k + kk]};
      }
      c[static_cast<std::size_t>(i * n + j)] = s;
    }
  }
  return c;
}

}  // namespace sparq::testing
