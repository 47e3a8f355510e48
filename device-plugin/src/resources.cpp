#include "hyperaccel/device_plugin/resources.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <utility>

namespace hyperaccel::device_plugin {
namespace {

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (!IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
    for (char c : label) {
      if (!(IsAlnum(c) || c == '-') || std::isupper(static_cast<unsigned char>(c))) return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool SameAdvertisement(const ResourceView& a, const ResourceView& b) {
  if (a.devices.size() != b.devices.size() || a.cdi_ids != b.cdi_ids) return false;
  for (size_t i = 0; i < a.devices.size(); ++i) {
    const DeviceEntry& x = a.devices[i];
    const DeviceEntry& y = b.devices[i];
    if (x.card.id != y.card.id || x.healthy != y.healthy || x.present != y.present || x.reason != y.reason ||
        x.card.numa_node != y.card.numa_node || x.card.serial != y.card.serial ||
        x.card.render_node != y.card.render_node || x.card.mgmt_node != y.card.mgmt_node) {
      return false;
    }
  }
  if (a.graph.adj != b.graph.adj) return false;
  return true;
}

}  // namespace

Status ValidateResourceName(std::string_view name) {
  const std::string quoted = "resource name '" + std::string(name) + "'";
  size_t slash = name.find('/');
  if (slash == std::string_view::npos)
    return InvalidArgument(quoted + ": needs a domain, as in vendor.com/fpga");
  if (name.find('/', slash + 1) != std::string_view::npos)
    return InvalidArgument(quoted + ": more than one '/'");
  if (name.find("kubernetes.io/") != std::string_view::npos) {
    return InvalidArgument(quoted + ": the kubernetes.io namespace is reserved");
  }
  if (name.starts_with("requests.")) return InvalidArgument(quoted + ": must not start with 'requests.'");
  std::string_view domain = name.substr(0, slash);
  std::string_view part = name.substr(slash + 1);
  if (!IsDnsSubdomain(domain))
    return InvalidArgument(quoted + ": '" + std::string(domain) + "' is not a DNS subdomain");
  if (part.empty() || part.size() > 63) {
    return InvalidArgument(quoted + ": the part after '/' must have 1 to 63 characters");
  }
  if (!IsAlnum(part.front()) || !IsAlnum(part.back())) {
    return InvalidArgument(quoted + ": the part after '/' must start and end with a letter or digit");
  }
  for (char c : part) {
    if (!(IsAlnum(c) || c == '-' || c == '_' || c == '.')) {
      return InvalidArgument(quoted + ": the part after '/' may only hold letters, digits, '-', '_' and '.'");
    }
  }
  return Status::Ok();
}

ResourceNamer MakeNamer(NamingMode mode, std::string resource_name, std::string per_shell_domain,
                        ShellTimestampFn timestamp) {
  if (mode == NamingMode::kSingle) {
    return [name = std::move(resource_name)](const hw::Card&) { return name; };
  }
  return [fallback = std::move(resource_name), domain = std::move(per_shell_domain),
          ts = std::move(timestamp)](const hw::Card& card) {
    if (card.shell.empty()) return fallback;
    std::string name = domain + "/" + card.shell + "-" + (ts ? ts(card) : std::string("0"));
    return ValidateResourceName(name).ok() ? name : fallback;
  };
}

ShellTimestampFn SysfsShellTimestamp(std::string sysfs_root) {
  return [root = std::move(sysfs_root)](const hw::Card& card) -> std::string {
    if (card.emulated || card.id.empty()) return "0";
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path dev = fs::path(root) / "bus/pci/devices" / card.id;
    for (fs::directory_iterator it(dev, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.starts_with("rom.")) continue;
      std::ifstream in(it->path() / "timestamp");
      std::string value;
      if (in >> value && !value.empty() &&
          std::all_of(value.begin(), value.end(), [](char c) { return IsAlnum(c); })) {
        return value;
      }
    }
    return "0";
  };
}

std::string SocketNameFor(NamingMode mode, const std::string& resource, const std::string& single_socket) {
  if (mode == NamingMode::kSingle) return single_socket;
  size_t slash = resource.find('/');
  return "hyperaccel-" + resource.substr(slash == std::string::npos ? 0 : slash + 1) + ".sock";
}

const DeviceEntry* ResourceView::Find(std::string_view id) const {
  auto it = std::lower_bound(devices.begin(), devices.end(), id,
                             [](const DeviceEntry& e, std::string_view key) { return e.card.id < key; });
  return it != devices.end() && it->card.id == id ? &*it : nullptr;
}

size_t ResourceView::HealthyCount() const {
  return static_cast<size_t>(
      std::count_if(devices.begin(), devices.end(), [](const DeviceEntry& e) { return e.healthy; }));
}

DeviceTable::DeviceTable(ResourceNamer namer) : namer_(std::move(namer)) {}

void DeviceTable::Observe(const hw::Inventory& inventory) {
  present_.clear();
  for (const hw::Card& card : inventory.cards) {
    if (card.id.empty()) continue;
    present_.insert(card.id);
    known_[card.id] = card;
    resource_[card.id] = namer_(card);
  }
  last_.node_name = inventory.node_name;
  last_.links = inventory.links;
  last_.facts = inventory.facts;
}

DeviceTable::Views DeviceTable::Apply(const hw::Inventory& inventory, std::set<std::string>* changed) {
  Observe(inventory);
  return Build({}, changed);
}

DeviceTable::Views DeviceTable::Build(const std::set<std::string>& cdi_ids, std::set<std::string>* changed) {
  // Group by resource; cards are visited in ID order, so every view is sorted.
  std::map<std::string, std::shared_ptr<ResourceView>> next;
  for (const auto& [name, old] : views_) next[name] = std::make_shared<ResourceView>();
  for (const auto& [id, card] : known_) {
    auto& view = next[resource_[id]];
    if (!view) view = std::make_shared<ResourceView>();
    DeviceEntry entry;
    entry.card = card;
    entry.present = present_.count(id) > 0;
    if (!entry.present) {
      entry.healthy = false;
      entry.reason = "card not found by the last scan (reset or driver reload?)";
      entry.card.health = hw::Health::kUnhealthy;
      entry.card.health_reason = entry.reason;
    } else {
      entry.healthy = card.health == hw::Health::kHealthy;
      entry.reason =
          entry.healthy ? "" : (card.health_reason.empty() ? "reported unhealthy" : card.health_reason);
    }
    if (cdi_ids.count(id)) view->cdi_ids.insert(id);
    view->devices.push_back(std::move(entry));
  }

  ++version_;
  Views out;
  for (auto& [name, view] : next) {
    view->resource_name = name;
    view->version = version_;
    hw::Inventory sub = last_;
    sub.cards.clear();
    for (const DeviceEntry& e : view->devices) sub.cards.push_back(e.card);
    auto graph = placement::GraphFromInventory(sub);
    if (graph.ok()) {
      view->graph = std::move(graph).value();
    } else {
      view->graph_error = graph.status().message();
    }
    auto old = views_.find(name);
    if (changed && (old == views_.end() || !SameAdvertisement(*old->second, *view))) changed->insert(name);
    out[name] = view;
  }
  views_ = out;
  return out;
}

std::vector<hw::Card> DeviceTable::AllCards() const {
  std::vector<hw::Card> cards;
  cards.reserve(known_.size());
  for (const auto& [id, card] : known_) cards.push_back(card);
  return cards;
}

}  // namespace hyperaccel::device_plugin
