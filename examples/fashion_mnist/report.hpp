// The demo's results table, written as Markdown, CSV and an SVG scatter plot
// of accuracy against batch-1 latency. Every file goes through
// sparq::detail::write_file_atomically.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace fashion {

struct ResultRow {
  std::string model;             ///< "MLP", "CNN"
  std::string variant;           ///< "FP32", "dynamic INT8", "static INT8 per-channel mse", ...
  double accuracy = 0;           ///< test accuracy, 0..1
  double delta_points = 0;       ///< (accuracy - FP32 accuracy) * 100
  std::size_t bytes = 0;         ///< stored model bytes (see stored_bytes in bridge.hpp)
  std::size_t kernel_bytes = 0;  ///< bytes the kernels read (packed, padded)
  double bytes_ratio = 1;        ///< bytes / FP32 bytes
  double latency1_ms = 0;        ///< median, batch 1
  double latency64_ms = 0;       ///< median, batch 64
  double speedup1 = 1;           ///< FP32 latency / this latency, batch 1
  double speedup64 = 1;
  std::string file;  ///< saved model file (relative to the output dir)
  std::string note;
};

std::string markdown_table(const std::vector<ResultRow>& rows);
std::string csv_table(const std::vector<ResultRow>& rows);
/// Accuracy (%) against batch-1 latency (ms, log scale), one colour per model.
std::string svg_scatter(const std::vector<ResultRow>& rows);

/// Writes results.md (preamble, table, epilogue), results.csv and
/// accuracy_vs_latency.svg into dir.
void write_reports(const std::filesystem::path& dir, const std::vector<ResultRow>& rows,
                   const std::string& preamble, const std::string& epilogue);

}  // namespace fashion
