// Min/max observers (include/sparq/observe/minmax.hpp).
#include "sparq/observe/minmax.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/observe_kernels.hpp"
#include "observe/serialize.hpp"

namespace sparq {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

ObserverConfig normalised(ObserverConfig config, ObserverKind expected, const char* who) {
  if (config.kind != expected) {
    detail::fail("{}: config.kind is {}; expected {}", who, observer_kind_name(config.kind),
                 observer_kind_name(expected));
  }
  config.validate();
  const bool per_channel = expected == ObserverKind::per_channel_minmax ||
                           expected == ObserverKind::moving_average_per_channel_minmax;
  config.spec.granularity = per_channel ? Granularity::per_channel : Granularity::per_tensor;
  return config;
}

ObserverConfig config_of(ObserverKind kind, const QuantSpec& spec, float averaging_constant) {
  ObserverConfig c;
  c.kind = kind;
  c.spec = spec;
  c.averaging_constant = averaging_constant;
  return c;
}

// Weighted average of two EMA states (see "merge()" in minmax.hpp).
float weighted(float a, int64_t wa, float b, int64_t wb) {
  const double r = (static_cast<double>(a) * static_cast<double>(wa) +
                    static_cast<double>(b) * static_cast<double>(wb)) /
                   static_cast<double>(wa + wb);
  return static_cast<float>(r);
}

// Below this many contiguous values per (outer, channel) slice, the
// per-channel scan goes row-wise (minmax_columns) instead of slice-wise.
constexpr std::size_t kMinSlice = 64;
// Row-wise scans process blocks of whole rows of about this many values.
constexpr std::size_t kColumnBlock = 1024;  // 2 x 4 KiB of running min/max: stays in L1

}  // namespace

// ------------------------------------------------------------------ MinMax

MinMaxObserver::MinMaxObserver(const ObserverConfig& config, ObserverKind expected)
    : ObserverBase(normalised(config, expected, "MinMaxObserver")), min_(kInf), max_(-kInf) {}

MinMaxObserver::MinMaxObserver(const ObserverConfig& config)
    : MinMaxObserver(config, ObserverKind::minmax) {}

MinMaxObserver::MinMaxObserver(const QuantSpec& spec)
    : MinMaxObserver(config_of(ObserverKind::minmax, spec, 0.01f)) {}

void MinMaxObserver::observe(std::span<const float> data, std::span<const int64_t> shape) {
  detail::checked_shape(data, shape, "MinMaxObserver::observe");
  if (data.empty()) return;
  detail::MinMaxAccum acc{kInf, -kInf, 0, 0};
  detail::observe_kernels(active_isa()).minmax(data.data(), data.size(), &acc);
  detail::add_counts(stats_, acc, data.size());
  if (acc.min > acc.max) return;  // nothing finite in this batch
  min_ = std::min(min_, acc.min);
  max_ = std::max(max_, acc.max);
  ++batches_;
}

QParams MinMaxObserver::qparams() const {
  const auto [lo, hi] = range();
  return compute_qparams(lo, hi, config_.spec);
}

std::pair<float, float> MinMaxObserver::range() const {
  if (!has_range()) detail::fail_no_data("MinMaxObserver", stats_);
  return {min_, max_};
}

void MinMaxObserver::merge(const Observer& other) {
  detail::check_same_config(config_, other, "MinMaxObserver::merge");
  const auto& o = static_cast<const MinMaxObserver&>(other);
  // Counts first: an overflow throws before any state changes, and the
  // batch counts (<= value counts) cannot overflow after it.
  detail::add_stats(stats_, o.stats_);
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  batches_ += o.batches_;
}

void MinMaxObserver::save(const std::filesystem::path& file) const {
  ObserverIo::save(file, *this);
}

void ObserverIo::put_state(ByteWriter& w, const MinMaxObserver& o) {
  w.put(o.min_);
  w.put(o.max_);
  w.put(o.batches_);
}

void ObserverIo::get_state(ByteReader& r, MinMaxObserver& o, const ObserverStats& stats) {
  const float lo = r.get<float>("min");
  const float hi = r.get<float>("max");
  const int64_t batches = r.get<int64_t>("batches");
  // A batch observes at least one value: batches <= observed keeps merged
  // batch counts within the (checked) merged value counts.
  if (batches < 0 || batches > stats.observed)
    r.bad("batches is {}; expected 0 <= batches <= {} (the values observed)", batches,
          stats.observed);
  if (batches > 0) {
    if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi || stats.finite() == 0) {
      r.bad("range [{}, {}] after {} batches is not a finite range of observed values", lo, hi,
            batches);
    }
    o.min_ = lo;
    o.max_ = hi;
  }
  o.batches_ = batches;
  o.stats_ = stats;
}

