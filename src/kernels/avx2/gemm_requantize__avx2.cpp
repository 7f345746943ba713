// AVX2 requantizing output stage, bit-exact with sparq::requantize() (the
// same integer steps as the scalar stage, on 8 lanes).
//
// Per 8-column block, everything that depends only on the column (multiplier,
// shift masks, bias clamps) is computed once, outside the row loop, and the
// block picks a specialised row path:
//  - no lane shifts left (multiplier < 1: almost every layer): the saturating
//    left shift is skipped (it is the identity for shift <= 0);
//  - every residual shift is in [0, 23]: the residual term |r - zp_r| <= 255
//    cannot overflow when shifted left by <= 23, so no saturation, and there
//    is no rounding right shift;
//  - residual sum: acc + bias + residual saturates once (int64 in the
//    definition); when bias + residual does not overflow int32 (checked per
//    row, 8 lanes at once), that is exactly a saturating add of acc and
//    (bias + residual), otherwise the int64 sum is taken.
// Rows are narrowed 4 at a time with saturating packs (see pack4).
// Everything is forced inline into requantize_tile: an out-of-line helper
// taking or returning __m256i made the stage (and, measured, the GEMM
// microkernel called after it) markedly slower on Zen 3.
// Parameters are those check_requantize() accepts: zero points and clamps in
// the output type's range, the residual zero point in the residual type's.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

inline __m256i load8(const int32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Lanes [0, n) of p, the others 0 (mask: lanes [0, n) set); reads n values only.
inline __m256i load_cols(const int32_t* p, int n, __m256i mask) {
  return n == 8 ? load8(p) : _mm256_maskload_epi32(p, mask);
}

inline bool any_lane(__m256i m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)) != 0; }

inline __m256i add_sat(__m256i a, __m256i b) {
  const __m256i s = _mm256_add_epi32(a, b);
  const __m256i overflow = _mm256_and_si256(_mm256_xor_si256(a, s), _mm256_xor_si256(b, s));
  const __m256i limit = _mm256_xor_si256(_mm256_srai_epi32(a, 31), _mm256_set1_epi32(0x7FFFFFFF));
  return _mm256_blendv_epi8(s, limit, _mm256_srai_epi32(overflow, 31));
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

// How multiply_by_quantized_multiplier's left shift may be done for a block.
enum class Left {
  none,        // every shift <= 0: x << 0 = x
  exact,       // the inputs are known not to overflow when shifted: plain sllv
  saturating,  // general: x << left, saturated to int32
};

// One block's {multiplier, shift}, with what the row loop needs precomputed.
struct Multiplier {
  __m256i m, m_odd;           // multiplier; its odd lanes in the even positions
  __m256i left, hi, lo;       // left shift; inputs above hi / below lo saturate
  __m256i right, mask, half;  // right shift, 2^right - 1, (2^right - 1) >> 1
  Multiplier(__m256i mult, __m256i shift) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i one = _mm256_set1_epi32(1);
    m = mult;
    m_odd = _mm256_srli_epi64(mult, 32);
    left = _mm256_max_epi32(shift, zero);
    hi = _mm256_srav_epi32(_mm256_set1_epi32(INT32_MAX), left);
    lo = _mm256_srav_epi32(_mm256_set1_epi32(INT32_MIN), left);
    right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);  // right = 31: 0x7FFFFFFF
    half = _mm256_srli_epi32(mask, 1);
  }
};

// multiply_by_quantized_multiplier on 8 lanes; kRight: some lane may shift
// right (without it every right shift is 0 and the rounding is skipped).
template <Left kLeft, bool kRight>
[[gnu::always_inline]] inline __m256i mul_by_quantized_multiplier(__m256i x, const Multiplier& c) {
  __m256i v = x;
  if constexpr (kLeft == Left::exact) {
    v = _mm256_sllv_epi32(x, c.left);
  } else if constexpr (kLeft == Left::saturating) {
    v = _mm256_sllv_epi32(x, c.left);
    v = _mm256_blendv_epi8(v, _mm256_set1_epi32(INT32_MAX), _mm256_cmpgt_epi32(x, c.hi));
    v = _mm256_blendv_epi8(v, _mm256_set1_epi32(INT32_MIN), _mm256_cmpgt_epi32(c.lo, x));
  }
  // floor((v * m + 2^30) / 2^31) on the exact int64 products (m >= 0, so the
  // INT32_MIN * INT32_MIN case cannot occur); bits 31..62 are the result.
  const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
  const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(v, c.m), nudge);
  const __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), c.m_odd), nudge);
  const __m256i r =
      _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  if constexpr (!kRight) {
    return r;
  } else {
    // rounding_divide_by_pot: ties away from zero.
    const __m256i rem = _mm256_and_si256(r, c.mask);
    const __m256i threshold = _mm256_sub_epi32(c.half, _mm256_srai_epi32(r, 31));
    const __m256i q = _mm256_srav_epi32(r, c.right);
    return _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, threshold));  // cmpgt is -1 where true
  }
}

