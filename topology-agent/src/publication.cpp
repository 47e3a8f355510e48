#include "hyperaccel/topology_agent/publication.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "hyperaccel/placement/annotation.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/xrt/cabling.h"

namespace hyperaccel::agent {
namespace {

using Json = nlohmann::ordered_json;

std::string Hash8(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 8);
}

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool IsLocal(const hw::PortRef& p, const std::string& node) { return p.node.empty() || p.node == node; }

// Local card graph over up links: serial -> index, edges as (i, j) pairs (multi-edges kept).
struct LocalGraph {
  std::vector<std::string> serials;
  std::vector<std::pair<int, int>> edges;
  std::vector<int> component;  // index -> component id
  std::vector<int> sizes;      // component id -> size
};

LocalGraph BuildLocalGraph(const hw::Inventory& inv) {
  LocalGraph g;
  std::map<std::string, int> index;
  for (const auto& c : inv.cards) {
    if (index.emplace(c.serial, static_cast<int>(g.serials.size())).second) g.serials.push_back(c.serial);
  }
  for (const auto& l : inv.links) {
    if (l.state != hw::LinkState::kUp || !IsLocal(l.a, inv.node_name) || !IsLocal(l.b, inv.node_name))
      continue;
    auto a = index.find(l.a.serial), b = index.find(l.b.serial);
    if (a == index.end() || b == index.end() || a->second == b->second) continue;
    g.edges.emplace_back(a->second, b->second);
  }
  std::vector<int> parent(g.serials.size());
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int x) {
    while (parent[static_cast<size_t>(x)] != x)
      x = parent[static_cast<size_t>(x)] = parent[static_cast<size_t>(parent[static_cast<size_t>(x)])];
    return x;
  };
  for (auto [a, b] : g.edges) parent[static_cast<size_t>(find(a))] = find(b);
  std::map<int, int> ids;
  g.component.resize(g.serials.size());
  for (size_t i = 0; i < g.serials.size(); ++i) {
    int root = find(static_cast<int>(i));
    auto [it, fresh] = ids.emplace(root, static_cast<int>(ids.size()));
    if (fresh) g.sizes.push_back(0);
    g.component[i] = it->second;
    ++g.sizes[static_cast<size_t>(it->second)];
  }
  return g;
}

int LargestComponent(const LocalGraph& g) {
  int best = -1;
  for (size_t c = 0; c < g.sizes.size(); ++c) {
    if (best < 0 || g.sizes[c] > g.sizes[static_cast<size_t>(best)]) best = static_cast<int>(c);
  }
  return best;
}

std::string CommonOr(const std::vector<hw::Card>& cards, std::string hw::Card::*field) {
  std::string v;
  for (const auto& c : cards) {
    const std::string& x = c.*field;
    if (x.empty()) continue;
    if (v.empty()) {
      v = x;
    } else if (v != x) {
      return "mixed";
    }
  }
  return v;
}

const char* TierPrefix(int tier) {
  switch (tier) {
    case 1: return "hyperaccel-domain-";
    case 2: return "hyperaccel-rack-";
    default: return "hyperaccel-idc-";
  }
}

const char* TierLabel(int tier) {
  switch (tier) {
    case 1: return names::kLabelLinkDomain;
    case 2: return names::kLabelRack;
    default: return names::kLabelIdc;
  }
}

}  // namespace

std::string SanitizeLabelValue(std::string_view value) {
  if (value.empty()) return "";
  std::string out;
  for (char c : value) out += (IsAlnum(c) || c == '-' || c == '_' || c == '.') ? c : '-';
  size_t b = 0;
  while (b < out.size() && !IsAlnum(out[b])) ++b;
  out.erase(0, b);
  while (!out.empty() && !IsAlnum(out.back())) out.pop_back();
  if (out == value && out.size() <= 63) return out;
  if (out.size() > 54) out.resize(54);
  while (!out.empty() && !IsAlnum(out.back())) out.pop_back();
  return out.empty() ? Hash8(value) : out + "-" + Hash8(value);
}

Location LocationFromLabels(const std::map<std::string, std::string>& labels, const TierConfig& config) {
  Location loc;
  auto pick = [&](const std::string& key, const std::string& fallback) {
    if (!key.empty()) {
      auto it = labels.find(key);
      if (it != labels.end() && !it->second.empty()) return it->second;
    }
    return fallback;
  };
  loc.rack = pick(config.rack_label, config.rack);
  loc.idc = pick(config.idc_label, config.idc);
  return loc;
}

TierValues CanonicalTiers(const std::string& node_name, const std::string& domain, const Location& own,
                          const std::map<std::string, Location>& peers) {
  TierValues t;
  if (domain.empty()) return t;
  t.domain = domain;
  std::map<std::string, Location> all = peers;
  all[node_name] = own;
  for (const auto& [name, loc] : all) {
    if (loc.rack.empty()) continue;
    t.rack = SanitizeLabelValue(loc.idc.empty() ? loc.rack : loc.idc + "." + loc.rack);
    t.idc = SanitizeLabelValue(loc.idc);
    break;
  }
  return t;
}

