// HistogramObserver (include/sparq/observe/histogram.hpp): the exact
// power-of-two grid, observe/merge/save, and the range selection.
#include "sparq/observe/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/observe_kernels.hpp"
#include "observe/range_search.hpp"
#include "observe/serialize.hpp"

namespace sparq {
namespace detail {

int64_t grid_floor(float x, float inv_width) {
  // The same steps (and clamp) as the observe kernels.
  float t = x * inv_width;
  t = std::clamp(t, -1073741824.0f, 1073741824.0f);
  return static_cast<int64_t>(std::floor(t));
}

namespace {
float inverse_width(int exponent) { return std::ldexp(1.0f, -exponent); }
}  // namespace

int grid_exponent(float lo, float hi, int bins) {
  int e = -126;  // (c)
  const float m = std::max(std::fabs(lo), std::fabs(hi));
  if (m > 0.0f) {
    int top;
    std::frexp(m, &top);        // m < 2^top
    e = std::max(e, top - 23);  // (b)
  }
  const double span = static_cast<double>(hi) - static_cast<double>(lo);
  if (span > 0.0) {
    // Any e that satisfies (a) has 2^e > span / bins; start one below that
    // bound so rounding in log2 can never skip the smallest valid e.
    e = std::max(e, static_cast<int>(std::floor(std::log2(span / bins))) - 1);
  }
  while (e < 127 && grid_floor(hi, inverse_width(e)) - grid_floor(lo, inverse_width(e)) >
                        static_cast<int64_t>(bins) - 1) {
    ++e;  // (a)
  }
  return e;
}

}  // namespace detail

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Searches (mse, entropy) run on at most this many bins: they cost
// O(bins^2) in the worst case.
constexpr std::size_t kMaxSearchBins = 8192;

// Adds `src` (grid exponent e, origin k0) into `dst` (exponent de >= e,
// origin dk0): old bin k0 + i merges whole into floor((k0 + i) / 2^(de - e)).
void rebin_into(std::span<const uint64_t> src, int e, int64_t k0, std::span<uint64_t> dst, int de,
                int64_t dk0) {
  const int shift = std::min(de - e, 62);  // |k0 + i| < 2^31: larger shifts give the same
  const int64_t last = static_cast<int64_t>(dst.size()) - 1;
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i] == 0) continue;
    const int64_t k = (k0 + static_cast<int64_t>(i)) >> shift;  // floor division (C++20)
    dst[static_cast<std::size_t>(std::clamp<int64_t>(k - dk0, 0, last))] += src[i];
  }
}

// A run of bins of width w starting at absolute bin a0 (covering [a0 w, ...)).
struct Window {
  std::vector<double> h;
  int64_t a0 = 0;
  double w = 1.0;
  double total() const {
    double s = 0.0;
    for (double c : h) s += c;
    return s;
  }
};

// Merges pairs of bins (in absolute coordinates, so exactly) until at most
// `limit` bins are left.
void coarsen(Window& win, std::size_t limit) {
  while (win.h.size() > limit) {
    const int64_t a0 = win.a0 >> 1;
    const int64_t a1 = (win.a0 + static_cast<int64_t>(win.h.size()) - 1) >> 1;
    std::vector<double> h(static_cast<std::size_t>(a1 - a0 + 1), 0.0);
    for (std::size_t i = 0; i < win.h.size(); ++i) {
      h[static_cast<std::size_t>(((win.a0 + static_cast<int64_t>(i)) >> 1) - a0)] += win.h[i];
    }
    win.h = std::move(h);
    win.a0 = a0;
    win.w *= 2.0;
  }
}

// The histogram of |x|: bin a >= 0 stays, bin a < 0 (covering [a w, (a+1) w))
// holds |x| in ((-a-1) w, -a w] and goes to -a - 1.
Window fold_abs(const Window& win) {
  Window out;
  out.w = win.w;
  for (std::size_t i = 0; i < win.h.size(); ++i) {
    const int64_t a = win.a0 + static_cast<int64_t>(i);
    const auto b = static_cast<std::size_t>(a >= 0 ? a : -a - 1);
    if (b >= out.h.size()) out.h.resize(b + 1, 0.0);
    out.h[b] += win.h[i];
  }
  return out;
}

