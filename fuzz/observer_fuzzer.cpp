// libFuzzer target: observer state files (load_observer's parser) on
// arbitrary bytes.
//
// Contract: any input either loads or throws sparq::Error. An observer that
// loads is used the way calibration uses it (stats, range, qparams), so the
// state the loader accepted is exercised; those calls may refuse the state
// with sparq::Error (no finite value observed), never crash.
//
// Each input is tried as is and, so that mutations get past the frame
// checks to the payload parser, with its payload size and FNV-1a checksum
// rewritten to match (the file format's own framing, as a writer would).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "observe/serialize.hpp"
#include "sparq/error.hpp"
#include "sparq/observe/observers.hpp"

namespace {

void load_and_use(std::span<const std::byte> bytes) {
  try {
    const std::unique_ptr<sparq::Observer> o = sparq::detail::load_observer_bytes(bytes, "fuzz");
    (void)o->stats().finite();
    if (o->stats().finite() > 0) {
      (void)o->range();
      if (o->config().spec.granularity == sparq::Granularity::per_channel) {
        (void)o->channel_qparams();
      } else {
        (void)o->qparams();
      }
    }
    const std::unique_ptr<sparq::Observer> copy = o->clone();
    copy->merge(*o);
  } catch (const sparq::Error&) {
    // the documented outcome for a bad file or a state without data
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  load_and_use(bytes);
  constexpr std::size_t head = 8 + 4 + 8, tail = 8;  // magic, version, size | checksum
  if (size >= head + tail) {
    std::vector<std::byte> framed(bytes.begin(), bytes.end());
    const uint64_t payload = size - head - tail;
    std::memcpy(framed.data() + 12, &payload, 8);
    uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = head; i < head + payload; ++i) {
      h ^= static_cast<uint64_t>(framed[i]);
      h *= 0x100000001b3ull;
    }
    std::memcpy(framed.data() + head + payload, &h, 8);
    load_and_use(framed);
  }
  return 0;
}