std::string NodeLocalDomain(const std::string& node_name) {
  // Cabling-file domains hash "<node>/<serial>" with a non-empty serial: "<node>/" cannot be one.
  return hw::DomainId(hw::CardKey{node_name, ""});
}

std::string HyperNodeName(int tier, const std::string& value) {
  std::string v;
  for (char c : value) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    v += (IsAlnum(l) || l == '-') ? l : '-';
  }
  std::string name = TierPrefix(tier) + v;
  if (v != value || v.empty() || !IsAlnum(v.back())) {
    while (!name.empty() && name.back() == '-') name.pop_back();
    name += "-" + Hash8(value);
  }
  return name;
}

std::vector<HyperNodeSpec> BuildHyperNodes(const std::vector<NodeTiers>& input) {
  std::vector<NodeTiers> nodes = input;
  std::sort(nodes.begin(), nodes.end(),
            [](const NodeTiers& a, const NodeTiers& b) { return a.node < b.node; });
  std::map<std::string, std::set<std::string>> domain_nodes;
  std::map<std::string, std::string> domain_rack;  // first node (by name) with a rack decides
  std::map<std::string, std::string> rack_idc;
  for (const auto& n : nodes) {
    if (n.tiers.domain.empty()) continue;
    domain_nodes[n.tiers.domain].insert(n.node);
    if (!n.tiers.rack.empty() && !domain_rack.count(n.tiers.domain))
      domain_rack[n.tiers.domain] = n.tiers.rack;
    if (!n.tiers.rack.empty() && !n.tiers.idc.empty() && !rack_idc.count(n.tiers.rack)) {
      rack_idc[n.tiers.rack] = n.tiers.idc;
    }
  }
  std::map<std::string, std::set<std::string>> rack_domains, idc_racks;
  for (const auto& [domain, rack] : domain_rack) rack_domains[rack].insert(HyperNodeName(1, domain));
  for (const auto& [rack, doms] : rack_domains) {
    if (auto it = rack_idc.find(rack); it != rack_idc.end())
      idc_racks[it->second].insert(HyperNodeName(2, rack));
  }
  std::vector<HyperNodeSpec> out;
  auto add = [&](int tier, const std::string& value, const char* type, const std::set<std::string>& members) {
    out.push_back(
        {HyperNodeName(tier, value), tier, TierLabel(tier), type, {members.begin(), members.end()}});
  };
  for (const auto& [d, members] : domain_nodes) add(1, d, "Node", members);
  for (const auto& [r, members] : rack_domains) add(2, r, "HyperNode", members);
  for (const auto& [i, members] : idc_racks) add(3, i, "HyperNode", members);
  std::sort(out.begin(), out.end(),
            [](const HyperNodeSpec& a, const HyperNodeSpec& b) { return a.name < b.name; });
  return out;
}

std::string HyperNodeJson(const HyperNodeSpec& spec) {
  Json members = Json::array();
  for (const auto& m : spec.members) {
    members.push_back({{"type", spec.member_type}, {"selector", {{"exactMatch", {{"name", m}}}}}});
  }
  Json j = {
      {"apiVersion", "topology.volcano.sh/v1alpha1"},
      {"kind", "HyperNode"},
      {"metadata", {{"name", spec.name}, {"labels", {{names::kManagedByLabel, names::kManagedByValue}}}}},
      {"spec", {{"tier", spec.tier}, {"tierName", spec.tier_name}, {"members", members}}}};
  return j.dump();
}

std::string LinkTopologyName(const hw::Inventory& inventory) {
  LocalGraph g = BuildLocalGraph(inventory);
  int c = LargestComponent(g);
  if (c < 0 || g.sizes[static_cast<size_t>(c)] < 2) return "none";
  int v = g.sizes[static_cast<size_t>(c)];
  int e = 0;
  std::vector<int> degree(g.serials.size(), 0);
  for (auto [a, b] : g.edges) {
    if (g.component[static_cast<size_t>(a)] != c) continue;
    ++e;
    ++degree[static_cast<size_t>(a)];
    ++degree[static_cast<size_t>(b)];
  }
  int max_degree = 0;
  bool all_two = true;
  for (size_t i = 0; i < degree.size(); ++i) {
    if (g.component[i] != c) continue;
    max_degree = std::max(max_degree, degree[i]);
    all_two = all_two && degree[i] == 2;
  }
  if (all_two && e == v) return "ring";
  if (e == v - 1 && max_degree <= 2) return "chain";
  return "mesh";
}

int LargestLinkedSet(const hw::Inventory& inventory) {
  LocalGraph g = BuildLocalGraph(inventory);
  int c = LargestComponent(g);
  return c < 0 ? 0 : g.sizes[static_cast<size_t>(c)];
}

