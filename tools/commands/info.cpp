// sparq info: the CPU, its ISAs and the kernels sparq chose.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.hpp"
#include "sparq/isa.hpp"

namespace {

int run_info(const sparq::tool::Args&) {
  const sparq::CpuInfo& cpu = sparq::cpu_info();
  fmt::print("cpu:            {}\n", cpu.brand);
  fmt::print("architecture:   {}{}\n", cpu.architecture,
             cpu.emulated ? " (emulated: timings are meaningless)" : "");
  fmt::print("cpu features:   {}\n", fmt::join(cpu.features, " "));
  fmt::print("amx:            {}\n", cpu.amx);
  std::vector<std::string_view> isas;
  for (sparq::Isa isa : sparq::supported_isas()) isas.push_back(sparq::isa_name(isa));
  fmt::print("supported ISAs: {}\n", fmt::join(isas, " "));
  fmt::print("best ISA:       {}\n", sparq::isa_name(sparq::best_isa()));
  fmt::print("active ISA:     {}{}\n", sparq::isa_name(sparq::active_isa()),
             sparq::active_isa() != sparq::best_isa() ? " (forced by SPARQ_ISA)" : "");
  return 0;
}

const sparq::tool::Registration reg{"info", "print the CPU, its ISAs and the kernels chosen",
                                    run_info};

}  // namespace
