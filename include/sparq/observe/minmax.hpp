// Min/max observers: per tensor and per channel, running or moving average.
//
// All four follow PyTorch's observers (torch/ao/quantization/observer.py) so a
// model calibrated with sparq and with PyTorch on the same data gets the
// same ranges, with two deliberate differences: NaN and +-Inf are excluded
// and counted instead of poisoning the range, and a batch without any finite
// value is skipped instead of producing an inf/NaN range.
//
// MinMaxObserver                   min = min(min, batch_min), same for max.
// MovingAverageMinMaxObserver      the first batch with a finite value sets
//                                  min/max; later batches move them:
//                                    min = min + c * (batch_min - min)
//                                  (float arithmetic, as PyTorch; if that
//                                  overflows for ranges near FLT_MAX it is
//                                  redone in double, so it stays finite).
// PerChannelMinMaxObserver         one running min/max per index along
//                                  config().spec.axis (any axis; negative
//                                  counts from the end).
// MovingAveragePerChannelMinMaxObserver   the EMA per channel; each channel
//                                  is initialised by the first batch in which
//                                  it has a finite value.
//
// Per-channel observers: the channel count is fixed by the first non-empty
// batch; later batches must have the same size along the axis (the other
// dimensions may change, e.g. the batch size). A channel that never saw a
// finite value, while others did, gets the range [0, 0] (scale = spec.eps):
// it quantizes to zero, and stats() reports the NaN/Inf that caused it.
//
// merge():
//   MinMax / PerChannelMinMax: exact (min of mins, max of maxes).
//   Moving averages: an EMA depends on the order of the batches, so there is
//   no exact merge. The merged min/max is the average of the two, weighted
//   by how many batches (with finite values) each side averaged; a side that
//   saw nothing is ignored. Merging equal-sized shards of i.i.d. data gives
//   what each shard estimates; use MinMax or Histogram when merge must be
//   exact.
//
// Speed: the per-tensor min/max and the per-channel scans run SIMD kernels
// (AVX-512, AVX2, NEON; chosen by sparq::active_isa()) that read each value
// once; see docs/observers.md for measured throughput.
#pragma once

#include <vector>

#include "sparq/observe/observer.hpp"

namespace sparq {

/// Running min/max of all finite values.
class MinMaxObserver : public ObserverBase<MinMaxObserver> {
 public:
  /// config.kind must be ObserverKind::minmax (else sparq::Error).
  explicit MinMaxObserver(const ObserverConfig& config = {});
  explicit MinMaxObserver(const QuantSpec& spec);

  using Observer::observe;
  void observe(std::span<const float> data, std::span<const int64_t> shape) override;
  QParams qparams() const override;
  std::pair<float, float> range() const override;
  void merge(const Observer& other) override;
  void save(const std::filesystem::path& file) const override;

  /// True once a finite value was observed.
  bool has_range() const { return min_ <= max_; }

 protected:
  MinMaxObserver(const ObserverConfig& config, ObserverKind expected);
  friend struct ObserverIo;

  float min_;  // +inf / -inf until a finite value arrives
  float max_;
  int64_t batches_ = 0;  // batches that contained a finite value
};

/// EMA of the batch min/max (PyTorch MovingAverageMinMaxObserver).
class MovingAverageMinMaxObserver : public MinMaxObserver {
 public:
  /// config.kind must be ObserverKind::moving_average_minmax.
  explicit MovingAverageMinMaxObserver(const ObserverConfig& config);
  explicit MovingAverageMinMaxObserver(const QuantSpec& spec = {},
                                       float averaging_constant = 0.01f);

  using Observer::observe;
  void observe(std::span<const float> data, std::span<const int64_t> shape) override;
  void merge(const Observer& other) override;
  std::unique_ptr<Observer> clone() const override;
};

/// Running min/max per channel along config().spec.axis.
class PerChannelMinMaxObserver : public ObserverBase<PerChannelMinMaxObserver> {
 public:
  /// config.kind must be ObserverKind::per_channel_minmax.
  explicit PerChannelMinMaxObserver(const ObserverConfig& config);
  /// A spec with granularity per_channel and the channel axis.
  explicit PerChannelMinMaxObserver(const QuantSpec& spec);

  using Observer::observe;
  void observe(std::span<const float> data, std::span<const int64_t> shape) override;
  /// Throws: per-channel observers have no per-tensor qparams.
  QParams qparams() const override;
  ChannelQParams channel_qparams() const override;
  /// Throws: use mins()/maxs().
  std::pair<float, float> range() const override;
  void merge(const Observer& other) override;
  void save(const std::filesystem::path& file) const override;

  /// Number of channels (0 before the first non-empty batch).
  std::size_t channels() const { return mins_.size(); }
  /// Per-channel ranges; a channel without finite values has min > max
  /// (+inf, -inf) here and [0, 0] in channel_qparams().
  const std::vector<float>& mins() const { return mins_; }
  const std::vector<float>& maxs() const { return maxs_; }

 protected:
  PerChannelMinMaxObserver(const ObserverConfig& config, ObserverKind expected);
  /// Scans one batch: per-channel min/max of its finite values into
  /// batch_min/batch_max (+inf/-inf for channels without any) and the
  /// NaN/Inf counts into stats_. Returns false for an empty batch.
  bool scan(std::span<const float> data, std::span<const int64_t> shape,
            std::vector<float>& batch_min, std::vector<float>& batch_max);
  void check_mergeable(const Observer& other) const;
  /// merge() of both per-channel kinds: channels observed on both sides
  /// take min/max, or with `average` the batch-weighted average of the
  /// two EMA states.
  void merge_channels(const Observer& other, bool average);
  friend struct ObserverIo;

  std::vector<float> mins_, maxs_;
  std::vector<int64_t> batches_;  // per channel: batches with a finite value
};

/// EMA of the per-channel batch min/max (PyTorch
/// MovingAveragePerChannelMinMaxObserver).
class MovingAveragePerChannelMinMaxObserver : public PerChannelMinMaxObserver {
 public:
  /// config.kind must be ObserverKind::moving_average_per_channel_minmax.
  explicit MovingAveragePerChannelMinMaxObserver(const ObserverConfig& config);
  explicit MovingAveragePerChannelMinMaxObserver(const QuantSpec& spec,
                                                 float averaging_constant = 0.01f);

  using Observer::observe;
  void observe(std::span<const float> data, std::span<const int64_t> shape) override;
  void merge(const Observer& other) override;
  std::unique_ptr<Observer> clone() const override;
};

}  // namespace sparq
