// Internal: the binary format of saved observers (documented in
// docs/observers.md, "File format") and the helpers shared by the observer
// sources.
//
//   "SPARQOBS"                8 bytes magic
//   u32 version               kObserverFileVersion
//   u64 payload size          bytes that follow, before the checksum
//   payload                   kind, config, stats, kind-specific state
//   u64 checksum              FNV-1a 64 of the payload
//
// All integers and floats are little-endian, floats as their IEEE-754 bits.
// A reader checks magic, version, sizes and checksum before it parses the
// payload, and every field while it parses, so a truncated, corrupted or
// foreign file is a sparq::Error naming the file and what is wrong.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/observe_kernels.hpp"
#include "sparq/error.hpp"
#include "sparq/observe/observer.hpp"

namespace sparq {

static_assert(std::endian::native == std::endian::little,
              "the observer file format is written with memcpy: little-endian hosts only");

inline constexpr uint32_t kObserverFileVersion = 1;
inline constexpr char kObserverMagic[8] = {'S', 'P', 'A', 'R', 'Q', 'O', 'B', 'S'};

class ByteWriter {
 public:
  template <class T>
  void put(T v) {
    static_assert(std::is_arithmetic_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof v);
  }
  template <class T>
  void put_array(std::span<const T> v) {
    if (v.empty()) return;
    const auto* p = reinterpret_cast<const std::byte*>(v.data());
    bytes_.insert(bytes_.end(), p, p + v.size_bytes());
  }
  std::vector<std::byte>& bytes() { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string file)
      : bytes_(bytes), file_(std::move(file)) {}
  template <class T>
  T get(const char* field) {
    static_assert(std::is_arithmetic_v<T>);
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  template <class T>
  void get_array(std::span<T> out, const char* field) {
    need(out.size_bytes(), field);
    if (out.empty()) return;  // data() may be null: memcpy(nullptr, ..., 0) is undefined
    std::memcpy(out.data(), bytes_.data() + pos_, out.size_bytes());
    pos_ += out.size_bytes();
  }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  const std::string& file() const { return file_; }
  template <class... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> format, Args&&... args) const {
    detail::fail("load_observer {}: {}", file_, fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  void need(std::size_t n, const char* field) const {
    if (bytes_.size() - pos_ < n) {
      bad("the payload ends inside field '{}' (needs {} bytes at offset {}, {} left)", field, n,
          pos_, bytes_.size() - pos_);
    }
  }
  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
  std::string file_;
};

class MinMaxObserver;
class PerChannelMinMaxObserver;
class HistogramObserver;

/// Serialisation of the parts every observer shares, and the framing.
struct ObserverIo {
  static void put_header(ByteWriter& w, const ObserverConfig& config, const ObserverStats& stats);
  static void write(const std::filesystem::path& file, ByteWriter& payload);
  /// Header + state of `o`, framed and written atomically.
  template <class T>
  static void save(const std::filesystem::path& file, const T& o) {
    ByteWriter w;
    put_header(w, o.config_, o.stats_);
    put_state(w, o);
    write(file, w);
  }
  static ObserverConfig get_config(ByteReader& r);
  static ObserverStats get_stats(ByteReader& r);

  // Kind-specific state (defined next to each observer).
  static void put_state(ByteWriter& w, const MinMaxObserver& o);
  static void get_state(ByteReader& r, MinMaxObserver& o, const ObserverStats& stats);
  static void put_state(ByteWriter& w, const PerChannelMinMaxObserver& o);
  static void get_state(ByteReader& r, PerChannelMinMaxObserver& o, const ObserverStats& stats);
  static void put_state(ByteWriter& w, const HistogramObserver& o);
  static void get_state(ByteReader& r, HistogramObserver& o, const ObserverStats& stats);
};

namespace detail {

/// Checks a batch's shape against its data (rank >= 1, dims >= 0, product ==
/// size) and returns the dims as size_t.
std::vector<std::size_t> checked_shape(std::span<const float> data, std::span<const int64_t> shape,
                                       const char* who);

/// Adds a kernel accumulator's NaN/Inf counts and the batch size to stats.
inline void add_counts(ObserverStats& stats, const MinMaxAccum& acc, std::size_t n) {
  stats.observed += static_cast<int64_t>(n);
  stats.nan_count += acc.nan_count;
  stats.inf_count += acc.inf_count;
}

/// stats += other (merge). Counts loaded from files can be near the int64
/// limit; a sum that would overflow is an error, not a wrapped count.
inline void add_stats(ObserverStats& stats, const ObserverStats& other) {
  ObserverStats sum;
  if (__builtin_add_overflow(stats.observed, other.observed, &sum.observed) ||
      __builtin_add_overflow(stats.nan_count, other.nan_count, &sum.nan_count) ||
      __builtin_add_overflow(stats.inf_count, other.inf_count, &sum.inf_count)) {
    fail("merge: the observed value counts ({} + {}) overflow int64", stats.observed,
         other.observed);
  }
  stats = sum;
}

/// load_observer on a file image in memory (the observer fuzzer's entry);
/// `name` stands for the file in messages.
std::unique_ptr<Observer> load_observer_bytes(std::span<const std::byte> bytes,
                                              const std::string& name);

/// The error for qparams() without any finite value.
[[noreturn]] void fail_no_data(const char* who, const ObserverStats& stats);

/// Throws unless `other` has the kind and config of `config`.
void check_same_config(const ObserverConfig& config, const Observer& other, const char* who);

/// EMA step min + c * (batch - min) in float (as PyTorch), redone in double
/// and clamped to the float range when the float result is not finite.
float ema_step(float value, float batch, float c);

}  // namespace detail
}  // namespace sparq
