// libFuzzer target: observer state files (load_observer's parser) on
// arbitrary bytes.
//
// Contract: any input either loads or throws sparq::Error. An observer that
// loads is used the way calibration uses it (stats, range, qparams), so the
// state the loader accepted is exercised; those calls may refuse the state
// with sparq::Error (no finite value observed), never crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "observe/serialize.hpp"
#include "sparq/error.hpp"
#include "sparq/observe/observers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
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
  return 0;
}
