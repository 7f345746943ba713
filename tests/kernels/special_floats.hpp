// The float values every kernel must handle like the scalar reference:
// NaN of either sign, both infinities, both zeros, the smallest denormals
// and the largest finite values. The kernel tests mix them into their
// random inputs.
#pragma once

#include <limits>

namespace sparq::testing {

inline constexpr float kSpecialFloats[] = {std::numeric_limits<float>::quiet_NaN(),
                                           -std::numeric_limits<float>::quiet_NaN(),
                                           std::numeric_limits<float>::infinity(),
                                           -std::numeric_limits<float>::infinity(),
                                           0.0f,
                                           -0.0f,
                                           std::numeric_limits<float>::denorm_min(),
                                           -std::numeric_limits<float>::denorm_min(),
                                           std::numeric_limits<float>::max(),
                                           std::numeric_limits<float>::lowest()};

}  // namespace sparq::testing