// --------------------------------------------------- MovingAverageMinMax

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(const ObserverConfig& config)
    : MinMaxObserver(config, ObserverKind::moving_average_minmax) {}

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(const QuantSpec& spec,
                                                         float averaging_constant)
    : MovingAverageMinMaxObserver(
          config_of(ObserverKind::moving_average_minmax, spec, averaging_constant)) {}

void MovingAverageMinMaxObserver::observe(std::span<const float> data,
                                          std::span<const int64_t> shape) {
  detail::checked_shape(data, shape, "MovingAverageMinMaxObserver::observe");
  if (data.empty()) return;
  detail::MinMaxAccum acc{kInf, -kInf, 0, 0};
  detail::observe_kernels(active_isa()).minmax(data.data(), data.size(), &acc);
  detail::add_counts(stats_, acc, data.size());
  if (acc.min > acc.max) return;
  if (batches_ == 0) {
    min_ = acc.min;
    max_ = acc.max;
  } else {
    const float c = config_.averaging_constant;
    min_ = detail::ema_step(min_, acc.min, c);
    max_ = detail::ema_step(max_, acc.max, c);
  }
  ++batches_;
}

void MovingAverageMinMaxObserver::merge(const Observer& other) {
  detail::check_same_config(config_, other, "MovingAverageMinMaxObserver::merge");
  const auto& o = static_cast<const MovingAverageMinMaxObserver&>(other);
  // Counts first: an overflow throws before any state changes, and the
  // batch counts (<= value counts) cannot overflow after it.
  detail::add_stats(stats_, o.stats_);
  if (o.batches_ > 0) {
    if (batches_ == 0) {
      min_ = o.min_;
      max_ = o.max_;
    } else {
      min_ = weighted(min_, batches_, o.min_, o.batches_);
      max_ = weighted(max_, batches_, o.max_, o.batches_);
    }
  }
  batches_ += o.batches_;
}

std::unique_ptr<Observer> MovingAverageMinMaxObserver::clone() const {
  return std::make_unique<MovingAverageMinMaxObserver>(*this);
}

// -------------------------------------------------------- PerChannelMinMax

PerChannelMinMaxObserver::PerChannelMinMaxObserver(const ObserverConfig& config,
                                                   ObserverKind expected)
    : ObserverBase(normalised(config, expected, "PerChannelMinMaxObserver")) {}

PerChannelMinMaxObserver::PerChannelMinMaxObserver(const ObserverConfig& config)
    : PerChannelMinMaxObserver(config, ObserverKind::per_channel_minmax) {}

PerChannelMinMaxObserver::PerChannelMinMaxObserver(const QuantSpec& spec)
    : PerChannelMinMaxObserver(config_of(ObserverKind::per_channel_minmax, spec, 0.01f)) {}