// The last steps of requantize() for 4 rows of int32 values y (before the
// zero point): clamp(y + zp, qmin, qmax) as bytes, row k in qword k.
// Saturating to int16, adding zp with int16 saturation and packing with 8-bit
// saturation are all monotone and exact inside [qmin, qmax] (a subset of the
// output type's range, zp too), so the final clamp gives clamp(y + zp) exactly.
template <class T>
struct Narrow {
  __m256i zp, qmin, qmax;
  explicit Narrow(const GemmRequantizeParams& p)
      : zp(_mm256_set1_epi16(static_cast<int16_t>(p.zero_point))),
        qmin(_mm256_set1_epi8(static_cast<char>(p.qmin))),
        qmax(_mm256_set1_epi8(static_cast<char>(p.qmax))) {}
  [[gnu::always_inline]] __m256i pack4(__m256i y0, __m256i y1, __m256i y2, __m256i y3) const {
    // Per 128-bit half h: [y0 h, y1 h] and [y2 h, y3 h] as int16.
    const __m256i a = _mm256_adds_epi16(_mm256_packs_epi32(y0, y1), zp);
    const __m256i b = _mm256_adds_epi16(_mm256_packs_epi32(y2, y3), zp);
    __m256i c;
    if constexpr (std::is_same_v<T, uint8_t>) {
      c = _mm256_min_epu8(_mm256_max_epu8(_mm256_packus_epi16(a, b), qmin), qmax);
    } else {
      c = _mm256_min_epi8(_mm256_max_epi8(_mm256_packs_epi16(a, b), qmin), qmax);
    }
    // Dwords [y0 lo, y1 lo, y2 lo, y3 lo | y0 hi, y1 hi, y2 hi, y3 hi] -> rows.
    return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  }
};

// Rows [0, count) of pack4's result, n bytes each, at out + k * ld.
template <class T>
[[gnu::always_inline]] inline void store_rows(__m256i c, T* out, int64_t ld, int count, int n) {
  if (n == 8) {
    const __m128i lo = _mm256_castsi256_si128(c);
    const __m128i hi = _mm256_extracti128_si256(c, 1);
    // The high halves move down first: _mm_storeh_pd stores through a
    // double*, an aligned access in GCC's definition (UBSan flags it on
    // byte-aligned rows); _mm_storel_epi64 stores through an unaligned type.
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), lo);
    if (count > 1)
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + ld), _mm_unpackhi_epi64(lo, lo));
    if (count > 2) _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 2 * ld), hi);
    if (count > 3) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * ld), _mm_unpackhi_epi64(hi, hi));
    }
    return;
  }
  alignas(32) uint8_t bytes[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(bytes), c);
  for (int k = 0; k < count; ++k) std::memcpy(out + k * ld, bytes + 8 * k, static_cast<size_t>(n));
}

enum class Residual { none, exact_left, general };

