#include "hyperaccel/sim/cluster.h"

#include <bit>
#include <cstdio>

namespace hyperaccel::sim {
namespace {

std::string Numbered(const char* prefix, int width, int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%0*d", prefix, width, n);
  return buf;
}

}  // namespace

Status Validate(const ClusterConfig& c) {
  if (c.nodes < 1 || c.nodes > 100000) return InvalidArgument("--nodes must be 1..100000");
  if (c.cards_per_node < 1 || c.cards_per_node > placement::kMaxCards)
    return InvalidArgument("--cards-per-node must be 1..64");
  if (c.intra != "ring" && c.intra != "line" && c.intra != "mesh")
    return InvalidArgument("--intra must be ring, line or mesh");
  if (c.numa_nodes < 1 || c.numa_nodes > c.cards_per_node)
    return InvalidArgument("--numa-nodes must be 1..cards-per-node");
  if (c.nodes_per_domain < 1) return InvalidArgument("--nodes-per-domain must be at least 1");
  if (c.nodes_per_rack < 1 || c.nodes_per_rack % c.nodes_per_domain != 0)
    return InvalidArgument(
        "--nodes-per-rack must be a positive multiple of --nodes-per-domain "
        "(a link domain never spans racks)");
  if (c.racks_per_idc < 1) return InvalidArgument("--racks-per-idc must be at least 1");
  return Status::Ok();
}

Result<Cluster> Cluster::Create(const ClusterConfig& config) {
  if (Status s = Validate(config); !s.ok()) return s;
  Cluster c;
  c.config_ = config;
  const int n = config.cards_per_node;
  auto topo = std::make_shared<bridge::Topology>();
  placement::CardGraph& g = topo->graph;
  g.adj.assign(static_cast<size_t>(n), 0);
  for (int i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0000:%02x:00.1", 0x10 + i);
    g.ids.emplace_back(id);
    g.serials.push_back(Numbered("SIM", 2, i));
    const int numa = i * config.numa_nodes / n;
    g.numa.push_back(numa);
    g.pcie_switch.push_back(numa);
    g.healthy.push_back(true);
  }
  auto link = [&](int a, int b) {
    if (a == b) return;
    g.adj[static_cast<size_t>(a)] |= Mask{1} << b;
    g.adj[static_cast<size_t>(b)] |= Mask{1} << a;
  };
  if (config.intra == "mesh") {
    for (int a = 0; a < n; ++a)
      for (int b = a + 1; b < n; ++b) link(a, b);
  } else {
    for (int a = 0; a + 1 < n; ++a) link(a, a + 1);
    if (config.intra == "ring" && n > 2) link(n - 1, 0);
  }
  topo->healthy = g.HealthyMask();
  topo->shape = bridge::ShapeOf(g);
  topo->free = topo->healthy;
  c.topology_ = std::move(topo);

  const int per_idc = config.nodes_per_rack * config.racks_per_idc;
  c.nodes_.reserve(static_cast<size_t>(config.nodes));
  for (int i = 0; i < config.nodes; ++i) {
    SimNode node;
    node.domain_id = i / config.nodes_per_domain;
    node.rack_id = i / config.nodes_per_rack;
    node.idc_id = i / per_idc;
    node.name = Numbered("node", 4, i + 1);
    node.domain = Numbered("ld", 4, node.domain_id + 1);
    node.rack = Numbered("rack", 3, node.rack_id + 1);
    node.idc = Numbered("idc", 2, node.idc_id + 1);
    c.nodes_.push_back(std::move(node));
  }
  c.domains_ = c.nodes_.back().domain_id + 1;
  c.racks_ = c.nodes_.back().rack_id + 1;
  c.idcs_ = c.nodes_.back().idc_id + 1;
  return c;
}

bool IsLinked(const placement::CardGraph& graph, Mask cards) {
  if (cards == 0) return false;
  Mask seen = cards & (~cards + 1);  // lowest card
  Mask frontier = seen;
  while (frontier != 0) {
    Mask next = 0;
    for (Mask f = frontier; f != 0; f &= f - 1) next |= graph.adj[static_cast<size_t>(std::countr_zero(f))];
    frontier = next & cards & ~seen;
    seen |= frontier;
  }
  return seen == cards;
}

}  // namespace hyperaccel::sim
