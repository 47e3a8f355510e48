// The node annotation `hyperaccel.ai/topology`: the contract between the topology agent (which
// writes it on its Node) and the Volcano bridge (which reads it from the Node objects Volcano
// sends). This header is the one place its schema is defined.
//
// Schema, version 1 (compact JSON, keys always in this order, no whitespace):
//
//   {"v":1,
//    "domain":"ld-1a2b3c4d",            link domain of this node's cards ("" when none)
//    "cards":[{"id":"0000:3b:00.1",     kubelet device ID (user-PF PCI address)
//              "serial":"XFL1ABCDEF01",  board serial
//              "numa":0,                 NUMA node, -1 when unknown
//              "switch":0,               PCIe switch group on this node, -1 when none
//              "healthy":true,
//              "allocated":false}, ...], sorted by id
//    "links":[{"a":{"serial":"XFL1ABCDEF01","port":1},
//              "b":{"node":"lpu-node-02","serial":"XFL1GHIJKL01","port":0},   "node" only when remote
//              "state":"up"}, ...]}      up | down | mismatch | unknown
//
// Readers must ignore unknown keys and reject a "v" they do not know. A card's links are the
// links whose endpoint serial is the card's serial and whose endpoint has no "node" key.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/placement/placement.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::placement {

inline constexpr int kTopologyVersion = 1;
inline constexpr const char* kTopologyAnnotation = "hyperaccel.ai/topology";

struct TopologyCard {
  std::string id;
  std::string serial;
  int numa = -1;
  int pcie_switch = -1;
  bool healthy = true;
  bool allocated = false;
};

struct TopologyLink {
  hw::PortRef a;  // a.node / b.node empty = this node
  hw::PortRef b;
  hw::LinkState state = hw::LinkState::kUnknown;
};

struct NodeTopology {
  int version = kTopologyVersion;
  std::string domain;
  std::vector<TopologyCard> cards;  // sorted by id
  std::vector<TopologyLink> links;
};

// Builds the annotation content from an inventory, the IDs the kubelet reports as allocated, and
// the node's link-domain ID.
Result<NodeTopology> TopologyFromInventory(const hw::Inventory& inventory,
                                           const std::set<std::string>& allocated, const std::string& domain);

std::string EncodeTopology(const NodeTopology& topology);

// Parses an annotation value. Errors say what is wrong ("topology annotation: cards[2].id missing").
Result<NodeTopology> DecodeTopology(std::string_view json);

// The placement graph of the annotation (same graph GraphFromInventory gives on the node) and the
// cards that are healthy and free.
Result<CardGraph> GraphFromTopology(const NodeTopology& topology);
Mask FreeMask(const CardGraph& graph, const NodeTopology& topology);

}  // namespace hyperaccel::placement
