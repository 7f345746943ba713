// The Observer base, the config checks, the factory and the file framing
// shared by every observer (format: serialize.hpp, docs/observers.md).
#include "sparq/observe/observer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "io/files.hpp"
#include "observe/serialize.hpp"
#include "sparq/observe/histogram.hpp"
#include "sparq/observe/minmax.hpp"
#include "util/fnv1a.hpp"

namespace sparq {

namespace {

// names[e] for an enumerator e, "unknown" for a value outside the enum (a
// corrupt file's byte): the tables list the enumerators in declaration
// order, so each enum's names live in one line instead of a switch.
template <class Enum, std::size_t N>
std::string_view enum_name(Enum e, const std::array<std::string_view, N>& names) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < N ? names[i] : "unknown";
}

constexpr std::array<std::string_view, 5> kObserverKindNames = {
    "minmax", "moving_average_minmax", "per_channel_minmax", "moving_average_per_channel_minmax",
    "histogram"};
constexpr std::array<std::string_view, 5> kRangeMethodNames = {"minmax", "mse", "entropy",
                                                               "percentile", "automatic"};
static_assert(kObserverKindNames.size() == static_cast<std::size_t>(ObserverKind::histogram) + 1);
static_assert(kRangeMethodNames.size() == static_cast<std::size_t>(RangeMethod::automatic) + 1);

}  // namespace

std::string_view observer_kind_name(ObserverKind kind) noexcept {
  return enum_name(kind, kObserverKindNames);
}

std::string_view range_method_name(RangeMethod method) noexcept {
  return enum_name(method, kRangeMethodNames);
}

void ObserverConfig::validate() const {
  if (static_cast<unsigned>(kind) > static_cast<unsigned>(ObserverKind::histogram)) {
    detail::fail("ObserverConfig: kind ({}) is not an ObserverKind", static_cast<int>(kind));
  }
  if (static_cast<unsigned>(method) > static_cast<unsigned>(RangeMethod::automatic)) {
    detail::fail("ObserverConfig: method ({}) is not a RangeMethod", static_cast<int>(method));
  }
  spec.validate();
  if (!(averaging_constant > 0.0f && averaging_constant <= 1.0f)) {
    detail::fail("ObserverConfig: averaging_constant ({}) must be in (0, 1]", averaging_constant);
  }
  if (bins < 16 || bins > (1 << 20)) {
    detail::fail("ObserverConfig: bins ({}) must be in [16, {}]", bins, 1 << 20);
  }
  if (!(percentile > 0.0 && percentile <= 100.0)) {
    detail::fail("ObserverConfig: percentile ({}) must be in (0, 100]", percentile);
  }
  if (two_sided_percentile && percentile < 50.0) {
    detail::fail(
        "ObserverConfig: percentile ({}) must be >= 50 when two_sided_percentile is set (the "
        "range is [100 - p, p] percentiles)",
        percentile);
  }
}

void Observer::observe(std::span<const float> data) {
  const int64_t shape[1] = {static_cast<int64_t>(data.size())};
  observe(data, shape);
}

ChannelQParams Observer::channel_qparams() const {
  detail::fail("channel_qparams: a {} observer is per-tensor; use qparams()",
               observer_kind_name(config().kind));
}

std::unique_ptr<Observer> make_observer(const ObserverConfig& config) {
  config.validate();
  switch (config.kind) {
    case ObserverKind::minmax:
      return std::make_unique<MinMaxObserver>(config);
    case ObserverKind::moving_average_minmax:
      return std::make_unique<MovingAverageMinMaxObserver>(config);
    case ObserverKind::per_channel_minmax:
      return std::make_unique<PerChannelMinMaxObserver>(config);
    case ObserverKind::moving_average_per_channel_minmax:
      return std::make_unique<MovingAveragePerChannelMinMaxObserver>(config);
    case ObserverKind::histogram:
      return std::make_unique<HistogramObserver>(config);
  }
  detail::fail("make_observer: kind ({}) is not an ObserverKind", static_cast<int>(config.kind));
}

// ------------------------------------------------------------------ files

namespace {

constexpr std::size_t kFrameHead = 8 + 4 + 8;  // magic, version, payload size
constexpr std::size_t kFrameTail = 8;          // checksum

}  // namespace