std::string NodeDomain(const hw::Inventory& inventory, const DomainLookup& lookup) {
  if (!lookup) return "";
  std::map<std::string, int> count;
  for (const auto& c : inventory.cards) {
    if (c.serial.empty()) continue;
    std::string d = lookup(inventory.node_name, c.serial);
    if (!d.empty()) ++count[d];
  }
  std::string best;
  int best_n = 0;
  for (const auto& [d, n] : count) {
    if (n > best_n) {
      best = d;
      best_n = n;
    }
  }
  return best;
}

Result<Publication> ComputePublication(const PublishInput& input) {
  if (!input.inventory) return InvalidArgument("publication: no inventory");
  const hw::Inventory& inv = *input.inventory;
  if (inv.node_name.empty()) return InvalidArgument("publication: inventory has no node name");
  Publication p;
  p.node = inv.node_name;
  auto& L = p.labels;
  L[names::kLabelPresent] = inv.cards.empty() ? "false" : "true";
  L[names::kLabelCount] = std::to_string(inv.cards.size());
  L[names::kLabelHealthy] = std::to_string(inv.HealthyCount());
  if (!inv.cards.empty()) {
    if (auto v = SanitizeLabelValue(CommonOr(inv.cards, &hw::Card::product)); !v.empty())
      L[names::kLabelProduct] = v;
    if (auto v = SanitizeLabelValue(CommonOr(inv.cards, &hw::Card::shell)); !v.empty())
      L[names::kLabelShell] = v;
  }
  if (auto v = SanitizeLabelValue(inv.facts.xrt_version); !v.empty()) L[names::kLabelXrtVersion] = v;
  L[names::kLabelLinkTopology] = LinkTopologyName(inv);
  L[names::kLabelLargestDomain] = std::to_string(LargestLinkedSet(inv));
  // Tier 1 is the cabling file's link domain, or the node's own link domain when no cable leaves
  // it (cards linked only inside the node, or not at all): rack and IDC hang below tier 1, so
  // every node needs one (Volcano's label discovery stops at the first missing tier label).
  const bool node_local = input.domain.empty();
  TierValues tiers =
      CanonicalTiers(inv.node_name, node_local ? NodeLocalDomain(inv.node_name) : input.domain,
                     input.location, node_local ? std::map<std::string, Location>{} : input.domain_peers);
  if (!tiers.domain.empty()) L[names::kLabelLinkDomain] = SanitizeLabelValue(tiers.domain);
  if (!tiers.rack.empty()) L[names::kLabelRack] = tiers.rack;
  if (!tiers.idc.empty()) L[names::kLabelIdc] = tiers.idc;
  auto topo = placement::TopologyFromInventory(inv, input.allocated, input.domain);
  if (!topo.ok()) return topo.status().WithContext("topology annotation");
  p.annotation = placement::EncodeTopology(*topo);
  p.hypernodes = BuildHyperNodes({{inv.node_name, tiers}});
  return p;
}

Result<Publication> ComputePublication(const hw::Inventory& inventory, const std::set<std::string>& allocated,
                                       const TierConfig& tiers,
                                       const std::map<std::string, std::string>& node_labels,
                                       const DomainLookup& lookup) {
  PublishInput in;
  in.inventory = &inventory;
  in.allocated = allocated;
  in.domain = NodeDomain(inventory, lookup);
  in.location = LocationFromLabels(node_labels, tiers);
  return ComputePublication(in);
}

std::string FormatDryRun(const Publication& p) {
  std::ostringstream os;
  os << "node " << p.node << "\n\nlabels:\n";
  for (const auto& [k, v] : p.labels) os << "  " << k << "=" << v << "\n";
  os << "\nannotation " << names::kAnnotationTopology << ":\n  " << p.annotation << "\n";
  os << "\nhypernodes (--hypernodes=direct writes these; with --hypernodes=labels Volcano's label discovery "
        "builds the same tree):\n";
  if (p.hypernodes.empty()) os << "  (none)\n";
  for (const auto& h : p.hypernodes) os << "  " << HyperNodeJson(h) << "\n";
  return os.str();
}

std::string NodePatch(const Publication& publication,
                      const std::map<std::string, std::string>& current_labels,
                      const std::optional<std::string>& current_annotation,
                      const std::set<std::string>& keep) {
  Json labels = Json::object();
  for (const auto& [k, v] : publication.labels) {
    auto it = current_labels.find(k);
    if (it == current_labels.end() || it->second != v) labels[k] = v;
  }
  for (const auto& [k, v] : current_labels) {
    if (k.rfind(names::kPrefix, 0) != 0 || publication.labels.count(k) || keep.count(k)) continue;
    labels[k] = nullptr;
  }
  Json md = Json::object();
  if (!labels.empty()) md["labels"] = labels;
  if (!current_annotation || *current_annotation != publication.annotation) {
    md["annotations"] = {{names::kAnnotationTopology, publication.annotation}};
  }
  if (md.empty()) return "";
  return Json{{"metadata", md}}.dump();
}

}  // namespace hyperaccel::agent