ObserverConfig checked_histogram_config(ObserverConfig config) {
  if (config.kind != ObserverKind::histogram) {
    detail::fail("HistogramObserver: config.kind is {}; expected histogram",
                 observer_kind_name(config.kind));
  }
  config.validate();
  config.spec.granularity = Granularity::per_tensor;
  return config;
}

ObserverConfig histogram_config(const QuantSpec& spec, RangeMethod method, int bins) {
  ObserverConfig c;
  c.kind = ObserverKind::histogram;
  c.spec = spec;
  c.method = method;
  c.bins = bins;
  return c;
}

}  // namespace

double HistogramView::width() const { return std::ldexp(1.0, exponent); }
double HistogramView::edge(std::size_t i) const {
  return static_cast<double>(k0 + static_cast<int64_t>(i)) * width();
}

HistogramObserver::HistogramObserver(const ObserverConfig& config)
    : ObserverBase(checked_histogram_config(config)) {}

HistogramObserver::HistogramObserver(const QuantSpec& spec, RangeMethod method, int bins)
    : HistogramObserver(histogram_config(spec, method, bins)) {}

void HistogramObserver::regrid(float lo, float hi) {
  const int bins = config_.bins;
  const int e = detail::grid_exponent(lo, hi, bins);
  const int64_t k0 = detail::grid_floor(lo, detail::inverse_width(e));
  if (!counts_.empty() && e == exponent_ && k0 == k0_) return;
  std::vector<uint64_t> counts(static_cast<std::size_t>(bins), 0);
  if (!counts_.empty()) rebin_into(counts_, exponent_, k0_, counts, e, k0);
  counts_ = std::move(counts);
  exponent_ = e;
  k0_ = k0;
}

void HistogramObserver::observe(std::span<const float> data, std::span<const int64_t> shape) {
  detail::checked_shape(data, shape, "HistogramObserver::observe");
  if (data.empty()) return;
  const detail::ObserveKernels& k = detail::observe_kernels(active_isa());
  const auto bins = static_cast<std::size_t>(config_.bins);
  const std::size_t stride = bins + 1;  // slot `bins` is the kernels' discard bin
  std::vector<uint32_t> sub(detail::kSubHistograms * stride);
  // Keeps every uint32 sub-histogram count below 2^32.
  constexpr std::size_t kChunk = std::size_t{1} << 30;

  auto bin_chunk = [&](const float* x, std::size_t n, detail::MinMaxAccum* acc) {
    std::fill(sub.begin(), sub.end(), 0u);
    const detail::HistogramArgs args{x,
                                     n,
                                     detail::inverse_width(exponent_),
                                     static_cast<int32_t>(k0_),
                                     config_.bins,
                                     stride,
                                     sub.data()};
    k.histogram(args, acc);
  };
  auto fold_sub = [&] {
    for (std::size_t i = 0; i < bins; ++i) {
      uint64_t c = 0;
      for (int s = 0; s < detail::kSubHistograms; ++s) c += sub[s * stride + i];
      counts_[i] += c;
    }
  };

  for (std::size_t off = 0; off < data.size(); off += kChunk) {
    const float* x = data.data() + off;
    const std::size_t n = std::min(kChunk, data.size() - off);
    detail::MinMaxAccum acc{kInf, -kInf, 0, 0};
    if (counts_.empty()) {
      // First finite values: find their range, set up the grid, then bin.
      k.minmax(x, n, &acc);
      detail::add_counts(stats_, acc, n);
      if (acc.min > acc.max) continue;
      min_ = acc.min;
      max_ = acc.max;
      regrid(min_, max_);
      detail::MinMaxAccum ignored{kInf, -kInf, 0, 0};
      bin_chunk(x, n, &ignored);
      fold_sub();
      continue;
    }
    bin_chunk(x, n, &acc);
    detail::add_counts(stats_, acc, n);
    if (acc.min > acc.max) continue;  // nothing finite: only discards were counted
    const float inv = detail::inverse_width(exponent_);
    const bool inside = detail::grid_floor(acc.min, inv) - k0_ >= 0 &&
                        detail::grid_floor(acc.max, inv) - k0_ <= config_.bins - 1;
    min_ = std::min(min_, acc.min);
    max_ = std::max(max_, acc.max);
    if (inside) {
      // Binned on the old grid: exact; then move everything to the new one.
      fold_sub();
      regrid(min_, max_);
    } else {
      // Values fell off the old grid (clamped into the edge bins): bin again.
      regrid(min_, max_);
      detail::MinMaxAccum ignored{kInf, -kInf, 0, 0};
      bin_chunk(x, n, &ignored);
      fold_sub();
    }
  }
}