void ObserverIo::put_header(ByteWriter& w, const ObserverConfig& c, const ObserverStats& s) {
  w.put(static_cast<uint8_t>(c.kind));
  w.put(static_cast<uint8_t>(c.spec.dtype));
  w.put(static_cast<uint8_t>(c.spec.scheme));
  w.put(static_cast<uint8_t>(c.spec.granularity));
  w.put(static_cast<int32_t>(c.spec.axis));
  w.put(static_cast<uint8_t>(c.spec.narrow_range));
  w.put(static_cast<uint8_t>(c.spec.reduce_range));
  w.put(static_cast<uint8_t>(c.spec.quant_min.has_value()));
  w.put(static_cast<int32_t>(c.spec.quant_min.value_or(0)));
  w.put(static_cast<uint8_t>(c.spec.quant_max.has_value()));
  w.put(static_cast<int32_t>(c.spec.quant_max.value_or(0)));
  w.put(c.spec.eps);
  w.put(c.averaging_constant);
  w.put(static_cast<int32_t>(c.bins));
  w.put(static_cast<uint8_t>(c.method));
  w.put(c.percentile);
  w.put(static_cast<uint8_t>(c.two_sided_percentile));
  w.put(s.observed);
  w.put(s.nan_count);
  w.put(s.inf_count);
}

ObserverConfig ObserverIo::get_config(ByteReader& r) {
  auto enum_byte = [&](const char* field, unsigned last) {
    const uint8_t v = r.get<uint8_t>(field);
    if (v > last) r.bad("field '{}' is {}; expected 0..{}", field, v, last);
    return v;
  };
  ObserverConfig c;
  c.kind =
      static_cast<ObserverKind>(enum_byte("kind", static_cast<unsigned>(ObserverKind::histogram)));
  c.spec.dtype = static_cast<DType>(enum_byte("spec.dtype", 1));
  c.spec.scheme = static_cast<Scheme>(enum_byte("spec.scheme", 1));
  c.spec.granularity = static_cast<Granularity>(enum_byte("spec.granularity", 1));
  c.spec.axis = r.get<int32_t>("spec.axis");
  c.spec.narrow_range = enum_byte("spec.narrow_range", 1) != 0;
  c.spec.reduce_range = enum_byte("spec.reduce_range", 1) != 0;
  const bool has_min = enum_byte("spec.has_quant_min", 1) != 0;
  const int32_t qmin = r.get<int32_t>("spec.quant_min");
  const bool has_max = enum_byte("spec.has_quant_max", 1) != 0;
  const int32_t qmax = r.get<int32_t>("spec.quant_max");
  if (has_min) c.spec.quant_min = qmin;
  if (has_max) c.spec.quant_max = qmax;
  c.spec.eps = r.get<float>("spec.eps");
  c.averaging_constant = r.get<float>("averaging_constant");
  c.bins = r.get<int32_t>("bins");
  c.method =
      static_cast<RangeMethod>(enum_byte("method", static_cast<unsigned>(RangeMethod::automatic)));
  c.percentile = r.get<double>("percentile");
  c.two_sided_percentile = enum_byte("two_sided_percentile", 1) != 0;
  try {
    c.validate();
  } catch (const Error& e) {
    r.bad("invalid config: {}", e.what());
  }
  return c;
}

ObserverStats ObserverIo::get_stats(ByteReader& r) {
  ObserverStats s;
  s.observed = r.get<int64_t>("stats.observed");
  s.nan_count = r.get<int64_t>("stats.nan_count");
  s.inf_count = r.get<int64_t>("stats.inf_count");
  // Checked without computing finite() first: observed - nan - inf must not
  // be evaluated for counts that would overflow int64.
  // observed <= 2^62: two loaded observers merge without overflow.
  if (s.observed < 0 || s.observed > (int64_t{1} << 62) || s.nan_count < 0 || s.inf_count < 0 ||
      s.nan_count > s.observed || s.inf_count > s.observed - s.nan_count) {
    r.bad("stats (observed {}, nan {}, inf {}) are inconsistent", s.observed, s.nan_count,
          s.inf_count);
  }
  return s;
}

void ObserverIo::write(const std::filesystem::path& file, ByteWriter& payload) {
  ByteWriter frame;
  frame.put_array(std::span<const char>(kObserverMagic, 8));
  frame.put(kObserverFileVersion);
  frame.put(static_cast<uint64_t>(payload.bytes().size()));
  frame.put_array(std::span<const std::byte>(payload.bytes()));
  frame.put(detail::fnv1a64(payload.bytes()));
  detail::write_file_atomically(file, frame.bytes());
}

std::unique_ptr<Observer> load_observer(const std::filesystem::path& file) {
  const std::vector<std::byte> raw = detail::read_regular_file(file, "load_observer");
  return detail::load_observer_bytes(raw, file.string());
}

