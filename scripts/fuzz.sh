#!/usr/bin/env bash
# Builds the loader fuzzers (fuzz/: quantized model, safetensors import,
# observer state, `sparq inspect`) with clang + libFuzzer + ASan + UBSan,
# the seed corpora with them, and runs each fuzzer for N seconds (default
# 40, so about 160 s in all). Exits non-zero on any finding (crash,
# sanitizer report, leak, timeout, out-of-memory, an allocation above
# 256 MB from inputs of at most 64 KB, uncaught exception); the reproducer
# is left in the build folder as <fuzzer>-crash-*/timeout-*/oom-*.
# Usage: bash scripts/fuzz.sh [seconds-per-fuzzer] [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-40}
BUILD=${2:-build-fuzz}
CC=clang CXX=clang++ cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD" --parallel "$(nproc)"
run() {  # fuzzer, dictionary ("" for none), seed folders...
  local name=$1 dict=$2
  shift 2
  local corpus="$BUILD/corpus/$name"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  echo "--- $name for ${SECONDS_EACH}s"
  "$BUILD/${name}_fuzzer" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=256 ${dict:+-dict="$dict"} \
    -artifact_prefix="$BUILD/$name-" -print_final_stats=1 "$corpus" "$@"
}
run quantized_model fuzz/quantized_model.dict "$BUILD/seeds/model"
run safetensors fuzz/quantized_model.dict "$BUILD/seeds/safetensors"
run observer "" "$BUILD/seeds/observer"
run inspect fuzz/quantized_model.dict "$BUILD/seeds/safetensors"
