#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

// atomic_file.hpp calls ::fchmod without including <sys/stat.h> itself.
#include <sys/stat.h>

#include "sparq/detail/atomic_file.hpp"

namespace fashion {

std::string markdown_table(const std::vector<ResultRow>& rows) {
  std::string s =
      "| model | variant | test acc. | Δ vs FP32 (points) | model bytes | bytes vs FP32 | "
      "kernel bytes | batch-1 ms | batch-64 ms | speedup b1 | speedup b64 |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    s += fmt::format(
        "| {} | {} | {:.2f}% | {:+.2f} | {} | {:.3f}x | {} | {:.4f} | {:.3f} | "
        "{:.2f}x | {:.2f}x |\n",
        r.model, r.variant, 100 * r.accuracy, r.delta_points, r.bytes, r.bytes_ratio,
        r.kernel_bytes, r.latency1_ms, r.latency64_ms, r.speedup1, r.speedup64);
  }
  return s;
}

namespace {
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  // push_back only: GCC 12 -O3 reports a false -Wrestrict for short
  // std::string concatenations (GCC bug 105329).
  std::string q(1, '"');
  for (char c : v) {
    q.push_back(c);
    if (c == '"') q.push_back('"');
  }
  q.push_back('"');
  return q;
}
std::string xml_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}
}  // namespace

std::string csv_table(const std::vector<ResultRow>& rows) {
  std::string s =
      "model,variant,test_accuracy,delta_points,model_bytes,bytes_ratio,kernel_bytes,"
      "latency_b1_ms,latency_b64_ms,speedup_b1,speedup_b64,file,note\n";
  for (const auto& r : rows) {
    s += fmt::format("{},{},{:.4f},{:.2f},{},{:.4f},{},{:.5f},{:.4f},{:.3f},{:.3f},{},{}\n",
                     csv_field(r.model), csv_field(r.variant), r.accuracy, r.delta_points, r.bytes,
                     r.bytes_ratio, r.kernel_bytes, r.latency1_ms, r.latency64_ms, r.speedup1,
                     r.speedup64, csv_field(r.file), csv_field(r.note));
  }
  return s;
}

std::string svg_scatter(const std::vector<ResultRow>& rows) {
  const double width = 900, height = 560, left = 80, right = 260, top = 40, bottom = 60;
  const double pw = width - left - right, ph = height - top - bottom;
  double lmin = 1e300, lmax = 0, amin = 100, amax = 0;
  for (const auto& r : rows) {
    lmin = std::min(lmin, r.latency1_ms);
    lmax = std::max(lmax, r.latency1_ms);
    amin = std::min(amin, 100 * r.accuracy);
    amax = std::max(amax, 100 * r.accuracy);
  }
  if (rows.empty() || !(lmin > 0)) lmin = 1e-3, lmax = std::max(lmax, 1.0);
  // Log-scale latency axis on whole decades; accuracy axis padded by 0.5 point.
  const double x0 = std::floor(std::log10(lmin)),
               x1 = std::max(x0 + 1, std::ceil(std::log10(lmax)));
  const double y0 = std::floor(amin - 0.5), y1 = std::ceil(amax + 0.5);
  auto px = [&](double ms) { return left + pw * (std::log10(ms) - x0) / (x1 - x0); };
  auto py = [&](double acc) { return top + ph * (1 - (acc - y0) / (y1 - y0)); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"16\">Fashion-MNIST: test accuracy vs batch-1 "
      "latency (sparq)</text>\n",
      width, height, left);
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
      "stroke=\"black\"/>\n",
      left, top, pw, ph);
  for (double d = x0; d <= x1 + 1e-9; d += 1) {
    for (int m = 1; m < 10; ++m) {
      const double v = m * std::pow(10.0, d);
      if (std::log10(v) > x1 + 1e-9) break;
      const double x = px(v);
      s += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#ddd\"/>\n",
                       x, top, x, top + ph);
      if (m == 1) {
        s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:g}</text>\n", x,
                         top + ph + 18, v);
      }
    }
  }
  const double ystep = (y1 - y0) > 10 ? 2 : (y1 - y0) > 4 ? 1 : 0.5;
  for (double a = y0; a <= y1 + 1e-9; a += ystep) {
    const double y = py(a);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
                     left, y, left + pw, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}%</text>\n", left - 6,
                     y + 4, a);
  }
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">batch-1 latency (ms, log "
      "scale)</text>\n",
      left + pw / 2, height - 16);
  s += fmt::format(
      "<text transform=\"translate(20 {}) rotate(-90)\" text-anchor=\"middle\">test "
      "accuracy</text>\n",
      top + ph / 2);
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::map<std::string, int> model_color;
  int legend = 0;
  for (const auto& r : rows) {
    if (!model_color.count(r.model)) {
      const int c = static_cast<int>(model_color.size()) % 4;
      model_color[r.model] = c;
      s += fmt::format(
          "<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}"
          "</text>\n",
          left + pw + 20, top + 10 + 18 * legend, colors[c], left + pw + 30, top + 14 + 18 * legend,
          xml_escape(r.model));
      ++legend;
    }
  }
  int i = 0;
  for (const auto& r : rows) {
    const double x = px(r.latency1_ms), y = py(100 * r.accuracy);
    s += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\" opacity=\"0.8\">"
        "<title>{} {}: {:.2f}%, {:.4f} ms</title></circle>\n",
        x, y, colors[model_color[r.model]], xml_escape(r.model), xml_escape(r.variant),
        100 * r.accuracy, r.latency1_ms);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"9\" fill=\"#444\">{}</text>\n",
                     x + 6, y - 4 + 9 * (i % 3 - 1), xml_escape(r.variant));
    ++i;
  }
  s += "</svg>\n";
  return s;
}

void write_reports(const std::filesystem::path& dir, const std::vector<ResultRow>& rows,
                   const std::string& preamble, const std::string& epilogue) {
  sparq::detail::write_file_atomically(dir / "results.md",
                                       preamble + markdown_table(rows) + epilogue);
  sparq::detail::write_file_atomically(dir / "results.csv", csv_table(rows));
  sparq::detail::write_file_atomically(dir / "accuracy_vs_latency.svg", svg_scatter(rows));
}

}  // namespace fashion