bool PerChannelMinMaxObserver::scan(std::span<const float> data, std::span<const int64_t> shape,
                                    std::vector<float>& batch_min, std::vector<float>& batch_max) {
  const char* who = "PerChannelMinMaxObserver::observe";
  const std::vector<std::size_t> dims = detail::checked_shape(data, shape, who);
  const int rank = static_cast<int>(dims.size());
  const int axis = config_.spec.axis < 0 ? config_.spec.axis + rank : config_.spec.axis;
  if (axis < 0 || axis >= rank) {
    detail::fail("{}: spec.axis ({}) is outside a rank-{} tensor; expected {} <= axis < {}", who,
                 config_.spec.axis, rank, -rank, rank);
  }
  if (data.empty()) return false;
  const std::size_t channels = dims[axis];
  if (!mins_.empty() && channels != mins_.size()) {
    detail::fail("{}: shape[{}] is {} channels; expected {} as in the earlier batches", who, axis,
                 channels, mins_.size());
  }
  std::size_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= dims[d];
  for (int d = axis + 1; d < rank; ++d) inner *= dims[d];

  const detail::ObserveKernels& k = detail::observe_kernels(active_isa());
  batch_min.assign(channels, kInf);
  batch_max.assign(channels, -kInf);
  detail::MinMaxAccum counts{kInf, -kInf, 0, 0};
  const float* x = data.data();
  if (inner >= kMinSlice) {
    // Long contiguous slices (e.g. axis 0 of a weight): one min/max scan each.
    for (std::size_t o = 0; o < outer; ++o) {
      for (std::size_t c = 0; c < channels; ++c) {
        detail::MinMaxAccum acc{kInf, -kInf, 0, 0};
        k.minmax(x + (o * channels + c) * inner, inner, &acc);
        batch_min[c] = std::min(batch_min[c], acc.min);
        batch_max[c] = std::max(batch_max[c], acc.max);
        counts.nan_count += acc.nan_count;
        counts.inf_count += acc.inf_count;
      }
    }
  } else {
    // Short slices (channel axis last or nearly): element-wise running
    // min/max over blocks of whole rows, folded into channels at the end.
    // The temporaries hold at most ~kColumnBlock + channels * inner values.
    const std::size_t row = channels * inner;
    const std::size_t rows_per_block = std::max<std::size_t>(1, kColumnBlock / row);
    const std::size_t block = rows_per_block * row;
    std::vector<float> tmin(block, kInf), tmax(block, -kInf);
    for (std::size_t o = 0; o < outer; o += rows_per_block) {
      const std::size_t rows = std::min(rows_per_block, outer - o);
      k.minmax_columns(x + o * row, rows * row, tmin.data(), tmax.data(), &counts);
    }
    for (std::size_t p = 0; p < block; ++p) {
      const std::size_t c = (p / inner) % channels;
      batch_min[c] = std::min(batch_min[c], tmin[p]);
      batch_max[c] = std::max(batch_max[c], tmax[p]);
    }
  }
  detail::add_counts(stats_, counts, data.size());
  if (mins_.empty()) {
    mins_.assign(channels, kInf);
    maxs_.assign(channels, -kInf);
    batches_.assign(channels, 0);
  }
  return true;
}

void PerChannelMinMaxObserver::observe(std::span<const float> data,
                                       std::span<const int64_t> shape) {
  std::vector<float> bmin, bmax;
  if (!scan(data, shape, bmin, bmax)) return;
  for (std::size_t c = 0; c < bmin.size(); ++c) {
    if (bmin[c] > bmax[c]) continue;
    mins_[c] = std::min(mins_[c], bmin[c]);
    maxs_[c] = std::max(maxs_[c], bmax[c]);
    ++batches_[c];
  }
}

QParams PerChannelMinMaxObserver::qparams() const {
  detail::fail("qparams: a {} observer is per-channel; use channel_qparams()",
               observer_kind_name(config_.kind));
}

std::pair<float, float> PerChannelMinMaxObserver::range() const {
  detail::fail("range: a {} observer is per-channel; use mins() and maxs()",
               observer_kind_name(config_.kind));
}

ChannelQParams PerChannelMinMaxObserver::channel_qparams() const {
  const bool any = std::any_of(batches_.begin(), batches_.end(), [](int64_t b) { return b > 0; });
  if (!any) detail::fail_no_data(observer_kind_name(config_.kind).data(), stats_);
  std::vector<float> lo(mins_.size()), hi(maxs_.size());
  for (std::size_t c = 0; c < mins_.size(); ++c) {
    const bool seen = batches_[c] > 0;
    lo[c] = seen ? mins_[c] : 0.0f;
    hi[c] = seen ? maxs_[c] : 0.0f;
  }
  return compute_qparams(lo, hi, config_.spec);
}

void PerChannelMinMaxObserver::check_mergeable(const Observer& other) const {
  detail::check_same_config(config_, other, "PerChannelMinMaxObserver::merge");
  const auto& o = static_cast<const PerChannelMinMaxObserver&>(other);
  if (!mins_.empty() && !o.mins_.empty() && mins_.size() != o.mins_.size()) {
    detail::fail("PerChannelMinMaxObserver::merge: the other observer has {} channels; expected {}",
                 o.mins_.size(), mins_.size());
  }
}

void PerChannelMinMaxObserver::merge(const Observer& other) { merge_channels(other, false); }

