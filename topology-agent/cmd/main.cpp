// hyperaccel-topology-agent: publishes a node's cards, links and tiers (run), shows them to a
// human (show), and answers "what would a K-card pod get here?" (plan).
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/placement/placement.h"
#include "hyperaccel/topology_agent/agent.h"
#include "hyperaccel/xrt/discovery.h"
#include "show.h"

namespace {

// One discovery scan for a command; on failure prints why and sets the exit code (2 = bad
// options such as a broken cabling file, 1 = the scan itself failed).
std::optional<hyperaccel::hw::Inventory> DiscoverOnce(hyperaccel::hw::DiscoveryOptions options,
                                                      int* exit_code) {
  auto discovery = hyperaccel::hw::Discovery::Create(std::move(options));
  if (!discovery.ok()) {
    std::cerr << "error: " << discovery.status().message() << "\n";
    *exit_code = 2;
    return std::nullopt;
  }
  auto inventory = (*discovery)->Scan();
  if (!inventory.ok()) {
    std::cerr << "error: " << inventory.status().message() << "\n";
    *exit_code = 1;
    return std::nullopt;
  }
  return std::move(inventory).value();
}

int ShowCommand(hyperaccel::hw::DiscoveryOptions options, const std::string& format, bool dry_run,
                const hyperaccel::agent::AgentOptions& agent) {
  const std::string cabling = options.cabling_file;
  int exit_code = 0;
  auto inventory = DiscoverOnce(std::move(options), &exit_code);
  if (!inventory) return exit_code;
  if (dry_run) {
    auto publication = hyperaccel::agent::PreviewPublication(*inventory, agent, cabling);
    if (!publication.ok()) {
      std::cerr << "error: " << publication.status().message() << "\n";
      return 1;
    }
    std::cout << hyperaccel::agent::FormatDryRun(*publication);
    return 0;
  }
  std::cout << (format == "json" ? hyperaccel::agent::FormatInventoryJson(*inventory)
                                 : hyperaccel::agent::FormatInventoryTable(*inventory));
  return 0;
}

// Splits "a,b,c" (empty items dropped).
std::vector<std::string> SplitIds(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      if (comma == std::string::npos) comma = v.size();
      if (comma > start) out.push_back(v.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return out;
}

// `plan`: what placement would pick on this node now for a K-card pod.
int PlanCommand(hyperaccel::hw::DiscoveryOptions options, int size, const std::vector<std::string>& must,
                const std::vector<std::string>& busy, const std::string& format) {
  namespace pl = hyperaccel::placement;
  int exit_code = 0;
  auto inventory = DiscoverOnce(std::move(options), &exit_code);
  if (!inventory) return exit_code;
  auto graph = pl::GraphFromInventory(*inventory);
  if (!graph.ok()) {
    std::cerr << "error: " << graph.status().message() << "\n";
    return 1;
  }
  auto must_mask = graph->MaskOf(must);
  auto busy_mask = graph->MaskOf(busy);
  for (const auto* m : {&must_mask, &busy_mask}) {
    if (!m->ok()) {
      std::cerr << "error: " << m->status().message() << "\n";
      return 2;
    }
  }
  pl::Request request;
  request.available = graph->HealthyMask() & ~*busy_mask;
  request.must_include = *must_mask;
  request.size = size;
  auto choice = pl::Choose(*graph, request);
  std::cout << (format == "json" ? pl::FormatPlanJson(*graph, request, choice)
                                 : pl::FormatPlanTable(*graph, request, choice));
  return choice.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "hyperaccel-topology-agent: publishes HyperAccel LPU (Alveo U55C) cards, links and topology tiers "
      "to Kubernetes"};
  app.fallthrough();
  hyperaccel::cli::CommonFlags common;
  hyperaccel::cli::AddCommonFlags(app, common, "HYPERACCEL_");
  hyperaccel::hw::DiscoveryOptions discovery;
  hyperaccel::hw::AddDiscoveryFlags(app, discovery);

  // The agent's flags are global too: `show --dry-run` uses the tier settings, `run` all of them.
  hyperaccel::agent::AgentOptions agent;
  hyperaccel::agent::AddAgentFlags(app, agent);
  auto* run =
      app.add_subcommand("run", "publish labels, the topology annotation and HyperNodes (the daemon)");

  std::string show_format = "table";
  bool show_dry_run = false;
  auto* show = app.add_subcommand("show", "print this node's cards and link matrix");
  show->add_option("--format", show_format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  show->add_flag("--dry-run", show_dry_run,
                 "print the labels, annotation and HyperNodes the agent would publish (asks no API server)");

  int plan_size = 0;
  std::vector<std::string> plan_must;
  std::vector<std::string> plan_busy;
  std::string plan_format = "table";
  auto* plan = app.add_subcommand("plan",
                                  "print the cards placement would give a K-card pod on this node now, in "
                                  "link order, and why");
  plan->add_option("--size", plan_size, "number of cards (K)")->required()->check(CLI::Range(1, 64));
  plan->add_option("--must", plan_must, "card IDs that must be included (comma-separated)");
  plan->add_option("--busy", plan_busy, "card IDs to treat as already allocated (comma-separated)");
  plan->add_option("--format", plan_format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  app.require_subcommand(1);
  if (const int rc = hyperaccel::cli::Parse(app, argc, argv); rc >= 0) return rc;
  if (!hyperaccel::cli::ApplyCommonFlags(common, "topology-agent")) return 2;
  if (show->parsed()) {
    // A command-line tool: only warnings and errors go to stderr unless asked otherwise.
    if (common.log_level == "info") hyperaccel::log::SetLevel(hyperaccel::log::Level::kWarn);
    return ShowCommand(discovery, show_format, show_dry_run, agent);
  }
  if (plan->parsed()) {
    if (common.log_level == "info") hyperaccel::log::SetLevel(hyperaccel::log::Level::kWarn);
    return PlanCommand(discovery, plan_size, SplitIds(plan_must), SplitIds(plan_busy), plan_format);
  }
  if (run->parsed()) {
    hyperaccel::shutdown::InstallSignalHandlers();
    return hyperaccel::agent::RunAgent(agent, discovery);
  }
  return 0;
}
