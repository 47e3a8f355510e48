#include "hyperaccel/kubectl_plugin/cli.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <thread>

#include "hyperaccel/common/cli.h"
#include "hyperaccel/kubectl_plugin/cluster.h"
#include "hyperaccel/kubectl_plugin/kube.h"
#include "hyperaccel/placement/names.h"

namespace hyperaccel::kubectl {
namespace {

struct Options {
  KubeconfigFlags kubeconfig;
  std::string output = "table";
  std::string resource = names::kDefaultResource;
  int request_timeout_s = 30;
  PlanRequest plan;
  std::string node;
};

Result<std::unique_ptr<kube::Client>> Connect(const Options& o, const KubeconfigEnv& env) {
  auto config = ResolveKubeconfig(o.kubeconfig, env);
  if (!config.ok()) return config.status();
  kube::ClientOptions copts;
  copts.request_timeout = std::chrono::seconds(o.request_timeout_s);
  copts.max_attempts = 2;
  copts.user_agent = "kubectl-hyperaccel/0.1";
  copts.sleep = [](std::chrono::milliseconds d) {
    std::this_thread::sleep_for(d);
    return true;
  };
  return kube::Client::Create(std::move(config).value(), copts);
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const KubeconfigEnv& env) {
  CLI::App app{"kubectl hyperaccel: HyperAccel FPGA cards, links and gang placement across the cluster",
               "kubectl-hyperaccel"};
  cli::UseGroupedHelp(app);
  app.require_subcommand(1);
  app.fallthrough();  // global options after the command too: `kubectl hyperaccel topo -o json`
  Options o;
  app.option_defaults()->group(cli::kGroupKubernetes);
  app.add_option(
      "--kubeconfig", o.kubeconfig.kubeconfig,
      "kubeconfig file (default: $KUBECONFIG, merged as kubectl does, then ~/.kube/config, then in-cluster)");
  app.add_option("--context", o.kubeconfig.context, "kubeconfig context (default: current-context)");
  app.add_option("--request-timeout", o.request_timeout_s, "Seconds to wait for the API server")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.option_defaults()->group("Output");
  app.add_option("-o,--output", o.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--resource", o.resource, "Extended resource that counts cards")->capture_default_str();

  auto* topo = app.add_subcommand("topo",
                                  "Link domains, racks, IDCs and nodes: total / free / unhealthy cards, "
                                  "largest free linked set, stranded cards");
  auto* plan = app.add_subcommand("plan",
                                  "Where a gang of --tasks pods x --cards cards would go now, decided by "
                                  "the Volcano bridge's own predicate and prioritize; or why it cannot run");
  plan->option_defaults()->group("Gang");
  plan->add_option("--tasks", o.plan.tasks, "Pods in the gang")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  plan->add_option("--cards", o.plan.cards, "Cards per pod")->check(CLI::Range(1, 64))->capture_default_str();
  plan->add_flag(
      "--require-linked", o.plan.require_linked,
      "Each pod must get a linked set of cards (annotation hyperaccel.ai/require-linked: \"true\")");
  plan->add_flag("--spot", o.plan.spot, "The pods are preemptable (volcano.sh/preemptable: \"true\")");
  auto* cards =
      app.add_subcommand("cards", "One node's cards and links as its topology agent published them");
  cards->add_option("NODE", o.node, "Node name")->required();

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp& e) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      out << (app.get_subcommands().empty() ? app.help() : app.get_subcommands().front()->help());
      return kExitOk;
    }
    err << "error: " << e.what() << "\nRun 'kubectl hyperaccel --help' for usage.\n";
    return kExitUsage;
  }
  o.plan.resource = o.resource;
  const bool json = o.output == "json";

  auto client = Connect(o, env);
  if (!client.ok()) {
    err << "error: " << client.status().message() << "\n";
    return kExitUsage;
  }
  if (cards->parsed()) {
    auto obj = (*client)->Get("/api/v1/nodes/" + o.node);
    if (!obj.ok()) {
      err << "error: node " << o.node << ": " << obj.status().message() << "\n";
      return obj.status().code() == StatusCode::kNotFound ? kExitUsage : kExitApi;
    }
    auto node = NodeFromObject(*obj, o.resource);
    if (!node.ok()) {
      err << "error: node " << o.node << ": " << node.status().message() << "\n";
      return kExitApi;
    }
    out << (json ? CardsJson(*node).dump(2) + "\n" : FormatCardsTable(*node));
    return kExitOk;
  }
  auto list = (*client)->List("/api/v1/nodes");
  if (!list.ok()) {
    err << "error: listing nodes: " << list.status().message() << "\n";
    return kExitApi;
  }
  auto nodes = NodesFromList(*list, o.resource);
  if (!nodes.ok()) {
    err << "error: " << nodes.status().message() << "\n";
    return kExitApi;
  }
  if (topo->parsed()) {
    const TopoReport report = BuildTopo(*nodes);
    out << (json ? TopoJson(report).dump(2) + "\n" : FormatTopoTable(report));
    return kExitOk;
  }
  auto result = Plan(*nodes, o.plan);
  if (!result.ok()) {
    err << "error: " << result.status().message() << "\n";
    return kExitUsage;
  }
  out << (json ? PlanJson(*result).dump(2) + "\n" : FormatPlanTable(*result));
  return result->feasible ? kExitOk : kExitCannotRun;
}

}  // namespace hyperaccel::kubectl
