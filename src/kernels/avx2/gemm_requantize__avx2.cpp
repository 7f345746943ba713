// AVX2 requantizing output stage, bit-exact with sparq::requantize() (same
// steps as the AVX-512 stage, on 8 lanes; tails go through padded buffers).
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

inline __m256i load8(const int32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

inline __m256i add_sat(__m256i a, __m256i b) {
  const __m256i s = _mm256_add_epi32(a, b);
  const __m256i overflow = _mm256_and_si256(_mm256_xor_si256(a, s), _mm256_xor_si256(b, s));
  const __m256i limit = _mm256_xor_si256(_mm256_srai_epi32(a, 31), _mm256_set1_epi32(0x7FFFFFFF));
  return _mm256_blendv_epi8(s, limit, _mm256_srai_epi32(overflow, 31));
}

inline __m256i mul_by_quantized_multiplier(__m256i x, __m256i m, __m256i shift) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i left = _mm256_max_epi32(shift, zero);
  const __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
  const __m256i max32 = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i min32 = _mm256_set1_epi32(INT32_MIN);
  const __m256i hi = _mm256_srav_epi32(max32, left);
  const __m256i lo = _mm256_srav_epi32(min32, left);
  __m256i v = _mm256_sllv_epi32(x, left);
  v = _mm256_blendv_epi8(v, max32, _mm256_cmpgt_epi32(x, hi));
  v = _mm256_blendv_epi8(v, min32, _mm256_cmpgt_epi32(lo, x));
  const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
  const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(v, m), nudge);
  const __m256i odd =
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), _mm256_srli_epi64(m, 32)), nudge);
  const __m256i r =
      _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
  const __m256i rem = _mm256_and_si256(r, mask);
  const __m256i threshold = _mm256_sub_epi32(_mm256_srli_epi32(mask, 1), _mm256_srai_epi32(r, 31));
  const __m256i q = _mm256_srav_epi32(r, right);
  return _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, threshold));  // cmpgt is -1 where true
}

// saturate_int32(a + b + c) of int32 lanes, summed in int64 (one saturation).
inline __m256i add3_sat(__m256i a, __m256i b, __m256i c) {
  const __m256i max32 = _mm256_set1_epi64x(INT32_MAX);
  const __m256i min32 = _mm256_set1_epi64x(INT32_MIN);
  auto half = [&](__m128i x, __m128i y, __m128i z) {
    __m256i s =
        _mm256_add_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(x), _mm256_cvtepi32_epi64(y)),
                         _mm256_cvtepi32_epi64(z));
    s = _mm256_blendv_epi8(s, max32, _mm256_cmpgt_epi64(s, max32));
    s = _mm256_blendv_epi8(s, min32, _mm256_cmpgt_epi64(min32, s));
    // The low dword of each int64 lane, into the low 128 bits.
    return _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0)));
  };
  const __m128i lo =
      half(_mm256_castsi256_si128(a), _mm256_castsi256_si128(b), _mm256_castsi256_si128(c));
  const __m128i hi = half(_mm256_extracti128_si256(a, 1), _mm256_extracti128_si256(b, 1),
                          _mm256_extracti128_si256(c, 1));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

template <class T>
void requantize_tile(const GemmRequantizeParams& p) noexcept {
  const __m256i lo = _mm256_set1_epi32(p.qmin - p.zero_point);
  const __m256i hi = _mm256_set1_epi32(p.qmax - p.zero_point);
  const __m256i zp = _mm256_set1_epi32(p.zero_point);
  // Byte 0 of each int32 lane into the low dword of each 128-bit half.
  const __m256i narrow =
      _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i gather = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
  T* out = static_cast<T*>(p.out);
  for (int j = 0; j < p.cols; j += 8) {
    const int n = p.cols - j < 8 ? p.cols - j : 8;
    alignas(32) int32_t mul[8] = {};
    alignas(32) int32_t sh[8] = {};
    alignas(32) int32_t bias[8] = {};
    std::memcpy(mul, p.multiplier + j, sizeof(int32_t) * n);
    std::memcpy(sh, p.shift + j, sizeof(int32_t) * n);
    if (p.bias != nullptr) std::memcpy(bias, p.bias + j, sizeof(int32_t) * n);
    const __m256i m = load8(mul);
    const __m256i s = load8(sh);
    const __m256i b = load8(bias);
    alignas(32) int32_t rmul[8] = {};
    alignas(32) int32_t rsh[8] = {};
    if (p.residual != nullptr) {
      std::memcpy(rmul, p.residual_multiplier + j, sizeof(int32_t) * n);
      std::memcpy(rsh, p.residual_shift + j, sizeof(int32_t) * n);
    }
    const __m256i rm = load8(rmul);
    const __m256i rs = load8(rsh);
    const __m256i rzp = _mm256_set1_epi32(p.residual_zero_point);
    // Row i's residual bytes as int32 lanes (8 bytes read: the tail pads).
    auto residual_term = [&](int i) {
      const uint8_t* src = p.residual + i * p.residual_ld + j;
      alignas(16) uint8_t bytes[16] = {};
      std::memcpy(bytes, src, static_cast<size_t>(n));
      const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes));
      const __m256i r = p.residual_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
      return mul_by_quantized_multiplier(_mm256_sub_epi32(r, rzp), rm, rs);
    };
    auto stage = [&](__m256i x, int i) {
      if (p.residual != nullptr) {
        x = add3_sat(x, b, residual_term(i));
      } else if (p.bias != nullptr) {
        x = add_sat(x, b);
      }
      __m256i y = mul_by_quantized_multiplier(x, m, s);
      y = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(y, lo), hi), zp);
      return _mm256_castsi256_si128(
          _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(y, narrow), gather));
    };
    if (n == 8) {  // full lanes: direct loads and 8-byte stores (the common case)
      for (int i = 0; i < p.rows; ++i) {
        const __m128i bytes = stage(load8(p.acc + i * p.ld_acc + j), i);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i * p.ld_out + j), bytes);
      }
      continue;
    }
    for (int i = 0; i < p.rows; ++i) {  // the tail, through padded buffers
      alignas(32) int32_t in[8] = {};
      std::memcpy(in, p.acc + i * p.ld_acc + j, sizeof(int32_t) * n);
      alignas(16) uint8_t res[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(res), stage(load8(in), i));
      std::memcpy(out + i * p.ld_out + j, res, static_cast<size_t>(n));
    }
  }
}

}  // namespace

SPARQ_DEFINE_GEMM_REQUANTIZE(avx2)

}  // namespace sparq::detail
