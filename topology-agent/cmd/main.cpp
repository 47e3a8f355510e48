// hyperaccel-topology-agent: publishes a node's cards, links and tiers (run), shows them to a
// human (show), and answers "what would a K-card pod get here?" (plan).
#include <CLI/CLI.hpp>
#include <iostream>

#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/xrt/discovery.h"
#include "show.h"

namespace {

using hyperaccel::Status;

int ShowCommand(hyperaccel::hw::DiscoveryOptions options, const std::string& format) {
  auto discovery = hyperaccel::hw::Discovery::Create(std::move(options));
  if (!discovery.ok()) {
    std::cerr << "error: " << discovery.status().message() << "\n";
    return 2;
  }
  auto inventory = (*discovery)->Scan();
  if (!inventory.ok()) {
    std::cerr << "error: " << inventory.status().message() << "\n";
    return 1;
  }
  std::cout << (format == "json" ? hyperaccel::agent::FormatInventoryJson(*inventory)
                                 : hyperaccel::agent::FormatInventoryTable(*inventory));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hyperaccel-topology-agent: publishes HyperAccel LPU (Alveo U55C) cards, links and topology tiers "
               "to Kubernetes"};
  app.fallthrough();
  hyperaccel::cli::CommonFlags common;
  hyperaccel::cli::AddCommonFlags(app, common, "HYPERACCEL_");
  hyperaccel::hw::DiscoveryOptions discovery;
  hyperaccel::hw::AddDiscoveryFlags(app, discovery);

  std::string show_format = "table";
  auto* show = app.add_subcommand("show", "print this node's cards and link matrix");
  show->add_option("--format", show_format, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();

  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  if (!hyperaccel::cli::ApplyCommonFlags(common, "topology-agent")) return 2;
  if (show->parsed()) {
    // A command-line tool: only warnings and errors go to stderr unless asked otherwise.
    if (common.log_level == "info") hyperaccel::log::SetLevel(hyperaccel::log::Level::kWarn);
    return ShowCommand(discovery, show_format);
  }
  return 0;
}
