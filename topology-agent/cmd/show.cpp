#include "show.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::agent {
namespace {

using nlohmann::ordered_json;

ordered_json Optional(const std::optional<double>& v) { return v ? ordered_json(*v) : ordered_json(nullptr); }

std::string Hex16(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

ordered_json EndJson(const hw::PortRef& end, const std::string& node) {
  return {{"node", end.node.empty() ? node : end.node}, {"serial", end.serial}, {"port", end.port}};
}

// Pads `s` to `width` columns (ASCII content assumed).
std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size() + 1, ' ');
}

bool IsLocal(const hw::PortRef& end, const std::string& node) { return end.node.empty() || end.node == node; }

}  // namespace

std::string FormatInventoryJson(const hw::Inventory& inv) {
  ordered_json j;
  j["schema"] = kShowSchema;
  j["node"] = inv.node_name;
  j["facts"] = {
      {"xrt",
       {{"available", inv.facts.xrt_available},
        {"version", inv.facts.xrt_version},
        {"detail", inv.facts.xrt_detail}}},
      {"opencl", {{"xilinxPlatform", inv.facts.opencl_xilinx}, {"detail", inv.facts.opencl_detail}}},
      {"emulation", inv.facts.emulation}};
  auto& cards = j["cards"] = ordered_json::array();
  for (const auto& c : inv.cards) {
    ordered_json cj;
    cj["id"] = c.id;
    cj["serial"] = c.serial;
    cj["product"] = c.product;
    cj["shell"] = c.shell;
    cj["vendorId"] = Hex16(c.vendor_id);
    cj["deviceId"] = Hex16(c.device_id);
    cj["numaNode"] = c.numa_node ? ordered_json(*c.numa_node) : ordered_json(nullptr);
    cj["localCpus"] = c.local_cpulist;
    cj["pciePath"] = c.pcie_path;
    cj["renderNode"] = c.render_node;
    if (c.mgmt_id.empty()) {
      cj["mgmt"] = nullptr;
    } else {
      cj["mgmt"] = {{"id", c.mgmt_id},
                    {"instance", c.mgmt_instance ? ordered_json(*c.mgmt_instance) : ordered_json(nullptr)},
                    {"node", c.mgmt_node}};
    }
    cj["xclbinUuid"] = c.xclbin_uuid;
    cj["driverVersion"] = c.driver_version;
    cj["health"] = hw::HealthName(c.health);
    cj["reason"] = c.health_reason;
    cj["emulated"] = c.emulated;
    ordered_json cages = ordered_json::array();
    for (const auto& t : c.sensors.cage_temp_c) cages.push_back(Optional(t));
    cj["sensors"] = {
        {"fpgaTempC", Optional(c.sensors.fpga_temp_c)},   {"hbmTempC", Optional(c.sensors.hbm_temp_c)},
        {"boardTempC", Optional(c.sensors.board_temp_c)}, {"cageTempC", cages},
        {"powerW", Optional(c.sensors.power_w)},          {"vccintV", Optional(c.sensors.vccint_v)}};
    auto& ports = cj["ports"] = ordered_json::array();
    for (const auto& p : c.ports) {
      ports.push_back(
          {{"index", p.index},
           {"modulePresent", p.module_present},
           {"lossOfSignal", p.loss_of_signal ? ordered_json(*p.loss_of_signal) : ordered_json(nullptr)},
           {"vendor", p.vendor},
           {"partNumber", p.part_number},
           {"cableSerial", p.cable_serial}});
    }
    cards.push_back(std::move(cj));
  }
  auto& links = j["links"] = ordered_json::array();
  size_t up = 0;
  for (const auto& l : inv.links) {
    if (l.state == hw::LinkState::kUp) ++up;
    links.push_back({{"a", EndJson(l.a, inv.node_name)},
                     {"b", EndJson(l.b, inv.node_name)},
                     {"kind", l.kind},
                     {"state", hw::LinkStateName(l.state)},
                     {"source", l.source},
                     {"detail", l.detail}});
  }
  j["summary"] = {{"cards", inv.cards.size()},
                  {"healthy", inv.HealthyCount()},
                  {"links", inv.links.size()},
                  {"linksUp", up}};
  return j.dump(2) + "\n";
}

