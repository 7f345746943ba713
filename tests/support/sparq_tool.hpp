// Runs the `sparq` command-line program from a test: found next to the
// test's build folder (tools/sparq), not when the tests run under an
// emulator (the program is then built for another machine).
//
//   const auto tool = sparq::testing::sparq_tool();
//   if (!tool) GTEST_SKIP() << "the sparq program is not built next to this test";
//   const auto r = sparq::testing::run_tool(*tool, "inspect model.sparq");
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "sparq/isa.hpp"

namespace sparq::testing {

/// The `sparq` program next to this test's build folder, if it was built
/// for this machine (not when the tests run under an emulator).
inline std::optional<std::filesystem::path> sparq_tool() {
  namespace fs = std::filesystem;
  if (sparq::cpu_info().emulated) return std::nullopt;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  for (fs::path dir = self.parent_path(); !dir.empty() && dir != dir.root_path();
       dir = dir.parent_path()) {
    if (fs::exists(dir / "tools" / "sparq")) return dir / "tools" / "sparq";
  }
  return std::nullopt;
}

struct ToolRun {
  int status = -1;
  std::string output;  ///< stdout and stderr together
};

inline ToolRun run_tool(const std::filesystem::path& tool, const std::string& args) {
  const std::filesystem::path out = std::filesystem::temp_directory_path() /
                                    ("sparq_tool_run_" + std::to_string(::getpid()) + ".txt");
  const std::string cmd = tool.string() + " " + args + " > " + out.string() + " 2>&1";
  const int raw = std::system(cmd.c_str());
  ToolRun r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  std::filesystem::remove(out);
  return r;
}

}  // namespace sparq::testing
