// `hyperaccel-topology-agent show`: the node's cards and link matrix for a human (table, like
// `nvidia-smi topo -m`) or a program (JSON, schema "hyperaccel.ai/show/v1", documented in
// docs/discovery.md).
#pragma once

#include <string>

#include "hyperaccel/xrt/model.h"

namespace hyperaccel::agent {

inline constexpr const char* kShowSchema = "hyperaccel.ai/show/v1";

std::string FormatInventoryTable(const hw::Inventory& inventory);
std::string FormatInventoryJson(const hw::Inventory& inventory);

}  // namespace hyperaccel::agent