HistogramView HistogramObserver::histogram() const {
  if (!has_range()) detail::fail_no_data("HistogramObserver::histogram", stats_);
  return HistogramView{counts_, exponent_, k0_, min_, max_};
}

QParams HistogramObserver::qparams() const {
  const auto [lo, hi] = range();
  return compute_qparams(lo, hi, config_.spec);
}

HistogramObserver::AutomaticChoice HistogramObserver::automatic_choice() const {
  if (!has_range()) detail::fail_no_data("HistogramObserver", stats_);
  const QuantSpec& spec = config_.spec;
  const double w = std::ldexp(1.0, exponent_);
  AutomaticChoice best{RangeMethod::minmax, -std::numeric_limits<double>::infinity()};
  for (RangeMethod m :
       {RangeMethod::minmax, RangeMethod::mse, RangeMethod::entropy, RangeMethod::percentile}) {
    const auto [lo, hi] = range(m);
    const QParams qp = compute_qparams(lo, hi, spec);
    double signal = 0.0, noise = 0.0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] == 0) continue;
      const double n = static_cast<double>(counts_[i]);
      // The bin centre, kept inside what was observed (edge bins).
      const double c = std::clamp((static_cast<double>(k0_ + static_cast<int64_t>(i)) + 0.5) * w,
                                  static_cast<double>(min_), static_cast<double>(max_));
      const double q =
          std::clamp(std::nearbyint(c / qp.scale) + qp.zero_point, static_cast<double>(spec.qmin()),
                     static_cast<double>(spec.qmax()));
      const double d = c - (q - qp.zero_point) * static_cast<double>(qp.scale);
      signal += n * c * c;
      noise += n * d * d;
    }
    const double db =
        noise == 0.0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(signal / noise);
    if (db > best.sqnr_db) best = {m, db};
  }
  return best;
}

std::pair<float, float> HistogramObserver::range(RangeMethod method) const {
  if (!has_range()) detail::fail_no_data("HistogramObserver", stats_);
  if (method == RangeMethod::automatic) method = automatic_choice().method;
  if (method == RangeMethod::minmax) return {min_, max_};

  // The bins between the first and the last non-empty one.
  const float inv = detail::inverse_width(exponent_);
  const int64_t first = detail::grid_floor(min_, inv) - k0_;
  const int64_t last = detail::grid_floor(max_, inv) - k0_;
  if (first >= last) return {min_, max_};  // one bin: nothing to choose
  Window win;
  win.a0 = k0_ + first;
  win.w = std::ldexp(1.0, exponent_);
  win.h.assign(counts_.begin() + first, counts_.begin() + last + 1);

  const QuantSpec& spec = config_.spec;
  const int levels = spec.qmax() - spec.qmin() + 1;
  const double p = config_.percentile / 100.0;
  double lo = min_, hi = max_;
  auto symmetric = [&](double t) {
    lo = -t;
    hi = t;
  };
  switch (method) {
    case RangeMethod::minmax:
    case RangeMethod::automatic:  // resolved above
      break;
    case RangeMethod::mse: {
      coarsen(win, kMaxSearchBins);
      const double a = static_cast<double>(win.a0) * win.w;
      // PyTorch searches with dst_nbins = 2 ** bits of the dtype (256), also
      // with reduce_range or a custom range; so does sparq, to give the
      // PyTorch presets the ranges PyTorch's HistogramObserver chooses.
      constexpr int kPyTorchDstBins = 256;
      const auto r = detail::mse_search(win.h, a, a + static_cast<double>(win.h.size()) * win.w,
                                        kPyTorchDstBins);
      lo = r.first;
      hi = r.second;
      break;
    }
    case RangeMethod::entropy: {
      Window abs = fold_abs(win);
      coarsen(abs, std::min<std::size_t>(static_cast<std::size_t>(config_.bins), kMaxSearchBins));
      const bool one_sided = min_ >= 0.0f || max_ <= 0.0f;
      const int l = one_sided && spec.scheme == Scheme::asymmetric ? levels : levels / 2;
      symmetric(static_cast<double>(detail::entropy_search(abs.h, l)) * abs.w);
      break;
    }
    case RangeMethod::percentile: {
      const double total = win.total();
      if (config_.two_sided_percentile) {
        const double a = static_cast<double>(win.a0) * win.w;
        lo = detail::histogram_quantile(win.h, a, win.w, (1.0 - p) * total);
        hi = detail::histogram_quantile(win.h, a, win.w, p * total);
      } else {
        const Window abs = fold_abs(win);
        symmetric(detail::histogram_quantile(abs.h, 0.0, abs.w, p * total));
      }
      break;
    }
  }
  // Never outside what was observed (also keeps the result finite).
  const double l = std::clamp(lo, static_cast<double>(min_), static_cast<double>(max_));
  const double h = std::clamp(hi, static_cast<double>(min_), static_cast<double>(max_));
  const float fl = static_cast<float>(l);
  return {fl, std::max(fl, static_cast<float>(h))};
}