// Columns [j, j + n) of the tile (n in [1, 8]; mask: lanes [0, n) set).
// kLeft: some lane of the block shifts left.
template <class T, bool kLeft, Residual kRes>
[[gnu::always_inline]] inline void requantize_block(const GemmRequantizeParams& p, int j, int n,
                                                    __m256i mask) noexcept {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i max32 = _mm256_set1_epi32(INT32_MAX);
  const __m256i min32 = _mm256_set1_epi32(INT32_MIN);
  const Multiplier mq(load_cols(p.multiplier + j, n, mask), load_cols(p.shift + j, n, mask));
  const __m256i b = p.bias != nullptr ? load_cols(p.bias + j, n, mask) : zero;
  // add_sat(x, b) = clamp(x, bmin, bmax) + b with the bounds below.
  const __m256i bmin =
      _mm256_blendv_epi8(min32, _mm256_sub_epi32(min32, b), _mm256_srai_epi32(b, 31));
  const __m256i bmax =
      _mm256_blendv_epi8(max32, _mm256_sub_epi32(max32, b), _mm256_cmpgt_epi32(b, zero));
  const Multiplier rq = kRes == Residual::none
                            ? mq
                            : Multiplier(load_cols(p.residual_multiplier + j, n, mask),
                                         load_cols(p.residual_shift + j, n, mask));
  const __m256i rzp = _mm256_set1_epi32(p.residual_zero_point);
  const __m256i sign = _mm256_set1_epi32(INT32_MIN);

  auto value = [&](int i) [[gnu::always_inline]] {
    const int32_t* acc = p.acc + i * p.ld_acc + j;
    __m256i x = load_cols(acc, n, mask);
    if constexpr (kRes == Residual::none) {
      x = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(x, bmin), bmax), b);
    } else {
      const uint8_t* src = p.residual + i * p.residual_ld + j;
      __m128i bytes;
      if (n == 8) {
        bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src));
      } else {
        alignas(16) uint8_t buf[16] = {};
        std::memcpy(buf, src, static_cast<size_t>(n));
        bytes = _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
      }
      const __m256i r =
          p.residual_signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
      constexpr Left kResLeft = kRes == Residual::exact_left ? Left::exact : Left::saturating;
      const __m256i term = mul_by_quantized_multiplier<kResLeft, kRes == Residual::general>(
          _mm256_sub_epi32(r, rzp), rq);
      // bias + term exact in int32 (no lane overflowed): one saturating add
      // is the int64 sum saturated once.
      const __m256i bt = _mm256_add_epi32(b, term);
      const __m256i overflow =
          _mm256_and_si256(_mm256_xor_si256(b, bt), _mm256_xor_si256(term, bt));
      x = _mm256_testz_si256(overflow, sign) ? add_sat(x, bt) : add3_sat(x, b, term);
    }
    return mul_by_quantized_multiplier < kLeft ? Left::saturating : Left::none, true > (x, mq);
  };

  const Narrow<T> narrow(p);
  T* out = static_cast<T*>(p.out) + j;
  int i = 0;
  for (; i + 4 <= p.rows; i += 4) {
    const __m256i y0 = value(i);
    const __m256i y1 = value(i + 1);
    const __m256i y2 = value(i + 2);
    const __m256i y3 = value(i + 3);
    store_rows(narrow.pack4(y0, y1, y2, y3), out + i * p.ld_out, p.ld_out, 4, n);
  }
  if (i < p.rows) {  // 1 to 3 rows: the missing ones repeat the last (not stored)
    const int count = p.rows - i;
    const __m256i y0 = value(i);
    const __m256i y1 = count > 1 ? value(i + 1) : y0;
    const __m256i y2 = count > 2 ? value(i + 2) : y1;
    store_rows(narrow.pack4(y0, y1, y2, y2), out + i * p.ld_out, p.ld_out, count, n);
  }
}

template <class T>
void requantize_tile(const GemmRequantizeParams& p) noexcept {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int j = 0; j < p.cols; j += 8) {
    const int n = p.cols - j < 8 ? p.cols - j : 8;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    // Padding lanes load shift 0: neither left nor right.
    const bool left = any_lane(_mm256_cmpgt_epi32(load_cols(p.shift + j, n, mask), zero));
    if (p.residual == nullptr) {
      left ? requantize_block<T, true, Residual::none>(p, j, n, mask)
           : requantize_block<T, false, Residual::none>(p, j, n, mask);
      continue;
    }
    const __m256i rs = load_cols(p.residual_shift + j, n, mask);
    const bool exact = !any_lane(_mm256_or_si256(_mm256_cmpgt_epi32(rs, _mm256_set1_epi32(23)),
                                                 _mm256_cmpgt_epi32(zero, rs)));
    if (exact) {
      left ? requantize_block<T, true, Residual::exact_left>(p, j, n, mask)
           : requantize_block<T, false, Residual::exact_left>(p, j, n, mask);
    } else {
      left ? requantize_block<T, true, Residual::general>(p, j, n, mask)
           : requantize_block<T, false, Residual::general>(p, j, n, mask);
    }
  }
}

}  // namespace

SPARQ_DEFINE_GEMM_REQUANTIZE(avx2)

}  // namespace sparq::detail
