// Every binary's --help lists its options in groups, in the same order: help first, the binary's
// own groups, then Discovery, Kubernetes API, Metrics and health, Configuration and logging.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "process.h"

namespace hyperaccel::testing {
namespace {

// Group headings ("Name:" at the start of a line) in order of appearance.
std::vector<std::string> Headings(const std::string& help) {
  std::vector<std::string> out;
  std::istringstream in(help);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == ':' && line.find(' ') != 0 && line.rfind("Usage", 0) != 0) {
      out.push_back(line.substr(0, line.size() - 1));
    }
  }
  return out;
}

TEST(Help, EveryBinaryGroupsItsOptionsInTheSameOrder) {
  struct Case {
    std::string binary;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"hyperaccel-device-plugin",
       {"Options", "Device plugin", "Discovery", "Metrics and health", "Configuration and logging"}},
      {"hyperaccel-topology-agent",
       {"Options", "Topology agent", "Discovery", "Kubernetes API", "Metrics and health",
        "Configuration and logging", "Subcommands"}},
      {"hyperaccel-dra-driver",
       {"Options", "DRA driver", "Kubelet plugin", "Discovery", "Kubernetes API", "Metrics and health",
        "Configuration and logging", "Subcommands"}},
      {"hyperaccel-volcano-bridge", {"Options", "Volcano bridge", "Configuration and logging"}},
      {"hyperaccel-sim", {"Options", "Simulation", "Configuration and logging"}},
      {"kubectl-hyperaccel", {"Options", "Output", "Kubernetes API", "Subcommands"}},
  };
  for (const auto& c : cases) {
    const ProcessResult r = RunBinary(c.binary, {"--help"});
    ASSERT_EQ(r.exit_code, 0) << c.binary << ": " << r.err;
    EXPECT_EQ(Headings(r.out), c.expected) << c.binary << ":\n" << r.out;
    // No option is left outside a named group except --help itself.
    const std::string options = r.out.substr(
        r.out.find("Options:"), r.out.find('\n', r.out.find("-h,--help")) - r.out.find("Options:"));
    EXPECT_EQ(options.find("--", options.find("--help") + 6), std::string::npos) << c.binary << ":\n"
                                                                                 << r.out;
  }
}

}  // namespace
}  // namespace hyperaccel::testing
