#include "hyperaccel/placement/annotation.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace hyperaccel::placement {
namespace {

nlohmann::ordered_json EncodeEnd(const hw::PortRef& end) {
  nlohmann::ordered_json j;
  if (!end.node.empty()) j["node"] = end.node;
  j["serial"] = end.serial;
  j["port"] = end.port;
  return j;
}

}  // namespace

Result<NodeTopology> TopologyFromInventory(const hw::Inventory& inventory,
                                           const std::set<std::string>& allocated,
                                           const std::string& domain) {
  auto graph = GraphFromInventory(inventory);
  if (!graph.ok()) return graph.status();
  NodeTopology t;
  t.domain = domain;
  for (int i = 0; i < graph->size(); ++i) {
    TopologyCard c;
    c.id = graph->ids[static_cast<size_t>(i)];
    c.serial = graph->serials[static_cast<size_t>(i)];
    c.numa = graph->numa[static_cast<size_t>(i)];
    c.pcie_switch = graph->pcie_switch[static_cast<size_t>(i)];
    c.healthy = graph->healthy[static_cast<size_t>(i)];
    c.allocated = allocated.count(c.id) > 0;
    t.cards.push_back(std::move(c));
  }
  for (const auto& l : inventory.links) {
    TopologyLink tl;
    tl.a = l.a;
    tl.b = l.b;
    if (tl.a.node == inventory.node_name) tl.a.node.clear();
    if (tl.b.node == inventory.node_name) tl.b.node.clear();
    tl.state = l.state;
    t.links.push_back(std::move(tl));
  }
  return t;
}

std::string EncodeTopology(const NodeTopology& t) {
  nlohmann::ordered_json j;
  j["v"] = t.version;
  j["domain"] = t.domain;
  auto& cards = j["cards"] = nlohmann::ordered_json::array();
  for (const auto& c : t.cards) {
    cards.push_back({{"id", c.id},
                     {"serial", c.serial},
                     {"numa", c.numa},
                     {"switch", c.pcie_switch},
                     {"healthy", c.healthy},
                     {"allocated", c.allocated}});
  }
  auto& links = j["links"] = nlohmann::ordered_json::array();
  for (const auto& l : t.links) {
    links.push_back({{"a", EncodeEnd(l.a)}, {"b", EncodeEnd(l.b)}, {"state", hw::LinkStateName(l.state)}});
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<CardGraph> GraphFromTopology(const NodeTopology& t) {
  CardGraph g;
  const size_t n = t.cards.size();
  if (n > static_cast<size_t>(kMaxCards)) return InvalidArgument("too many cards in topology");
  g.ids.reserve(n);
  for (const auto& c : t.cards) {
    g.ids.push_back(c.id);
    g.serials.push_back(c.serial);
    g.numa.push_back(c.numa);
    g.pcie_switch.push_back(c.pcie_switch);
    g.healthy.push_back(c.healthy);
  }
  g.adj.assign(n, 0);
  auto index_of_serial = [&](const hw::PortRef& end) -> int {
    if (!end.node.empty() || end.serial.empty()) return -1;
    for (size_t i = 0; i < n; ++i) {
      if (t.cards[i].serial == end.serial) return static_cast<int>(i);
    }
    return -1;
  };
  for (const auto& l : t.links) {
    if (l.state != hw::LinkState::kUp) continue;
    int a = index_of_serial(l.a);
    int b = index_of_serial(l.b);
    if (a < 0 || b < 0 || a == b) continue;
    g.adj[static_cast<size_t>(a)] |= Mask{1} << b;
    g.adj[static_cast<size_t>(b)] |= Mask{1} << a;
  }
  return g;
}

Mask FreeMask(const CardGraph& graph, const NodeTopology& t) {
  Mask m = 0;
  for (size_t i = 0; i < t.cards.size() && i < graph.ids.size(); ++i) {
    if (t.cards[i].healthy && !t.cards[i].allocated) m |= Mask{1} << i;
  }
  return m;
}

}  // namespace hyperaccel::placement
