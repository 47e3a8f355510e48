#include "hyperaccel/kubectl_plugin/cluster.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <numeric>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "hyperaccel/bridge/decide.h"
#include "hyperaccel/bridge/state.h"
#include "hyperaccel/bridge/wire.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/placement/placement.h"

namespace hyperaccel::kubectl {
namespace {

std::string Label(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

// A Kubernetes quantity of whole devices ("8"); nullopt when it is not a plain integer.
std::optional<int> WholeQuantity(const Json& q) {
  if (q.is_number_integer()) return q.get<int>();
  if (!q.is_string()) return std::nullopt;
  const std::string s = q.get<std::string>();
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

// Pads `s` to `width` columns plus one space (ASCII content assumed).
std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size() + 1, ' ');
}

std::string FormatRows(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows) {
    widths.resize(std::max(widths.size(), r.size()), 0);
    for (size_t k = 0; k < r.size(); ++k) widths[k] = std::max(widths[k], r[k].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t k = 0; k < r.size(); ++k) line += k + 1 == r.size() ? r[k] : Pad(r[k], widths[k]);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

// ---- largest free linked set across nodes --------------------------------------------------------

class UnionFind {
 public:
  explicit UnionFind(size_t n) : parent_(n), size_(n, 1) { std::iota(parent_.begin(), parent_.end(), 0); }
  size_t Find(size_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void Join(size_t a, size_t b) {
    a = Find(a);
    b = Find(b);
    if (a == b) return;
    if (size_[a] < size_[b]) std::swap(a, b);
    parent_[b] = a;
    size_[a] += size_[b];
  }
  size_t SizeOf(size_t x) { return size_[Find(x)]; }

 private:
  std::vector<size_t> parent_;
  std::vector<size_t> size_;
};

using Endpoint = std::tuple<std::string, std::string, int>;  // node, serial, port

// Free healthy cards of `nodes`, joined over the links the annotations report (see Totals).
int LargestFreeLinked(const std::vector<const NodeView*>& nodes) {
  std::map<std::pair<std::string, std::string>, size_t> index;  // (node, serial) -> vertex
  std::vector<std::pair<size_t, size_t>> edges;
  // Cross-node links by their two ends (ordered), with the states both sides report.
  std::map<std::pair<Endpoint, Endpoint>, std::pair<bool, bool>> remote;  // (some up, some down/mismatch)
  for (const NodeView* n : nodes) {
    if (!n->topology) continue;
    auto graph = placement::GraphFromTopology(*n->topology);
    if (!graph.ok()) continue;
    const placement::Mask free = placement::FreeMask(*graph, *n->topology);
    for (int i = 0; i < graph->size(); ++i) {
      if ((free >> i & 1U) == 0) continue;
      index.emplace(std::make_pair(n->name, graph->serials[i]), index.size());
    }
    for (int i = 0; i < graph->size(); ++i) {
      for (int j = i + 1; j < graph->size(); ++j) {
        if ((free >> i & 1U) == 0 || (free >> j & 1U) == 0 || (graph->adj[i] >> j & 1U) == 0) continue;
        edges.emplace_back(index.at({n->name, graph->serials[i]}), index.at({n->name, graph->serials[j]}));
      }
    }
    for (const auto& l : n->topology->links) {
      if (l.a.node.empty() && l.b.node.empty()) continue;  // local: already in the graph
      Endpoint a{l.a.node.empty() ? n->name : l.a.node, l.a.serial, l.a.port};
      Endpoint b{l.b.node.empty() ? n->name : l.b.node, l.b.serial, l.b.port};
      if (b < a) std::swap(a, b);
      auto& seen = remote[{a, b}];
      seen.first = seen.first || l.state == hw::LinkState::kUp;
      seen.second = seen.second || l.state == hw::LinkState::kDown || l.state == hw::LinkState::kMismatch;
    }
  }
  for (const auto& [ends, state] : remote) {
    if (!state.first || state.second) continue;
    auto a = index.find({std::get<0>(ends.first), std::get<1>(ends.first)});
    auto b = index.find({std::get<0>(ends.second), std::get<1>(ends.second)});
    if (a != index.end() && b != index.end()) edges.emplace_back(a->second, b->second);
  }
  UnionFind uf(index.size());
  for (const auto& [a, b] : edges) uf.Join(a, b);
  size_t best = 0;
  for (size_t v = 0; v < index.size(); ++v) best = std::max(best, uf.SizeOf(v));
  return static_cast<int>(best);
}

// Adds one node's counts to `t` (largest_free_linked is computed per group afterwards).
void AddNode(Totals& t, const NodeView& n) {
  ++t.nodes;
  if (!n.topology) {
    ++t.without_annotation;
    return;
  }
  t.cards += n.Cards();
  t.free += n.Free();
  t.unhealthy += n.Unhealthy();
  for (const auto& c : n.topology->cards) t.allocated += c.allocated ? 1 : 0;
  auto graph = placement::GraphFromTopology(*n.topology);
  if (graph.ok()) {
    t.stranded +=
        placement::NodeFragmentation(*graph, placement::FreeMask(*graph, *n.topology)).stranded_cards;
  }
}

void MergeName(std::string& into, const std::string& value, bool first) {
  if (first) {
    into = value;
  } else if (into != value) {
    into = "mixed";
  }
}

std::vector<Totals> Group(const std::vector<NodeView>& nodes, const std::string NodeView::*key) {
  std::map<std::string, std::vector<const NodeView*>> groups;
  for (const auto& n : nodes) groups[n.*key].push_back(&n);
  std::vector<Totals> out;
  for (const auto& [name, members] : groups) {
    Totals t;
    t.name = name;
    bool first = true;
    for (const NodeView* n : members) {
      AddNode(t, *n);
      MergeName(t.link_domain, n->link_domain, first);
      MergeName(t.rack, n->rack, first);
      MergeName(t.idc, n->idc, first);
      first = false;
    }
    t.largest_free_linked = LargestFreeLinked(members);
    out.push_back(std::move(t));
  }
  return out;
}

Json TotalsJson(const Totals& t, const char* kind) {
  Json j = {{"name", t.name},
            {"nodes", t.nodes},
            {"cards", t.cards},
            {"free", t.free},
            {"allocated", t.allocated},
            {"unhealthy", t.unhealthy},
            {"largestFreeLinked", t.largest_free_linked},
            {"stranded", t.stranded},
            {"nodesWithoutAnnotation", t.without_annotation}};
  const std::string k = kind;
  if (k == "domain" || k == "node") {
    j["rack"] = t.rack;
    j["idc"] = t.idc;
  }
  if (k == "rack") j["idc"] = t.idc;
  if (k == "node") {
    j["linkDomain"] = t.link_domain;
    j["linkTopology"] = t.topology;
  }
  return j;
}

std::vector<std::string> TotalsRow(const Totals& t) {
  return {std::to_string(t.nodes),     std::to_string(t.cards),     std::to_string(t.free),
          std::to_string(t.allocated), std::to_string(t.unhealthy), std::to_string(t.largest_free_linked),
          std::to_string(t.stranded)};
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<std::string> kTotalsHeader = {
    "NODES", "CARDS", "FREE", "ALLOCATED", "UNHEALTHY", "LARGEST-FREE-LINKED", "STRANDED"};

}  // namespace

// ---- nodes ---------------------------------------------------------------------------------------

int NodeView::Cards() const { return topology ? static_cast<int>(topology->cards.size()) : 0; }

int NodeView::Free() const {
  if (!topology) return 0;
  return static_cast<int>(std::count_if(topology->cards.begin(), topology->cards.end(),
                                        [](const auto& c) { return c.healthy && !c.allocated; }));
}

int NodeView::Unhealthy() const {
  if (!topology) return 0;
  return static_cast<int>(std::count_if(topology->cards.begin(), topology->cards.end(),
                                        [](const auto& c) { return !c.healthy; }));
}

Result<NodeView> NodeFromObject(const Json& node, const std::string& resource) {
  if (!node.is_object()) return InvalidArgument("node: expected an object");
  const Json* meta = node.contains("metadata") ? &node["metadata"] : nullptr;
  if (meta == nullptr || !meta->is_object() || !meta->contains("name") || !(*meta)["name"].is_string()) {
    return InvalidArgument("node: metadata.name missing");
  }
  NodeView v;
  v.name = (*meta)["name"].get<std::string>();
  if (meta->contains("labels") && (*meta)["labels"].is_object()) {
    for (const auto& [k, val] : (*meta)["labels"].items()) {
      if (val.is_string()) v.labels[k] = val.get<std::string>();
    }
  }
  v.link_domain = Label(v.labels, names::kLabelLinkDomain);
  v.rack = Label(v.labels, names::kLabelRack);
  v.idc = Label(v.labels, names::kLabelIdc);
  if (meta->contains("annotations") && (*meta)["annotations"].is_object()) {
    const Json& ann = (*meta)["annotations"];
    if (ann.contains(names::kAnnotationTopology) && ann[names::kAnnotationTopology].is_string()) {
      v.annotation = ann[names::kAnnotationTopology].get<std::string>();
    }
  }
  if (!v.annotation.empty()) {
    auto topo = placement::DecodeTopology(v.annotation);
    if (topo.ok()) {
      if (auto graph = placement::GraphFromTopology(*topo); graph.ok()) {
        v.topology = std::move(topo).value();
      } else {
        v.topology_error = graph.status().message();
      }
    } else {
      v.topology_error = topo.status().message();
    }
  }
  if (node.contains("status") && node["status"].is_object() && node["status"].contains("allocatable") &&
      node["status"]["allocatable"].is_object() && node["status"]["allocatable"].contains(resource)) {
    v.allocatable = WholeQuantity(node["status"]["allocatable"][resource]);
  }
  if (node.contains("spec") && node["spec"].is_object() && node["spec"].contains("unschedulable")) {
    v.unschedulable = node["spec"]["unschedulable"].is_boolean() && node["spec"]["unschedulable"].get<bool>();
  }
  return v;
}

Result<std::vector<NodeView>> NodesFromList(const Json& node_list, const std::string& resource) {
  if (!node_list.is_object() || !node_list.contains("items") || !node_list["items"].is_array()) {
    return InvalidArgument("node list: items missing");
  }
  std::vector<NodeView> out;
  for (size_t i = 0; i < node_list["items"].size(); ++i) {
    auto v = NodeFromObject(node_list["items"][i], resource);
    if (!v.ok()) return v.status().WithContext("items[" + std::to_string(i) + "]");
    const bool fpga = !v->annotation.empty() || Label(v->labels, names::kLabelPresent) == "true" ||
                      v->allocatable.value_or(0) > 0;
    if (fpga) out.push_back(std::move(v).value());
  }
  std::sort(out.begin(), out.end(), [](const NodeView& a, const NodeView& b) { return a.name < b.name; });
  return out;
}

// ---- topo ------------------------------------------------------------------------------------------

TopoReport BuildTopo(const std::vector<NodeView>& nodes) {
  TopoReport r;
  r.domains = Group(nodes, &NodeView::link_domain);
  r.racks = Group(nodes, &NodeView::rack);
  r.idcs = Group(nodes, &NodeView::idc);
  r.nodes = Group(nodes, &NodeView::name);
  for (auto& t : r.nodes) {
    auto it = std::find_if(nodes.begin(), nodes.end(), [&](const NodeView& n) { return n.name == t.name; });
    if (it != nodes.end()) t.topology = Label(it->labels, names::kLabelLinkTopology);
  }
  std::vector<const NodeView*> all;
  for (const auto& n : nodes) {
    AddNode(r.cluster, n);
    all.push_back(&n);
  }
  r.cluster.name = "cluster";
  r.cluster.largest_free_linked = LargestFreeLinked(all);
  return r;
}

std::string FormatTopoTable(const TopoReport& report) {
  if (report.nodes.empty())
    return "No node carries FPGA labels, a topology annotation or allocatable cards.\n";
  std::ostringstream out;
  std::vector<std::vector<std::string>> rows = {Concat({"LINK-DOMAIN", "RACK", "IDC"}, kTotalsHeader)};
  for (const auto& t : report.domains)
    rows.push_back(Concat({t.name.empty() ? "(none)" : t.name, OrDash(t.rack), OrDash(t.idc)}, TotalsRow(t)));
  out << FormatRows(rows) << "\n";
  rows = {Concat({"RACK", "IDC"}, kTotalsHeader)};
  for (const auto& t : report.racks)
    rows.push_back(Concat({t.name.empty() ? "(none)" : t.name, OrDash(t.idc)}, TotalsRow(t)));
  out << FormatRows(rows) << "\n";
  rows = {Concat({"IDC"}, kTotalsHeader)};
  for (const auto& t : report.idcs)
    rows.push_back(Concat({t.name.empty() ? "(none)" : t.name}, TotalsRow(t)));
  out << FormatRows(rows) << "\n";
  rows = {{"NODE", "LINK-DOMAIN", "TOPOLOGY", "CARDS", "FREE", "ALLOCATED", "UNHEALTHY",
           "LARGEST-FREE-LINKED", "STRANDED"}};
  std::vector<std::string> notes;
  for (const auto& t : report.nodes) {
    if (t.without_annotation > 0) {
      rows.push_back({t.name, OrDash(t.link_domain), OrDash(t.topology), "?", "?", "?", "?", "?", "?"});
      continue;
    }
    rows.push_back({t.name, OrDash(t.link_domain), OrDash(t.topology), std::to_string(t.cards),
                    std::to_string(t.free), std::to_string(t.allocated), std::to_string(t.unhealthy),
                    std::to_string(t.largest_free_linked), std::to_string(t.stranded)});
  }
  out << FormatRows(rows);
  const Totals& c = report.cluster;
  out << "\n"
      << c.cards << " cards on " << c.nodes << " nodes: " << c.free << " free, " << c.allocated
      << " allocated, " << c.unhealthy << " unhealthy; largest free linked set " << c.largest_free_linked
      << "; " << c.stranded << " free cards stranded\n";
  if (c.without_annotation > 0) {
    out << c.without_annotation
        << " node(s) shown with ? carry no valid hyperaccel.ai/topology annotation (is the topology agent "
           "running "
           "there?); their cards are not counted\n";
  }
  return out.str();
}

Json TopoJson(const TopoReport& report) {
  Json j;
  j["schema"] = "hyperaccel.ai/kubectl-topo/v1";
  auto list = [](const std::vector<Totals>& ts, const char* kind) {
    Json a = Json::array();
    for (const auto& t : ts) a.push_back(TotalsJson(t, kind));
    return a;
  };
  j["linkDomains"] = list(report.domains, "domain");
  j["racks"] = list(report.racks, "rack");
  j["idcs"] = list(report.idcs, "idc");
  j["nodes"] = list(report.nodes, "node");
  j["cluster"] = TotalsJson(report.cluster, "cluster");
  return j;
}

// ---- plan ------------------------------------------------------------------------------------------

Result<PlanResult> Plan(const std::vector<NodeView>& nodes, const PlanRequest& request) {
  if (request.tasks < 1 || request.tasks > 100000) return InvalidArgument("--tasks must be 1..100000");
  if (request.cards < 1 || request.cards > placement::kMaxCards) {
    return InvalidArgument("--cards must be 1.." + std::to_string(placement::kMaxCards));
  }
  PlanResult plan;
  plan.request = request;

  // The session Volcano would open: every node with a topology, and the gang as one pending job.
  constexpr const char* kJob = "kubectl-hyperaccel/plan";
  bridge::Snapshot snapshot;
  std::vector<std::string> considered;
  for (const auto& n : nodes) {
    if (n.unschedulable) {
      plan.nodes.push_back(
          {n.name, bridge::kUnschedulableForever, "not considered: cordoned (spec.unschedulable)"});
      continue;
    }
    if (!n.topology) {
      plan.nodes.push_back(
          {n.name, bridge::kUnschedulableForever,
           n.topology_error.empty()
               ? "not considered: no hyperaccel.ai/topology annotation, free cards unknown"
               : "not considered: invalid hyperaccel.ai/topology annotation: " + n.topology_error});
      continue;
    }
    bridge::Node wn;
    wn.name = n.name;
    wn.link_domain = n.link_domain;
    wn.rack = n.rack;
    wn.idc = n.idc;
    wn.topology = n.annotation;
    wn.allocatable_cards = n.allocatable;
    snapshot.nodes.push_back(std::move(wn));
    considered.push_back(n.name);
  }
  bridge::Job job;
  job.uid = kJob;
  job.min_available = request.tasks;
  job.require_linked = request.require_linked;
  job.spot = request.spot;
  std::vector<bridge::Task> tasks(static_cast<size_t>(request.tasks));
  for (int i = 0; i < request.tasks; ++i) {
    bridge::Task& t = tasks[static_cast<size_t>(i)];
    t.uid = "plan-task-" + std::to_string(i + 1);
    t.job = kJob;
    t.name = t.uid;
    t.status = 1;  // Pending
    t.cards = request.cards;
    t.require_linked = request.require_linked;
    t.spot = request.spot;
    job.tasks.push_back(t);
  }
  snapshot.jobs.push_back(std::move(job));
  bridge::SessionState state;
  state.OpenSession(std::move(snapshot));

  std::set<std::string> domains, racks;
  for (int i = 0; i < request.tasks; ++i) {
    bridge::Task& task = tasks[static_cast<size_t>(i)];
    const bridge::TaskNeed need = state.NeedOf(task);
    std::vector<bridge::NodeCards> fitting;
    std::vector<NodeVerdict> verdicts;
    for (const auto& name : considered) {
      bridge::NodeCards cards;
      if (!state.CardsOfKnownNode(name, &cards)) continue;
      bridge::PredicateDecision d = bridge::DecidePredicate(need, cards, request.resource);
      verdicts.push_back({name, d.code, d.reason});
      if (d.code == bridge::kPass) fitting.push_back(std::move(cards));
    }
    if (fitting.empty()) {
      // All or nothing: Volcano places no task of a gang that cannot be placed whole.
      std::map<std::string, int> by_reason;
      for (const auto& v : verdicts) {
        std::string r = v.reason;  // the same reason on many nodes reads once, node name abstracted
        for (size_t at = r.find(v.node); at != std::string::npos; at = r.find(v.node, at + 6)) {
          r.replace(at, v.node.size(), "<node>");
        }
        ++by_reason[(v.code == bridge::kUnschedulable ? "[evictions could help] " : "") + r];
      }
      std::ostringstream why;
      why << "cannot run now: task " << (i + 1) << " of " << request.tasks << " fits no node";
      if (considered.empty()) why << " (no schedulable node publishes a topology annotation)";
      for (const auto& [r, count] : by_reason) why << "; " << count << " node(s): " << r;
      plan.summary = why.str();
      plan.nodes.insert(plan.nodes.begin(), verdicts.begin(), verdicts.end());
      std::sort(plan.nodes.begin(), plan.nodes.end(),
                [](const NodeVerdict& a, const NodeVerdict& b) { return a.node < b.node; });
      return plan;
    }
    const bridge::GangView gang = state.GangOf(task, {});
    const std::vector<bridge::NodeScore> scores = bridge::DecidePrioritize(need, fitting, gang, 1.0);
    // Volcano takes the best score (ties at random); the plan breaks ties by node name.
    std::string best = fitting.front().name;
    double best_score = -1;
    for (const auto& s : scores) {
      if (s.score > best_score || (s.score == best_score && s.node < best)) {
        best = s.node;
        best_score = s.score;
      }
    }
    const auto chosen = std::find_if(fitting.begin(), fitting.end(),
                                     [&](const bridge::NodeCards& c) { return c.name == best; });
    PlannedTask p;
    p.task = i + 1;
    p.node = chosen->name;
    p.link_domain = chosen->link_domain;
    p.rack = chosen->rack;
    p.idc = chosen->idc;
    p.score = std::max(0.0, best_score);
    const placement::Mask predicted = bridge::PredictCards(need, *chosen);
    const placement::CardGraph& graph = chosen->topology->graph;
    for (int idx : placement::LinkOrder(graph, predicted))
      p.cards.push_back(graph.ids[static_cast<size_t>(idx)]);
    const placement::NodeFit fit =
        placement::ScoreNode(graph, chosen->free, {need.cards, need.require_linked, need.spot});
    p.linked = fit.fits_linked;
    p.why = fit.reason;
    domains.insert(p.link_domain);
    racks.insert(p.rack);
    plan.placed.push_back(std::move(p));
    task.node_name = best;
    state.Allocate(task, need);
  }
  plan.feasible = true;
  plan.domains_used = static_cast<int>(domains.size());
  plan.racks_used = static_cast<int>(racks.size());
  const bool all_linked =
      std::all_of(plan.placed.begin(), plan.placed.end(), [](const PlannedTask& p) { return p.linked; });
  std::ostringstream s;
  s << request.tasks << " task(s) x " << request.cards << " card(s) fit now: "
    << (request.cards == 1 ? "single cards"
        : all_linked       ? "every task on linked cards"
                           : "some tasks on unlinked cards")
    << ", " << plan.domains_used << " link domain(s)"
    << (domains.count("") != 0U ? " (incl. nodes without one)" : "") << ", " << plan.racks_used << " rack(s)";
  plan.summary = s.str();
  return plan;
}

std::string FormatPlanTable(const PlanResult& plan) {
  std::ostringstream out;
  const PlanRequest& r = plan.request;
  out << "Gang: " << r.tasks << " task(s) x " << r.cards << " card(s) of " << r.resource
      << (r.require_linked ? ", require-linked" : "") << (r.spot ? ", spot" : "") << "\n"
      << plan.summary << "\n";
  if (!plan.placed.empty()) {
    std::vector<std::vector<std::string>> rows = {
        {"TASK", "NODE", "LINK-DOMAIN", "RACK", "SCORE", "LINKED", "CARDS (link order)"}};
    for (const auto& p : plan.placed) {
      char score[16];
      std::snprintf(score, sizeof score, "%.0f", p.score);
      std::string cards;
      for (const auto& c : p.cards) cards += (cards.empty() ? "" : ",") + c;
      rows.push_back({std::to_string(p.task), p.node, OrDash(p.link_domain), OrDash(p.rack), score,
                      p.linked ? "yes" : "no", cards});
    }
    if (!plan.feasible)
      out << "\nTasks that would fit before the gang fails (Volcano binds none of them: all or nothing):\n";
    out << (plan.feasible ? "\n" : "") << FormatRows(rows);
    out << "\nWhy (placement's explanation of each chosen node):\n";
    for (const auto& p : plan.placed) out << "  task " << p.task << " on " << p.node << ": " << p.why << "\n";
  }
  if (!plan.nodes.empty()) {
    std::vector<std::vector<std::string>> rows = {{"NODE", "VERDICT", "REASON"}};
    for (const auto& v : plan.nodes) {
      rows.push_back({v.node,
                      v.code == bridge::kPass            ? "fits"
                      : v.code == bridge::kUnschedulable ? "full (evictions could help)"
                                                         : "never fits",
                      OrDash(v.reason)});
    }
    out << "\n" << FormatRows(rows);
  }
  return out.str();
}

Json PlanJson(const PlanResult& plan) {
  Json j;
  j["schema"] = "hyperaccel.ai/kubectl-plan/v1";
  j["request"] = {{"tasks", plan.request.tasks},
                  {"cards", plan.request.cards},
                  {"requireLinked", plan.request.require_linked},
                  {"spot", plan.request.spot},
                  {"resource", plan.request.resource}};
  j["feasible"] = plan.feasible;
  j["summary"] = plan.summary;
  j["linkDomainsUsed"] = plan.domains_used;
  j["racksUsed"] = plan.racks_used;
  Json placed = Json::array();
  for (const auto& p : plan.placed) {
    placed.push_back({{"task", p.task},
                      {"node", p.node},
                      {"linkDomain", p.link_domain},
                      {"rack", p.rack},
                      {"idc", p.idc},
                      {"score", p.score},
                      {"linked", p.linked},
                      {"cards", p.cards},
                      {"why", p.why}});
  }
  j["placements"] = std::move(placed);
  Json nodes = Json::array();
  for (const auto& v : plan.nodes)
    nodes.push_back({{"node", v.node}, {"code", v.code}, {"reason", v.reason}});
  j["nodes"] = std::move(nodes);
  return j;
}

// ---- cards -----------------------------------------------------------------------------------------

std::string FormatCardsTable(const NodeView& node) {
  std::ostringstream out;
  out << "Node " << node.name << "   link domain: " << OrDash(node.link_domain)
      << "   rack: " << OrDash(node.rack) << "   idc: " << OrDash(node.idc) << "\n"
      << "Product: " << OrDash(Label(node.labels, names::kLabelProduct))
      << "   shell: " << OrDash(Label(node.labels, names::kLabelShell))
      << "   XRT: " << OrDash(Label(node.labels, names::kLabelXrtVersion))
      << "   link topology: " << OrDash(Label(node.labels, names::kLabelLinkTopology))
      << (node.unschedulable ? "   (cordoned)" : "") << "\n\n";
  if (!node.topology) {
    out << (node.topology_error.empty()
                ? "No hyperaccel.ai/topology annotation (is the topology agent running on this node?)."
                : "Invalid hyperaccel.ai/topology annotation: " + node.topology_error)
        << "\n";
    if (node.allocatable) out << "Allocatable cards: " << *node.allocatable << "\n";
    return out.str();
  }
  const auto& topo = *node.topology;
  if (topo.cards.empty()) {
    out << "No Alveo cards published.\n";
    return out.str();
  }
  std::vector<std::vector<std::string>> rows = {
      {"CARD", "ID", "SERIAL", "HEALTH", "STATE", "NUMA", "SWITCH"}};
  std::map<std::string, size_t> index_of_serial;
  for (size_t i = 0; i < topo.cards.size(); ++i) {
    const auto& c = topo.cards[i];
    index_of_serial[c.serial] = i;
    rows.push_back({"C" + std::to_string(i), c.id, OrDash(c.serial), c.healthy ? "healthy" : "unhealthy",
                    c.allocated ? "allocated" : "free", c.numa < 0 ? "-" : std::to_string(c.numa),
                    c.pcie_switch < 0 ? "-" : std::to_string(c.pcie_switch)});
  }
  out << FormatRows(rows);

  const size_t n = topo.cards.size();
  std::vector<placement::LinkCell> local_links;
  std::vector<const placement::TopologyLink*> remote;
  size_t up = 0;
  for (const auto& l : topo.links) {
    if (l.state == hw::LinkState::kUp) ++up;
    auto ia = l.a.node.empty() ? index_of_serial.find(l.a.serial) : index_of_serial.end();
    auto ib = l.b.node.empty() ? index_of_serial.find(l.b.serial) : index_of_serial.end();
    if (ia == index_of_serial.end() || ib == index_of_serial.end()) {
      remote.push_back(&l);
      continue;
    }
    local_links.push_back({ia->second, ib->second, l.state});
  }
  out << "\n" << placement::FormatLinkMatrix(n, local_links);
  if (!remote.empty()) {
    out << "\nLinks to other nodes:\n";
    for (const auto* l : remote) {
      const bool a_local = l->a.node.empty();
      const hw::PortRef& local = a_local ? l->a : l->b;
      const hw::PortRef& far = a_local ? l->b : l->a;
      auto it = index_of_serial.find(local.serial);
      const std::string name = it == index_of_serial.end() ? local.serial : "C" + std::to_string(it->second);
      out << "  " << name << " port " << local.port << " -> " << far.node << "/" << far.serial << " port "
          << far.port << "  " << hw::LinkStateName(l->state) << "\n";
    }
  }
  const int healthy = node.Cards() - node.Unhealthy();
  int allocated = 0;
  for (const auto& c : topo.cards) allocated += c.allocated ? 1 : 0;
  int largest = 0;
  if (auto graph = placement::GraphFromTopology(topo); graph.ok()) {
    largest = placement::NodeFragmentation(*graph, placement::FreeMask(*graph, topo)).largest_free_linked;
  }
  out << "\n"
      << healthy << "/" << n << " cards healthy, " << allocated << " allocated, " << node.Free()
      << " free (largest free linked set " << largest << "), " << up << "/" << topo.links.size()
      << " links up\n";
  return out.str();
}

Json CardsJson(const NodeView& node) {
  Json j;
  j["schema"] = "hyperaccel.ai/kubectl-cards/v1";
  j["node"] = node.name;
  Json labels = Json::object();
  for (const auto& [k, v] : node.labels) {
    if (k.rfind(names::kPrefix, 0) == 0) labels[k] = v;
  }
  j["labels"] = std::move(labels);
  j["unschedulable"] = node.unschedulable;
  j["allocatable"] = node.allocatable ? Json(*node.allocatable) : Json(nullptr);
  if (node.topology) {
    j["topology"] = Json::parse(placement::EncodeTopology(*node.topology));
    j["error"] = "";
  } else {
    j["topology"] = nullptr;
    j["error"] = node.topology_error.empty() ? "no hyperaccel.ai/topology annotation" : node.topology_error;
  }
  j["summary"] = {{"cards", node.Cards()}, {"free", node.Free()}, {"unhealthy", node.Unhealthy()}};
  return j;
}

}  // namespace hyperaccel::kubectl
