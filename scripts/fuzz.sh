#!/usr/bin/env bash
# Builds the quantized-model loader fuzzer (fuzz/) with clang + libFuzzer +
# ASan + UBSan and runs it for N seconds (default 60) from a freshly generated
# seed corpus. Exits non-zero on any finding (crash, sanitizer report, leak,
# timeout, out-of-memory, uncaught exception); the reproducer is left in the
# build folder as crash-*/timeout-*/oom-*.
# Usage: bash scripts/fuzz.sh [seconds] [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
BUILD=${2:-build-fuzz}
CC=clang CXX=clang++ cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD" --parallel "$(nproc)"
rm -rf "$BUILD/corpus"
"$BUILD/make_seed_corpus" "$BUILD/corpus"
"$BUILD/quantized_model_fuzzer" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -dict=fuzz/quantized_model.dict -artifact_prefix="$BUILD/" -print_final_stats=1 \
  "$BUILD/corpus"
