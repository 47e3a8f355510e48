// hyperaccel-topology-agent: publishes a node's cards, links and tiers (run), shows them to a
// human (show), and answers "what would a K-card pod get here?" (plan).
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
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
// The arc the DRA scheduler would allocate for a claim of `size` cards: the first published arc
// (hyperaccel-dra-driver, default sizes 2,4,8) whose cards are all free, as the scheduler's
// allocator takes the first fitting device without scoring.
std::string DraArcLine(const hyperaccel::placement::CardGraph& graph, hyperaccel::placement::Mask free,
                       int size, const std::string& arcs_flag, nlohmann::json* out) {
  namespace pl = hyperaccel::placement;
  const std::vector<int> sizes{2, 4, 8};
  auto alignment = arcs_flag == "all" ? pl::ArcAlignment::kAll : pl::ArcAlignment::kAligned;
  auto arcs = pl::LinkedArcs(graph, sizes, alignment);
  auto arc = pl::FirstFitArc(arcs, free, size);
  if (!arc) {
    (*out)["dra_arc"] = nullptr;
    return "DRA (" + arcs_flag + " arcs, first fit): no free arc of " + std::to_string(size) + " cards\n";
  }
  std::string name = "arc" + std::to_string(arc->size) + "-" + std::to_string(arc->cards.front());
  std::string ids;
  for (int c : arc->cards) ids += (ids.empty() ? "" : ",") + graph.ids[static_cast<size_t>(c)];
  (*out)["dra_arc"] = {{"device", name},
                       {"link_domain", arc->domain},
                       {"position", arc->start},
                       {"cards", arc->size},
                       {"ids", ids}};
  return "DRA (" + arcs_flag + " arcs, first fit): " + name + " = " + ids + "\n";
}

int PlanCommand(hyperaccel::hw::DiscoveryOptions options, int size, const std::vector<std::string>& must,
                const std::vector<std::string>& busy, const std::string& format,
                const std::string& dra_arcs) {
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
  if (dra_arcs.empty()) {
    std::cout << (format == "json" ? pl::FormatPlanJson(*graph, request, choice)
                                   : pl::FormatPlanTable(*graph, request, choice));
  } else if (format == "json") {
    auto doc = nlohmann::json::parse(pl::FormatPlanJson(*graph, request, choice));
    DraArcLine(*graph, request.available, size, dra_arcs, &doc);
    std::cout << doc.dump() << "\n";
  } else {
    nlohmann::json ignored;
    std::cout << pl::FormatPlanTable(*graph, request, choice)
              << DraArcLine(*graph, request.available, size, dra_arcs, &ignored);
  }
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
  std::string plan_dra;
  auto* plan = app.add_subcommand("plan",
                                  "print the cards placement would give a K-card pod on this node now, in "
                                  "link order, and why");
  plan->add_option("--size", plan_size, "number of cards (K)")->required()->check(CLI::Range(1, 64));
  plan->add_option("--must", plan_must, "card IDs that must be included (comma-separated)");
  plan->add_option("--busy", plan_busy, "card IDs to treat as already allocated (comma-separated)");
  plan->add_option("--dra-arcs", plan_dra,
                   "also say which arc hyperaccel-dra-driver's slices would give (aligned or all)")
      ->check(CLI::IsMember({"aligned", "all"}));
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
    return PlanCommand(discovery, plan_size, SplitIds(plan_must), SplitIds(plan_busy), plan_format, plan_dra);
  }
  if (run->parsed()) {
    hyperaccel::shutdown::InstallSignalHandlers();
    return hyperaccel::agent::RunAgent(agent, discovery);
  }
  return 0;
}