std::string FormatInventoryTable(const hw::Inventory& inv) {
  std::ostringstream out;
  out << "Node " << inv.node_name << "   XRT: "
      << (inv.facts.xrt_available ? (inv.facts.xrt_version.empty() ? "available" : inv.facts.xrt_version)
                                  : "unavailable");
  if (!inv.facts.xrt_detail.empty()) out << " (" << inv.facts.xrt_detail << ")";
  out << "   OpenCL Xilinx platform: " << (inv.facts.opencl_xilinx ? "yes" : "no") << "\n\n";
  if (inv.cards.empty()) {
    out << "No Alveo cards found.\n";
    return out.str();
  }

  // Cards.
  std::vector<std::vector<std::string>> rows = {
      {"CARD", "ID", "SERIAL", "PRODUCT", "HEALTH", "NUMA", "RENDER", "TEMP", "REASON"}};
  std::map<std::string, size_t> index_of_serial;
  for (size_t i = 0; i < inv.cards.size(); ++i) {
    const auto& c = inv.cards[i];
    index_of_serial[c.serial] = i;
    char temp[16] = "-";
    if (c.sensors.fpga_temp_c) std::snprintf(temp, sizeof temp, "%.0fC", *c.sensors.fpga_temp_c);
    rows.push_back({"C" + std::to_string(i), c.id, c.serial.empty() ? "-" : c.serial, c.product,
                    hw::HealthName(c.health), c.numa_node ? std::to_string(*c.numa_node) : "-",
                    c.render_node.empty() ? "-" : c.render_node, temp, c.health_reason});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t k = 0; k < r.size(); ++k) widths[k] = std::max(widths[k], r[k].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t k = 0; k < r.size(); ++k) line += k + 1 == r.size() ? r[k] : Pad(r[k], widths[k]);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }

  // Link matrix between local cards.
  const size_t n = inv.cards.size();
  std::vector<placement::LinkCell> local_links;
  std::vector<const hw::Link*> remote;
  for (const auto& l : inv.links) {
    bool la = IsLocal(l.a, inv.node_name);
    bool lb = IsLocal(l.b, inv.node_name);
    auto ia = la ? index_of_serial.find(l.a.serial) : index_of_serial.end();
    auto ib = lb ? index_of_serial.find(l.b.serial) : index_of_serial.end();
    if (ia != index_of_serial.end() && ib != index_of_serial.end()) {
      local_links.push_back({ia->second, ib->second, l.state});
    } else {
      remote.push_back(&l);
    }
  }
  out << "\n" << placement::FormatLinkMatrix(n, local_links);
  if (!remote.empty()) {
    out << "\nLinks to other nodes:\n";
    for (const auto* l : remote) {
      const hw::PortRef& local = IsLocal(l->a, inv.node_name) ? l->a : l->b;
      const hw::PortRef& far = &local == &l->a ? l->b : l->a;
      auto it = index_of_serial.find(local.serial);
      std::string name = it == index_of_serial.end() ? local.serial : "C" + std::to_string(it->second);
      out << "  " << name << " port " << local.port << " -> " << far.node << "/" << far.serial << " port "
          << far.port << "  " << hw::LinkStateName(l->state)
          << (l->detail.empty() ? "" : "  (" + l->detail + ")") << "\n";
    }
  }
  size_t up = 0;
  for (const auto& l : inv.links) up += l.state == hw::LinkState::kUp ? 1 : 0;
  out << "\n"
      << inv.HealthyCount() << "/" << n << " cards healthy, " << up << "/" << inv.links.size()
      << " links up\n";
  return out.str();
}

}  // namespace hyperaccel::agent
