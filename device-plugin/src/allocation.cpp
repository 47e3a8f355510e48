#include "hyperaccel/device_plugin/allocation.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "hyperaccel/common/files.h"
#include "hyperaccel/common/status.h"

namespace hyperaccel::device_plugin {
namespace {

std::string Join(const std::vector<std::string>& items, const char* sep = ",") {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string KnownList(const ResourceView& view) {
  std::vector<std::string> ids;
  for (const DeviceEntry& e : view.devices) {
    if (ids.size() == 8) {
      ids.emplace_back("...");
      break;
    }
    ids.push_back(e.card.id);
  }
  return ids.empty() ? "none" : Join(ids, ", ");
}

// Device nodes one card contributes (render node; management node on request).
std::vector<ContainerAllocation::DeviceNode> NodesOf(const hw::Card& card, const AllocateOptions& options) {
  std::vector<ContainerAllocation::DeviceNode> nodes;
  if (!card.render_node.empty()) nodes.push_back({card.render_node, card.render_node, "rw"});
  if (options.expose_mgmt && !card.mgmt_node.empty()) nodes.push_back({card.mgmt_node, card.mgmt_node, "rw"});
  return nodes;
}

}  // namespace

Result<ContainerAllocation> BuildAllocation(const ResourceView& view, std::span<const std::string> ids,
                                            const AllocateOptions& options) {
  if (ids.empty()) return InvalidArgument("Allocate: the request names no device IDs");
  std::vector<std::string> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());

  ContainerAllocation out;
  std::vector<std::string> serials;
  for (const std::string& id : sorted) {
    const DeviceEntry* e = view.Find(id);
    if (e == nullptr) {
      return InvalidArgument("unknown device ID '" + id + "' for " + view.resource_name +
                             " (known: " + KnownList(view) + ")");
    }
    if (!e->healthy) return FailedPrecondition("device " + id + " is unhealthy: " + e->reason);
    if (e->card.render_node.empty() && !e->card.emulated) {
      return FailedPrecondition("device " + id + " has no render node (is xocl bound to the user PF?)");
    }
    if (options.cdi && view.cdi_ids.count(id) == 0) {
      return Status(StatusCode::kUnavailable, "device " + id + ": its CDI spec entry is not written yet (" +
                                                  CdiSpecPath(options) + ")");
    }
    for (auto& node : NodesOf(e->card, options)) out.devices.push_back(std::move(node));
    serials.push_back(e->card.serial);
    if (options.cdi) out.cdi_devices.push_back(CdiDeviceName(options.cdi_kind, id));
  }

  std::vector<std::string> ring = sorted;
  if (view.graph_error.empty()) {
    auto mask = view.graph.MaskOf(sorted);
    if (mask.ok()) {
      ring.clear();
      for (int index : placement::LinkOrder(view.graph, *mask)) {
        ring.push_back(view.graph.ids[static_cast<size_t>(index)]);
      }
    }
  }
  out.envs[kEnvVisibleDevices] = Join(sorted);
  out.envs[kEnvDeviceSerials] = Join(serials);
  out.envs[kEnvRingOrder] = Join(ring);
  if (options.mount_xrt) {
    out.mounts.push_back({options.xrt_container_dir, options.xrt_host_dir, true});
    out.envs[kEnvXilinxXrt] = options.xrt_container_dir;
  }
  if (options.mount_icd) out.mounts.push_back({options.icd_file, options.icd_file, true});
  return out;
}

Result<std::vector<std::string>> PreferredAllocation(const ResourceView& view,
                                                     std::span<const std::string> available,
                                                     std::span<const std::string> must_include, int size,
                                                     std::string* fallback_reason) {
  if (size < 1)
    return InvalidArgument("GetPreferredAllocation: allocation_size " + std::to_string(size) + " < 1");
  // The kubelet lists every must-include ID among the available ones (they are already chosen
  // for this container); one that is not available cannot be handed out, so the request is wrong.
  const std::set<std::string> available_set(available.begin(), available.end());
  std::vector<std::string> pool;
  std::set<std::string> seen;
  for (const std::string& id : must_include) {
    if (available_set.count(id) == 0) {
      return InvalidArgument("GetPreferredAllocation: must-include device '" + id +
                             "' is not among the available devices");
    }
    if (seen.insert(id).second) pool.push_back(id);
  }
  if (static_cast<int>(pool.size()) > size) {
    return InvalidArgument("GetPreferredAllocation: " + std::to_string(pool.size()) +
                           " must-include devices for an allocation of " + std::to_string(size));
  }
  for (const std::string& id : available) {
    if (seen.insert(id).second) pool.push_back(id);
  }
  if (static_cast<int>(pool.size()) < size) {
    return ResourceExhausted("GetPreferredAllocation: " + std::to_string(size) + " devices asked, only " +
                             std::to_string(pool.size()) + " available");
  }
  std::string why;
  if (view.graph_error.empty()) {
    std::vector<std::string> avail(pool.begin(), pool.end());
    std::vector<std::string> must(must_include.begin(), must_include.end());
    std::sort(must.begin(), must.end());
    must.erase(std::unique(must.begin(), must.end()), must.end());
    auto chosen = placement::ChooseIds(view.graph, avail, must, size);
    if (chosen.ok() && static_cast<int>(chosen->size()) == size) return std::move(chosen).value();
    why = chosen.ok() ? "placement returned a wrong count" : chosen.status().message();
  } else {
    why = view.graph_error;
  }
  if (fallback_reason) *fallback_reason = why;
  pool.resize(static_cast<size_t>(size));
  return pool;
}

std::string CdiDeviceName(const std::string& kind, const std::string& id) { return kind + "=" + id; }

std::string CdiSpecPath(const AllocateOptions& options) {
  std::string file = options.cdi_kind;
  std::replace(file.begin(), file.end(), '/', '-');
  return (std::filesystem::path(options.cdi_dir) / (file + ".json")).string();
}

std::string RenderCdiSpec(const std::vector<hw::Card>& cards, const AllocateOptions& options) {
  using nlohmann::json;
  json devices = json::array();
  for (const hw::Card& card : cards) {
    json nodes = json::array();
    for (const auto& node : NodesOf(card, options)) {
      nodes.push_back(
          {{"path", node.container_path}, {"hostPath", node.host_path}, {"permissions", node.permissions}});
    }
    devices.push_back({{"name", card.id}, {"containerEdits", {{"deviceNodes", nodes}}}});
  }
  json edits = json::object();
  json mounts = json::array();
  if (options.mount_xrt) {
    edits["env"] = json::array({std::string(kEnvXilinxXrt) + "=" + options.xrt_container_dir});
    mounts.push_back({{"hostPath", options.xrt_host_dir},
                      {"containerPath", options.xrt_container_dir},
                      {"type", "bind"},
                      {"options", {"ro", "nosuid", "nodev", "rbind"}}});
  }
  if (options.mount_icd) {
    mounts.push_back({{"hostPath", options.icd_file},
                      {"containerPath", options.icd_file},
                      {"type", "bind"},
                      {"options", {"ro", "nosuid", "nodev", "bind"}}});
  }
  if (!mounts.empty()) edits["mounts"] = mounts;
  json spec = {{"cdiVersion", "0.5.0"}, {"kind", options.cdi_kind}, {"devices", devices}};
  if (!edits.empty()) spec["containerEdits"] = edits;
  return spec.dump(2) + "\n";
}

Status WriteFileAtomic(const std::string& path, const std::string& content) {
  return files::WriteAtomic(path, content, files::Sync::kFile);
}

}  // namespace hyperaccel::device_plugin
