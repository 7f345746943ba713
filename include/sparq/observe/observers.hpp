// All calibration observers: the Observer interface and factory
// (observer.hpp), the min/max family (minmax.hpp) and the histogram observer
// with its range-selection methods (histogram.hpp). Guide: docs/observers.md.
#pragma once

#include "sparq/observe/histogram.hpp"
#include "sparq/observe/minmax.hpp"
#include "sparq/observe/observer.hpp"