std::unique_ptr<Observer> detail::load_observer_bytes(std::span<const std::byte> bytes,
                                                      const std::string& name) {
  const std::string file = name;  // what the messages call the source
  ByteReader frame(bytes, file);
  if (bytes.size() < kFrameHead + kFrameTail) {
    frame.bad("the file has {} bytes; an observer file has at least {}", bytes.size(),
              kFrameHead + kFrameTail);
  }
  if (std::memcmp(bytes.data(), kObserverMagic, 8) != 0) {
    frame.bad("not an observer file (the first 8 bytes are not \"SPARQOBS\")");
  }
  std::array<char, 8> magic;
  frame.get_array(std::span<char>(magic), "magic");
  const uint32_t version = frame.get<uint32_t>("version");
  if (version != kObserverFileVersion) {
    frame.bad("format version {} is not supported; this build reads version {}", version,
              kObserverFileVersion);
  }
  const uint64_t size = frame.get<uint64_t>("payload size");
  if (size != bytes.size() - kFrameHead - kFrameTail) {
    frame.bad(
        "the header announces a {}-byte payload but the file holds {} (truncated or "
        "extended file)",
        size, bytes.size() - kFrameHead - kFrameTail);
  }
  const auto payload = bytes.subspan(kFrameHead, size);
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + kFrameHead + size, sizeof stored);
  if (stored != detail::fnv1a64(payload)) {
    frame.bad("checksum mismatch: the file is corrupted");
  }

  ByteReader r(payload, file);
  const ObserverConfig config = ObserverIo::get_config(r);
  const ObserverStats stats = ObserverIo::get_stats(r);
  std::unique_ptr<Observer> out = make_observer(config);
  switch (config.kind) {
    case ObserverKind::minmax:
    case ObserverKind::moving_average_minmax:
      ObserverIo::get_state(r, static_cast<MinMaxObserver&>(*out), stats);
      break;
    case ObserverKind::per_channel_minmax:
    case ObserverKind::moving_average_per_channel_minmax:
      ObserverIo::get_state(r, static_cast<PerChannelMinMaxObserver&>(*out), stats);
      break;
    case ObserverKind::histogram:
      ObserverIo::get_state(r, static_cast<HistogramObserver&>(*out), stats);
      break;
  }
  if (r.remaining() != 0) r.bad("{} unexpected bytes after the state", r.remaining());
  return out;
}

// ------------------------------------------------------------------ helpers

namespace detail {

std::vector<std::size_t> checked_shape(std::span<const float> data, std::span<const int64_t> shape,
                                       const char* who) {
  if (shape.empty()) {
    fail("{}: shape is empty (rank 0); expected a tensor of rank >= 1", who);
  }
  std::vector<std::size_t> dims(shape.size());
  std::size_t product = 1;
  bool overflow = false;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) fail("{}: shape[{}] is {}; expected >= 0", who, d, shape[d]);
    dims[d] = static_cast<std::size_t>(shape[d]);
    if (dims[d] != 0 && product > std::numeric_limits<std::size_t>::max() / dims[d]) {
      overflow = true;
    }
    product *= dims[d];
  }
  if (overflow || product != data.size()) {
    fail("{}: shape has {} elements but data has {}; expected equal counts", who,
         overflow ? std::string("too many") : std::to_string(product), data.size());
  }
  return dims;
}

void fail_no_data(const char* who, const ObserverStats& s) {
  fail(
      "{}: no finite value observed yet ({} values seen, {} NaN, {} Inf); observe data "
      "with finite values first",
      who, s.observed, s.nan_count, s.inf_count);
}

void check_same_config(const ObserverConfig& c, const Observer& other, const char* who) {
  const ObserverConfig& o = other.config();
  if (o.kind != c.kind) {
    fail("{}: cannot merge a {} observer into a {} observer; expected the same kind", who,
         observer_kind_name(o.kind), observer_kind_name(c.kind));
  }
  const QuantSpec &a = c.spec, &b = o.spec;
  const bool same = a.dtype == b.dtype && a.scheme == b.scheme && a.axis == b.axis &&
                    a.narrow_range == b.narrow_range && a.reduce_range == b.reduce_range &&
                    a.quant_min == b.quant_min && a.quant_max == b.quant_max && a.eps == b.eps &&
                    c.averaging_constant == o.averaging_constant && c.bins == o.bins &&
                    c.method == o.method && c.percentile == o.percentile &&
                    c.two_sided_percentile == o.two_sided_percentile;
  if (!same) {
    fail(
        "{}: the other {} observer has a different config (spec, bins, method, percentile "
        "or averaging constant); expected identical configs",
        who, observer_kind_name(c.kind));
  }
}

float ema_step(float value, float batch, float c) {
  const float f = value + c * (batch - value);
  if (std::isfinite(f)) return f;
  // batch - value overflowed (ranges near +-FLT_MAX): the exact result lies
  // between value and batch, so it is representable.
  const double d =
      static_cast<double>(value) + static_cast<double>(c) * (static_cast<double>(batch) - value);
  const double lim = std::numeric_limits<float>::max();
  return static_cast<float>(std::clamp(d, -lim, lim));
}

}  // namespace detail
}  // namespace sparq
