// Calibration observers: the common interface.
//
// Static quantization needs, for every activation (and weight) tensor, the
// range [min, max] its values take on representative data. An observer is
// fed batches of that data (`observe`), keeps a small summary of what it saw
// (O(bins + channels) memory, independent of how much data it observed) and
// turns the summary into quantization parameters (`qparams` /
// `channel_qparams`) through compute_qparams() and the spec in its config.
//
// The observers (see minmax.hpp and histogram.hpp for the details of each):
//
//   kind                               keeps                    range
//   minmax                             running min/max          exact min/max
//   moving_average_minmax              EMA of batch min/max     EMA
//   per_channel_minmax                 min/max per channel      exact, per channel
//   moving_average_per_channel_minmax  EMA per channel          EMA, per channel
//   histogram                          exact power-of-two grid  RangeMethod: minmax,
//                                      histogram (bins)         mse, entropy, percentile
//
// Calibrating on several threads or machines: give each shard its own
// observer (observers are not thread-safe; one observer per thread), then
// merge() them. For minmax, per_channel_minmax and histogram the merged
// state is exactly the state a single observer fed all the data would have
// (the histogram's grid is designed for that, see histogram.hpp). The
// moving-average observers depend on the order of the batches, so their
// merge is a documented approximation (minmax.hpp).
//
// Resuming a calibration: save() writes the full state atomically (through
// sparq::detail::write_file_atomically) in a versioned binary format that is
// documented in docs/observers.md; load_observer() reads any kind back and
// throws sparq::Error naming the file and the problem for a missing,
// truncated, corrupted or unknown-version file.
//
// Robustness, for every observer (the failures users report elsewhere):
//   * NaN and +-Inf are counted (stats().nan_count / inf_count) and excluded
//     from the range; they never reach compute_qparams.
//   * No finite value observed at all (no batch, empty batches, all-NaN
//     input): qparams() / channel_qparams() / range() throw sparq::Error that
//     says how many values (and NaN/Inf) were seen.
//   * All-zero input gives the range [0, 0] and scale = spec.eps (as PyTorch).
//   * Constant input, a single element, ranges of 1e-30 or 1e30: valid,
//     finite qparams; never a NaN scale. A range so wide that its scale
//     overflows float (|max - min| > ~3e38 * levels) is a sparq::Error from
//     compute_qparams.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "sparq/error.hpp"
#include "sparq/quant/qparams.hpp"

namespace sparq {

enum class ObserverKind : uint8_t {
  minmax,
  moving_average_minmax,
  per_channel_minmax,
  moving_average_per_channel_minmax,
  histogram
};

/// How a HistogramObserver picks its range from the histogram (histogram.hpp
/// documents each method and where it comes from). Stored as one byte in
/// observer files: new methods are appended.
enum class RangeMethod : uint8_t {
  minmax,      ///< the full observed range [min, max]
  mse,         ///< PyTorch HistogramObserver's L2-error search
  entropy,     ///< TensorRT's KL-divergence calibration (128 levels for 8 bits)
  percentile,  ///< the given percentile, one- or two-sided
  /// Each of the four above, keeping the one whose range quantizes the data
  /// best (largest SQNR). nn::Calibrator measures it on calibration rows held
  /// out from the observers (the default of static quantization); an
  /// observer alone measures it on its own histogram (each bin's count at
  /// the bin centre). HistogramObserver::automatic_choice() tells which won.
  automatic,
};

/// Lower-case names ("minmax", "moving_average_minmax", ...; "mse", ...).
std::string_view observer_kind_name(ObserverKind kind) noexcept;
std::string_view range_method_name(RangeMethod method) noexcept;

/// Everything that defines an observer, except what it has seen.
struct ObserverConfig {
  ObserverKind kind = ObserverKind::minmax;
  /// dtype/scheme/axis used by qparams(). The kind decides the granularity:
  /// the observer stores spec.granularity = per_channel for the per-channel
  /// kinds and per_tensor for the others, whatever was passed. spec.axis is
  /// the channel axis of the per-channel kinds (negative counts from the end
  /// of each batch's shape).
  QuantSpec spec{};
  /// Moving-average observers: new = old + c * (batch - old); c in (0, 1].
  float averaging_constant = 0.01f;
  /// Histogram: number of bins, in [16, 1 << 20].
  int bins = 2048;
  /// Histogram: how the range is chosen.
  RangeMethod method = RangeMethod::mse;
  /// RangeMethod::percentile: in (0, 100] (>= 50 when two-sided); 100
  /// selects the full range.
  double percentile = 99.99;
  /// RangeMethod::percentile: true takes the (100 - p)th and pth percentiles
  /// of the values; false takes the pth percentile T of |x| and the range
  /// [-T, T] (clipped to what was observed).
  bool two_sided_percentile = true;