void PerChannelMinMaxObserver::merge_channels(const Observer& other, bool average) {
  check_mergeable(other);
  const auto& o = static_cast<const PerChannelMinMaxObserver&>(other);
  // Counts first: an overflow throws before any state changes, and the
  // batch counts (<= value counts) cannot overflow after it.
  detail::add_stats(stats_, o.stats_);
  if (mins_.empty()) {
    mins_ = o.mins_;
    maxs_ = o.maxs_;
    batches_ = o.batches_;
    return;
  }
  for (std::size_t c = 0; c < o.mins_.size(); ++c) {
    // A channel without batches holds (+inf, -inf): taking the other side
    // as it is equals min/max with it, and is what averaging needs.
    if (o.batches_[c] == 0) continue;
    if (batches_[c] == 0) {
      mins_[c] = o.mins_[c];
      maxs_[c] = o.maxs_[c];
    } else if (average) {
      mins_[c] = weighted(mins_[c], batches_[c], o.mins_[c], o.batches_[c]);
      maxs_[c] = weighted(maxs_[c], batches_[c], o.maxs_[c], o.batches_[c]);
    } else {
      mins_[c] = std::min(mins_[c], o.mins_[c]);
      maxs_[c] = std::max(maxs_[c], o.maxs_[c]);
    }
    batches_[c] += o.batches_[c];
  }
}

void PerChannelMinMaxObserver::save(const std::filesystem::path& file) const {
  ObserverIo::save(file, *this);
}

void ObserverIo::put_state(ByteWriter& w, const PerChannelMinMaxObserver& o) {
  w.put(static_cast<uint64_t>(o.mins_.size()));
  w.put_array(std::span<const float>(o.mins_));
  w.put_array(std::span<const float>(o.maxs_));
  w.put_array(std::span<const int64_t>(o.batches_));
}

void ObserverIo::get_state(ByteReader& r, PerChannelMinMaxObserver& o, const ObserverStats& stats) {
  const uint64_t channels = r.get<uint64_t>("channels");
  if (channels > r.remaining() / 16) {
    r.bad("channels is {} but only {} bytes of state follow (16 per channel)", channels,
          r.remaining());
  }
  o.mins_.resize(channels);
  o.maxs_.resize(channels);
  o.batches_.resize(channels);
  r.get_array(std::span<float>(o.mins_), "mins");
  r.get_array(std::span<float>(o.maxs_), "maxs");
  r.get_array(std::span<int64_t>(o.batches_), "batches");
  for (uint64_t c = 0; c < channels; ++c) {
    if (o.batches_[c] < 0 || o.batches_[c] > stats.observed) {
      r.bad("batches[{}] is {}; expected 0 <= batches <= {} (the values observed)", c,
            o.batches_[c], stats.observed);
    }
    if (o.batches_[c] == 0) {
      o.mins_[c] = kInf;
      o.maxs_[c] = -kInf;
    } else if (!std::isfinite(o.mins_[c]) || !std::isfinite(o.maxs_[c]) ||
               o.mins_[c] > o.maxs_[c] || stats.finite() == 0) {
      r.bad("channel {} range [{}, {}] is not a finite range of observed values", c, o.mins_[c],
            o.maxs_[c]);
    }
  }
  o.stats_ = stats;
}

// ------------------------------------------ MovingAveragePerChannelMinMax

MovingAveragePerChannelMinMaxObserver::MovingAveragePerChannelMinMaxObserver(
    const ObserverConfig& config)
    : PerChannelMinMaxObserver(config, ObserverKind::moving_average_per_channel_minmax) {}

MovingAveragePerChannelMinMaxObserver::MovingAveragePerChannelMinMaxObserver(
    const QuantSpec& spec, float averaging_constant)
    : MovingAveragePerChannelMinMaxObserver(
          config_of(ObserverKind::moving_average_per_channel_minmax, spec, averaging_constant)) {}

void MovingAveragePerChannelMinMaxObserver::observe(std::span<const float> data,
                                                    std::span<const int64_t> shape) {
  std::vector<float> bmin, bmax;
  if (!scan(data, shape, bmin, bmax)) return;
  const float c = config_.averaging_constant;
  for (std::size_t ch = 0; ch < bmin.size(); ++ch) {
    if (bmin[ch] > bmax[ch]) continue;
    if (batches_[ch] == 0) {
      mins_[ch] = bmin[ch];
      maxs_[ch] = bmax[ch];
    } else {
      mins_[ch] = detail::ema_step(mins_[ch], bmin[ch], c);
      maxs_[ch] = detail::ema_step(maxs_[ch], bmax[ch], c);
    }
    ++batches_[ch];
  }
}

void MovingAveragePerChannelMinMaxObserver::merge(const Observer& other) {
  merge_channels(other, true);
}

std::unique_ptr<Observer> MovingAveragePerChannelMinMaxObserver::clone() const {
  return std::make_unique<MovingAveragePerChannelMinMaxObserver>(*this);
}

}  // namespace sparq
