// HistogramObserver: the grid and its counts against FP64 reference binning
// of the raw values, exact merge/order independence, each range method
// against an independent FP64 reference (mse: PyTorch's search transcribed
// again; entropy: TensorRT's KL calibration; percentile: sorted data), known
// answers (uniform, Gaussian with outliers), robustness and files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "observe/range_search.hpp"
#include "sparq/observe/observers.hpp"
#include "support/error_of.hpp"
#include "support/isa_param.hpp"
#include "unit/observer_test_data.hpp"

namespace sparq {
namespace {

using testing::normal_data;
using testing::poison;
using testing::uniform_data;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ------------------------------------------------------------ references

// The smallest e satisfying the conditions documented in histogram.hpp,
// checked by brute force in double (all steps exact).
int ref_exponent(double lo, double hi, int bins) {
  const double m = std::max(std::fabs(lo), std::fabs(hi));
  for (int e = -126; e <= 127; ++e) {
    const double w = std::ldexp(1.0, e);
    const bool fits = std::floor(hi / w) - std::floor(lo / w) <= bins - 1;
    const bool exact = m < std::ldexp(1.0, e + 23);
    if (fits && exact) return e;
  }
  return 1000;
}

// Counts of every finite value at floor(x / w) - k0, in double.
std::vector<uint64_t> ref_counts(const std::vector<float>& x, double w, int64_t k0, int bins) {
  std::vector<uint64_t> c(static_cast<std::size_t>(bins), 0);
  for (float v : x) {
    if (!std::isfinite(v)) continue;
    const auto b = static_cast<int64_t>(std::floor(v / w)) - k0;
    EXPECT_TRUE(b >= 0 && b < bins) << v;
    if (b >= 0 && b < bins) ++c[static_cast<std::size_t>(b)];
  }
  return c;
}

// PyTorch HistogramObserver._compute_quantization_error, transcribed from
// the Python with one array per tensor.
double ref_quant_error(const std::vector<double>& hist, double bin_width, int start, int end,
                       int dst_nbins) {
  const int bins = static_cast<int>(hist.size());
  const double dst_bin_width = bin_width * (end - start + 1) / dst_nbins;
  if (dst_bin_width == 0.0) return 0.0;
  auto get_norm = [](double db, double de, double density) {
    return density * (de * de * de - db * db * db) / 3;
  };
  std::vector<double> src_begin(bins), src_end(bins), dob(bins), doe(bins), density(bins);
  for (int s = 0; s < bins; ++s) {
    src_begin[s] = (s - start) * bin_width;
    src_end[s] = src_begin[s] + bin_width;
    dob[s] = std::clamp(std::floor(src_begin[s] / dst_bin_width), 0.0, dst_nbins - 1.0);
    doe[s] = std::clamp(std::floor(src_end[s] / dst_bin_width), 0.0, dst_nbins - 1.0);
    density[s] = hist[s] / bin_width;
  }
  double norm = 0;
  for (int s = 0; s < bins; ++s) {
    const double dob_center = (dob[s] + 0.5) * dst_bin_width;
    norm += get_norm(src_begin[s] - dob_center, dst_bin_width / 2, density[s]);
    norm += (doe[s] - dob[s] - 1) * get_norm(-dst_bin_width / 2, dst_bin_width / 2, density[s]);
    const double doe_center = doe[s] * dst_bin_width + dst_bin_width / 2;
    norm += get_norm(-dst_bin_width / 2, src_end[s] - doe_center, density[s]);
  }
  return norm;
}

// PyTorch HistogramObserver._non_linear_param_search, transcribed.
std::pair<double, double> ref_mse(const std::vector<double>& hist, double min_val, double max_val,
                                  int dst_nbins) {
  const int bins = static_cast<int>(hist.size());
  const double bin_width = (max_val - min_val) / bins;
  const double total = std::accumulate(hist.begin(), hist.end(), 0.0);
  std::vector<double> cSum(bins);
  std::partial_sum(hist.begin(), hist.end(), cSum.begin());
  double stepsize = 1e-5, alpha = 0.0, beta = 1.0;
  int start_bin = 0, end_bin = bins - 1;
  double norm_min = INFINITY;
  while (alpha < beta) {
    const double next_alpha = alpha + stepsize, next_beta = beta - stepsize;
    int l = start_bin, r = end_bin;
    while (l < end_bin && cSum[l] < next_alpha * total) l = l + 1;
    while (r > start_bin && cSum[r] > next_beta * total) r = r - 1;
    int next_start_bin = start_bin, next_end_bin = end_bin;
    if ((l - start_bin) > (end_bin - r)) {
      next_start_bin = l;
      alpha = next_alpha;
    } else {
      next_end_bin = r;
      beta = next_beta;
    }
    if (next_start_bin == start_bin && next_end_bin == end_bin) continue;
    const double norm = ref_quant_error(hist, bin_width, next_start_bin, next_end_bin, dst_nbins);
    if (norm > norm_min) break;
    norm_min = norm;
    start_bin = next_start_bin;
    end_bin = next_end_bin;
  }
  return {min_val + bin_width * start_bin, min_val + bin_width * (end_bin + 1)};
}

// MXNet's _smooth_distribution, transcribed.
bool ref_smooth(std::vector<double>& p) {
  const double eps = 0.0001;
  double n_zeros = 0;
  for (double v : p) n_zeros += v == 0;
  const double n_nonzeros = p.size() - n_zeros;
  if (n_nonzeros == 0) return false;
  const double eps1 = eps * n_zeros / n_nonzeros;
  for (double& v : p) v += (v == 0 ? eps : 0.0) + (v != 0 ? -eps1 : 0.0);
  return true;
}

// TensorRT entropy calibration on a |x| histogram as MXNet's
// _get_optimal_threshold computes it (transcribed with explicit arrays),
// after lowering bin 0 to bin 1's count as NVIDIA's calibrator does for the
// zero spike (bins[0] = bins[1], here only downwards): returns the number of
// bins kept.
std::size_t ref_entropy(std::vector<double> hist, int num_quantized_bins) {
  const std::size_t n = hist.size();
  if (n <= static_cast<std::size_t>(num_quantized_bins)) return n;
  hist[0] = std::min(hist[0], hist[1]);
  double best = INFINITY;
  std::size_t best_i = n;
  for (std::size_t i = num_quantized_bins; i <= n; ++i) {
    std::vector<double> sliced(hist.begin(), hist.begin() + i);
    std::vector<double> p = sliced;
    for (std::size_t j = i; j < n; ++j) p[i - 1] += hist[j];
    std::vector<int> is_nonzeros(i);
    for (std::size_t j = 0; j < i; ++j) is_nonzeros[j] = p[j] != 0;
    const std::size_t num_merged_bins = i / num_quantized_bins;
    std::vector<double> quantized_bins(num_quantized_bins, 0.0);
    for (int j = 0; j < num_quantized_bins; ++j) {
      for (std::size_t k = j * num_merged_bins; k < (j + 1) * num_merged_bins; ++k) {
        quantized_bins[j] += sliced[k];
      }
    }
    for (std::size_t k = num_quantized_bins * num_merged_bins; k < i; ++k) {
      quantized_bins.back() += sliced[k];
    }
    std::vector<double> q(i, 0.0);
    for (int j = 0; j < num_quantized_bins; ++j) {
      const std::size_t start = j * num_merged_bins;
      const std::size_t stop = j == num_quantized_bins - 1 ? i : start + num_merged_bins;
      double norm = 0;
      for (std::size_t k = start; k < stop; ++k) norm += is_nonzeros[k];
      if (norm != 0) {
        for (std::size_t k = start; k < stop; ++k) q[k] = quantized_bins[j] / norm;
      }
    }
    for (std::size_t k = 0; k < i; ++k) {
      if (p[k] == 0) q[k] = 0;
    }
    if (!ref_smooth(p) || !ref_smooth(q)) continue;
    const double ps = std::accumulate(p.begin(), p.end(), 0.0);
    const double qs = std::accumulate(q.begin(), q.end(), 0.0);
    double kl = 0;  // scipy.stats.entropy(p, q)
    for (std::size_t k = 0; k < i; ++k) kl += (p[k] / ps) * std::log((p[k] / ps) / (q[k] / qs));
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return best_i;
}

// The order statistic a histogram percentile at `rank` must be within one
// bin of: the histogram value lies in the bin where the cumulative count
// reaches rank, which holds the ceil(rank)-th smallest value.
double ref_order_statistic(std::vector<double> v, double rank) {
  std::sort(v.begin(), v.end());
  const auto k = static_cast<std::size_t>(std::max(1.0, std::ceil(rank)));
  return v[std::min(k, v.size()) - 1];
}

std::vector<double> finite_values(const std::vector<float>& x, bool absolute = false) {
  std::vector<double> v;
  for (float f : x) {
    if (std::isfinite(f)) v.push_back(absolute ? std::fabs(f) : f);
  }
  return v;
}

// The histogram window between the first and last non-empty bins.
struct RefWindow {
  std::vector<double> h;
  double lo, hi;  // edges
};
RefWindow window(const HistogramView& v) {
  std::size_t first = 0, last = v.counts.size() - 1;
  while (v.counts[first] == 0) ++first;
  while (v.counts[last] == 0) --last;
  RefWindow w;
  w.h.assign(v.counts.begin() + first, v.counts.begin() + last + 1);
  w.lo = v.edge(first);
  w.hi = v.edge(last + 1);
  return w;
}

ObserverConfig hist_config(RangeMethod method, int bins = 2048) {
  ObserverConfig c;
  c.kind = ObserverKind::histogram;
  c.method = method;
  c.bins = bins;
  return c;
}

// ------------------------------------------------------------ grid & counts

class HistogramIsaTest : public sparq::testing::IsaTest {};

TEST_P(HistogramIsaTest, CountsMatchReferenceBinningOnTheDocumentedGrid) {
  struct Case {
    float lo, hi;
    int bins;
  };
  const Case cases[] = {
      {-1, 1, 2048},     {0.5f, 7, 2048}, {-1e-30f, 3e-30f, 2048},  {-1e30f, 1e29f, 2048},
      {1000, 1001, 256}, {-5, -4, 16},    {-1.5e38f, 1.5e38f, 2048}};
  uint64_t seed = 0;
  for (const Case& c : cases) {
    HistogramObserver obs(hist_config(RangeMethod::minmax, c.bins));
    std::vector<float> all;
    for (int b = 0; b < 4; ++b) {
      // Batches with growing ranges force re-binning.
      const float s = static_cast<float>(b + 1) / 4;
      const float mid = c.lo / 2 + c.hi / 2, half = (c.hi / 2 - c.lo / 2) * s;
      auto x = uniform_data(1000 + 37 * b, mid - half, mid + half, ++seed);
      poison(x, seed, 29);
      obs.observe(x);
      all.insert(all.end(), x.begin(), x.end());
    }
    const HistogramView v = obs.histogram();
    const auto fin = finite_values(all);
    const double lo = *std::min_element(fin.begin(), fin.end());
    const double hi = *std::max_element(fin.begin(), fin.end());
    EXPECT_EQ(v.min, lo);
    EXPECT_EQ(v.max, hi);
    EXPECT_EQ(v.exponent, ref_exponent(lo, hi, c.bins)) << c.lo << " " << c.hi;
    EXPECT_EQ(v.k0, static_cast<int64_t>(std::floor(lo / v.width())));
    const auto ref = ref_counts(all, v.width(), v.k0, c.bins);
    EXPECT_TRUE(std::equal(ref.begin(), ref.end(), v.counts.begin())) << c.lo << " " << c.hi;
    // At least about half the bins span the data (see histogram.hpp).
    std::size_t first = 0, last = c.bins - 1;
    while (v.counts[first] == 0) ++first;
    while (v.counts[last] == 0) --last;
    if (c.hi - c.lo > 1e-3f * std::max(std::fabs(c.lo), std::fabs(c.hi))) {
      EXPECT_GE(last - first + 1, static_cast<std::size_t>(c.bins / 2 - 2)) << c.lo;
    }
  }
}

TEST_P(HistogramIsaTest, MergeAndBatchOrderGiveExactlyTheSingleObserverHistogram) {
  std::vector<std::vector<float>> batches;
  for (int b = 0; b < 6; ++b) {
    batches.push_back(normal_data(500 + 100 * b, 0.1f * b, 0.5f + b, 70 + b));
  }
  batches[3][7] = 250.0f;  // an outlier in the middle of the stream
  HistogramObserver whole(hist_config(RangeMethod::mse));
  for (const auto& b : batches) whole.observe(b);
  HistogramObserver reversed(hist_config(RangeMethod::mse));
  for (auto it = batches.rbegin(); it != batches.rend(); ++it) reversed.observe(*it);
  HistogramObserver s1(hist_config(RangeMethod::mse)), s2 = s1, s3 = s1;
  for (int b = 0; b < 6; ++b) (b % 3 == 0 ? s1 : b % 3 == 1 ? s2 : s3).observe(batches[b]);
  s2.merge(s3);
  s1.merge(s2);
  for (const HistogramObserver* o : {&reversed, &s1}) {
    const auto a = whole.histogram(), b = o->histogram();
    EXPECT_EQ(a.exponent, b.exponent);
    EXPECT_EQ(a.k0, b.k0);
    EXPECT_TRUE(std::equal(a.counts.begin(), a.counts.end(), b.counts.begin()));
    EXPECT_EQ(o->stats(), whole.stats());
    EXPECT_EQ(o->qparams(), whole.qparams());
  }
}

// ------------------------------------------------------------ methods vs references

TEST(HistogramObserver, MseMatchesPyTorchSearchTranscription) {
  for (uint64_t seed : {1, 2, 3}) {
    auto x = normal_data(20000, 0.3f, 1.0f, seed);
    x[5] = 12.0f;
    x[6] = -9.0f;
    HistogramObserver obs(hist_config(RangeMethod::mse));
    obs.observe(x);
    const RefWindow w = window(obs.histogram());
    const auto [lo, hi] = ref_mse(w.h, w.lo, w.hi, 256);
    const auto got = obs.range();
    // Same decisions in double; float output of a double edge: 1 ulp.
    EXPECT_FLOAT_EQ(got.first, static_cast<float>(std::max(lo, double(obs.histogram().min))));
    EXPECT_FLOAT_EQ(got.second, static_cast<float>(std::min(hi, double(obs.histogram().max))));
    // The internal error function is PyTorch's too.
    const double bw = (w.hi - w.lo) / w.h.size();
    for (auto [s, e] : {std::pair{0, 100}, std::pair{10, 1000}, std::pair{3, 4}}) {
      if (e >= static_cast<int>(w.h.size())) continue;
      const double ref = ref_quant_error(w.h, bw, s, e, 256);
      EXPECT_NEAR(detail::mse_quantization_error(w.h, bw, s, e, 256), ref, 1e-9 * ref);
    }
  }
}

TEST(HistogramObserver, EntropyMatchesTensorRtCalibration) {
  for (uint64_t seed : {4, 5}) {
    auto x = normal_data(50000, 0.0f, 1.0f, seed);
    for (int i = 0; i < 20; ++i) x[i] = 8.0f + i;  // a tail
    HistogramObserver obs(hist_config(RangeMethod::entropy));
    obs.observe(x);
    const HistogramView v = obs.histogram();
    // |x| histogram straight from the data: |x| in ((j-1) w, j w] for
    // negative x, [j w, (j+1) w) for x >= 0 (the grid's bins reflected).
    const double width = v.width();
    std::vector<double> abs_hist;
    for (float f : x) {
      const auto j =
          static_cast<std::size_t>(f >= 0 ? std::floor(f / width) : std::ceil(-f / width) - 1);
      if (j >= abs_hist.size()) abs_hist.resize(j + 1, 0.0);
      abs_hist[j] += 1;
    }
    ASSERT_LE(abs_hist.size(), 2048u);  // no coarsening at this size
    const double t = ref_entropy(abs_hist, 128) * width;
    const auto [lo, hi] = obs.range();
    EXPECT_EQ(hi, static_cast<float>(std::min<double>(t, v.max)));
    EXPECT_EQ(lo, static_cast<float>(std::max<double>(-t, v.min)));
    EXPECT_EQ(detail::entropy_search(abs_hist, 128), ref_entropy(abs_hist, 128));
  }
}

TEST(HistogramObserver, PercentilesAreWithinOneBinOfTheSortedData) {
  auto x = normal_data(30000, 1.0f, 2.0f, 9);
  poison(x, 3);
  for (bool two_sided : {true, false}) {
    for (double p : {50.0, 90.0, 99.0, 99.99, 100.0}) {
      ObserverConfig cfg = hist_config(RangeMethod::percentile);
      cfg.percentile = p;
      cfg.two_sided_percentile = two_sided;
      HistogramObserver obs(cfg);
      obs.observe(x);
      const double w = obs.histogram().width();
      const auto [lo, hi] = obs.range();
      const double q = p / 100;
      // Tolerance: one bin (the interpolation inside the bin) plus 1% for
      // the float rounding of the result.
      if (two_sided) {
        const auto v = finite_values(x);
        const double n = static_cast<double>(v.size());
        EXPECT_NEAR(hi, ref_order_statistic(v, q * n), w * 1.01) << p;
        EXPECT_NEAR(lo, ref_order_statistic(v, (1 - q) * n), w * 1.01) << p;
      } else {
        const auto v = finite_values(x, true);
        const double t = ref_order_statistic(v, q * static_cast<double>(v.size()));
        EXPECT_NEAR(hi, std::min<double>(t, obs.histogram().max), w * 1.01) << p;
        EXPECT_NEAR(lo, std::max<double>(-t, obs.histogram().min), w * 1.01) << p;
      }
    }
  }
}

// ------------------------------------------------------------ known answers

TEST(HistogramObserver, UniformDataKeepsTheTrueBounds) {
  const auto x = uniform_data(200000, -1.0f, 1.0f, 11);
  for (RangeMethod m :
       {RangeMethod::mse, RangeMethod::entropy, RangeMethod::percentile, RangeMethod::minmax}) {
    HistogramObserver obs(hist_config(m));
    obs.observe(x);
    const auto [lo, hi] = obs.range();
    // Clipping a uniform distribution only adds error: every method stays
    // within 2% of the bounds.
    EXPECT_NEAR(lo, -1.0f, 0.02f) << range_method_name(m);
    EXPECT_NEAR(hi, 1.0f, 0.02f) << range_method_name(m);
  }
}

TEST(HistogramObserver, GaussianOutliersAreClipped) {
  // 2^21 samples: the L2 criterion only clips a lone outlier at distance d
  // when the bulk's quantization noise saved, ~N (d / levels)^2 / 12, exceeds
  // its clipping error d^2, i.e. N > 12 * 256^2 ~ 790k. With fewer samples
  // keeping the outlier IS the MSE-optimal choice.
  auto x = normal_data(std::size_t{1} << 21, 0.0f, 1.0f, 12);
  x[10] = 60.0f;
  x[20] = -45.0f;
  x[30] = 100.0f;
  for (RangeMethod m : {RangeMethod::mse, RangeMethod::entropy, RangeMethod::percentile}) {
    HistogramObserver obs(hist_config(m));
    obs.observe(x);
    const auto [lo, hi] = obs.range();
    // All three outliers (-45, 60, 100) are clipped ...
    EXPECT_LT(hi, 40.0f) << range_method_name(m);
    EXPECT_GT(lo, -40.0f) << range_method_name(m);
    EXPECT_GT(hi, 3.0f) << range_method_name(m);  // the bulk (> 3 sigma) is kept
    EXPECT_LT(lo, -3.0f) << range_method_name(m);
  }
  HistogramObserver full(hist_config(RangeMethod::minmax));
  full.observe(x);
  EXPECT_EQ(full.range(), std::make_pair(-45.0f, 100.0f));
}

TEST(HistogramObserver, OneSidedDataUseAllLevelsForAsymmetricEntropy) {
  // ReLU-like data: entropy with an asymmetric spec searches 256 levels,
  // a symmetric one 128; both keep the range one-sided.
  auto x = normal_data(50000, 0.0f, 1.0f, 13);
  for (auto& v : x) v = std::fabs(v);
  for (Scheme scheme : {Scheme::asymmetric, Scheme::symmetric}) {
    ObserverConfig cfg = hist_config(RangeMethod::entropy);
    cfg.spec.scheme = scheme;
    HistogramObserver obs(cfg);
    obs.observe(x);
    const auto [lo, hi] = obs.range();
    EXPECT_EQ(lo, obs.histogram().min);
    EXPECT_GT(hi, 2.5f);
  }
}

// ------------------------------------------------------------ robustness

TEST_P(HistogramIsaTest, DegenerateAndExtremeInputsGiveValidQParams) {
  const float big = std::numeric_limits<float>::max();
  const std::vector<std::vector<float>> cases = {
      std::vector<float>(1000, 0.0f),
      std::vector<float>(999, -2.5f),
      {7.0f},
      {1e-30f, -1e-30f, 2e-30f},
      {1e30f, -1e30f, 5e29f},
      {big, -big, 0.0f},
      {std::numeric_limits<float>::denorm_min(), 0.0f},
      {kNaN, INFINITY, -INFINITY, 3.0f},
  };
  for (const auto& x : cases) {
    for (RangeMethod m :
         {RangeMethod::mse, RangeMethod::entropy, RangeMethod::percentile, RangeMethod::minmax}) {
      for (int bins : {16, 2048}) {
        ObserverConfig cfg = hist_config(m, bins);
        cfg.spec.scheme = Scheme::symmetric;  // asymmetric [-big, big] overflows by design
        HistogramObserver obs(cfg);
        obs.observe(x);
        obs.observe(x);
        const auto [lo, hi] = obs.range();
        EXPECT_LE(lo, hi);
        EXPECT_GE(lo, obs.histogram().min);
        EXPECT_LE(hi, obs.histogram().max);
        const QParams qp = obs.qparams();
        EXPECT_TRUE(std::isfinite(qp.scale) && qp.scale > 0) << x[0] << range_method_name(m);
      }
    }
  }
}

TEST(HistogramObserver, NoFiniteDataIsAClearError) {
  HistogramObserver obs;
  EXPECT_THROW(obs.qparams(), Error);
  obs.observe(std::vector<float>(50, kNaN));
  obs.observe(std::vector<float>(3, INFINITY));
  EXPECT_EQ(obs.stats().nan_count, 50);
  EXPECT_EQ(obs.stats().inf_count, 3);
  EXPECT_ERROR(obs.qparams(), "50 NaN, 3 Inf");
  obs.observe(std::vector<float>{1.0f, 2.0f});  // recovers
  EXPECT_EQ(obs.range(RangeMethod::minmax), std::make_pair(1.0f, 2.0f));
}

TEST(HistogramObserver, FilesRoundTripExactlyAndMergeChecksConfig) {
  HistogramObserver obs(hist_config(RangeMethod::entropy, 300));
  obs.observe(normal_data(5000, 2, 3, 21));
  const auto file = testing::temp_file("hist");
  obs.save(file);
  auto back = load_observer(file);
  auto& h = dynamic_cast<HistogramObserver&>(*back);
  EXPECT_TRUE(std::equal(h.histogram().counts.begin(), h.histogram().counts.end(),
                         obs.histogram().counts.begin()));
  EXPECT_EQ(h.range(), obs.range());
  std::filesystem::remove(file);
  HistogramObserver other(hist_config(RangeMethod::entropy, 301));
  EXPECT_THROW(obs.merge(other), Error);
  MinMaxObserver mm;
  EXPECT_THROW(obs.merge(mm), Error);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(HistogramIsaTest);

}  // namespace
}  // namespace sparq
