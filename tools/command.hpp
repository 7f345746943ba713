// Subcommand registry of the `sparq` tool. A command file defines
//   static const sparq::tool::Registration reg{"name", "one-line help", run};
// where run(args) gets the arguments after the command name and returns the
// process exit code.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sparq::tool {

using Args = std::vector<std::string>;
using CommandFn = std::function<int(const Args&)>;

struct Command {
  std::string help;
  CommandFn run;
};

inline std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> table;
  return table;
}

struct Registration {
  Registration(const std::string& name, const std::string& help, CommandFn run) {
    commands()[name] = Command{help, std::move(run)};
  }
};

}  // namespace sparq::tool