  /// Throws sparq::Error naming the bad field.
  void validate() const;
};

/// What an observer has seen. `observed` counts every value passed to
/// observe(), including the NaN and Inf ones (which are excluded from the
/// range).
struct ObserverStats {
  int64_t observed = 0;
  int64_t nan_count = 0;
  int64_t inf_count = 0;
  int64_t finite() const { return observed - nan_count - inf_count; }
  friend bool operator==(const ObserverStats&, const ObserverStats&) = default;
};

/// The interface every observer implements. Not thread-safe: use one
/// observer per thread and merge().
class Observer {
 public:
  virtual ~Observer() = default;

  /// Records a batch. `data` is a row-major tensor of the given shape (any
  /// rank >= 1, dimensions >= 0, product == data.size(), else sparq::Error).
  /// Per-tensor observers use the shape only for that check; per-channel
  /// observers read the channel count along config().spec.axis (it must be
  /// the same in every batch). An empty batch changes nothing.
  virtual void observe(std::span<const float> data, std::span<const int64_t> shape) = 0;
  /// 1-D convenience: observe(data, {data.size()}).
  void observe(std::span<const float> data);

  /// Per-tensor result (per-channel observers throw sparq::Error).
  virtual QParams qparams() const = 0;
  /// Per-channel result (per-tensor observers throw sparq::Error).
  virtual ChannelQParams channel_qparams() const;
  /// The chosen [min, max] that qparams() quantizes (before compute_qparams
  /// widens it to contain 0). Per-channel observers throw sparq::Error.
  virtual std::pair<float, float> range() const = 0;

  /// Adds what `other` saw to this observer. `other` must have the same kind
  /// and config (and, per channel, the same channel count), else
  /// sparq::Error and this observer is unchanged.
  virtual void merge(const Observer& other) = 0;

  virtual ObserverStats stats() const = 0;
  /// Writes the full state (config + summary) atomically; see
  /// docs/observers.md for the format.
  virtual void save(const std::filesystem::path& file) const = 0;
  virtual const ObserverConfig& config() const = 0;
  virtual std::unique_ptr<Observer> clone() const = 0;
};

/// What every concrete observer shares (CRTP): its config and counts, their
/// accessors, and clone() as a copy of `Derived` (a subclass of Derived that
/// adds a kind overrides clone() again). save() stays with each class: the
/// file framing (ObserverIo) is internal to src/observe.
template <class Derived>
class ObserverBase : public Observer {
 public:
  ObserverStats stats() const override { return stats_; }
  const ObserverConfig& config() const override { return config_; }
  std::unique_ptr<Observer> clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }

 protected:
  explicit ObserverBase(ObserverConfig config) : config_(std::move(config)) {}

  ObserverConfig config_;
  ObserverStats stats_;
};

/// Creates the observer config.kind names (validating the config).
std::unique_ptr<Observer> make_observer(const ObserverConfig& config);

/// Reads a file written by Observer::save (any kind). Throws sparq::Error for a
/// missing, truncated or corrupted file or an unknown format version.
std::unique_ptr<Observer> load_observer(const std::filesystem::path& file);

}  // namespace sparq
