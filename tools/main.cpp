// sparq: command-line front end (info, bench, inspect, ...).
#include <fmt/format.h>

#include <exception>

#include "command.hpp"
#include "sparq/error.hpp"

int main(int argc, char** argv) {
  using sparq::tool::commands;
  auto usage = [] {
    fmt::print("usage: sparq <command> [options]\n\ncommands:\n");
    for (const auto& [name, cmd] : commands()) fmt::print("  {:<10} {}\n", name, cmd.help);
  };
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    fmt::print(stderr, "sparq: unknown command '{}'\n", argv[1]);
    usage();
    return 2;
  }
  try {
    return it->second.run(sparq::tool::Args(argv + 2, argv + argc));
  } catch (const std::exception& e) {
    fmt::print(stderr, "sparq {}: error: {}\n", argv[1], e.what());
    return 1;
  }
}