void HistogramObserver::merge(const Observer& other) {
  detail::check_same_config(config_, other, "HistogramObserver::merge");
  const auto& o = static_cast<const HistogramObserver&>(other);
  // Counts first: an overflow throws before any state changes, and the
  // batch counts (<= value counts) cannot overflow after it.
  detail::add_stats(stats_, o.stats_);
  if (o.has_range()) {
    if (!has_range()) {
      counts_ = o.counts_;
      exponent_ = o.exponent_;
      k0_ = o.k0_;
      min_ = o.min_;
      max_ = o.max_;
    } else {
      min_ = std::min(min_, o.min_);
      max_ = std::max(max_, o.max_);
      regrid(min_, max_);
      rebin_into(o.counts_, o.exponent_, o.k0_, counts_, exponent_, k0_);
    }
  }
}

void HistogramObserver::save(const std::filesystem::path& file) const {
  ObserverIo::save(file, *this);
}

void ObserverIo::put_state(ByteWriter& w, const HistogramObserver& o) {
  w.put(o.min_);
  w.put(o.max_);
  w.put(static_cast<int32_t>(o.exponent_));
  w.put(o.k0_);
  w.put(static_cast<uint32_t>(o.counts_.size()));
  w.put_array(std::span<const uint64_t>(o.counts_));
}

void ObserverIo::get_state(ByteReader& r, HistogramObserver& o, const ObserverStats& stats) {
  const float lo = r.get<float>("min");
  const float hi = r.get<float>("max");
  const int32_t e = r.get<int32_t>("exponent");
  const int64_t k0 = r.get<int64_t>("k0");
  const uint32_t bins = r.get<uint32_t>("bins");
  if (bins == 0) {
    if (stats.finite() != 0) r.bad("no histogram but {} finite values observed", stats.finite());
    o.stats_ = stats;
    return;
  }
  if (bins != static_cast<uint32_t>(o.config_.bins)) {
    r.bad("the histogram has {} bins but the config says {}", bins, o.config_.bins);
  }
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
    r.bad("range [{}, {}] is not a finite range", lo, hi);
  }
  const int want_e = detail::grid_exponent(lo, hi, o.config_.bins);
  const int64_t want_k0 = detail::grid_floor(lo, detail::inverse_width(want_e));
  if (e != want_e || k0 != want_k0) {
    r.bad("grid (exponent {}, k0 {}) does not match the range [{}, {}] (expected {}, {})", e, k0,
          lo, hi, want_e, want_k0);
  }
  if (bins > r.remaining() / sizeof(uint64_t)) {  // before allocating from the claimed size
    r.bad("{} bins need {} bytes of counts but only {} bytes follow", bins,
          uint64_t{bins} * sizeof(uint64_t), r.remaining());
  }
  std::vector<uint64_t> counts(bins);
  r.get_array(std::span<uint64_t>(counts), "counts");
  // Each count and the running sum are bounded by the finite count, so a
  // sum that wraps uint64 (and would pass as a small total) is refused.
  const auto finite = static_cast<uint64_t>(stats.finite());
  uint64_t sum = 0;
  for (std::size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] > finite - sum) {
      r.bad("counts[{}] = {} takes the total beyond the {} finite values observed", b, counts[b],
            finite);
    }
    sum += counts[b];
  }
  if (sum != finite) {
    r.bad("the counts add up to {} but {} finite values were observed", sum, stats.finite());
  }
  o.counts_ = std::move(counts);
  o.exponent_ = e;
  o.k0_ = k0;
  o.min_ = lo;
  o.max_ = hi;
  o.stats_ = stats;
}

}  // namespace sparq
