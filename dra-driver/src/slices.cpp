#include "hyperaccel/dra_driver/slices.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

namespace hyperaccel::dra {
namespace {

namespace pl = placement;

const std::regex kDnsSubdomain(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");

Json StringAttr(std::string v) {
  if (v.size() > static_cast<size_t>(kMaxAttributeStringLength)) v.resize(kMaxAttributeStringLength);
  return {{"string", std::move(v)}};
}
Json IntAttr(int64_t v) { return {{"int", v}}; }

// A taint value must be a label value: up to 63 of [A-Za-z0-9_.-], alphanumeric at both ends.
std::string TaintValue(const std::string& reason) {
  std::string v;
  for (char c : reason) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    char out = ok ? c : '-';
    if (out == '-' && !v.empty() && v.back() == '-') continue;
    v += out;
    if (v.size() >= 63) break;
  }
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  while (!v.empty() && !alnum(v.back())) v.pop_back();
  size_t b = 0;
  while (b < v.size() && !alnum(v[b])) ++b;
  v = v.substr(b);
  return v.empty() ? "unhealthy" : v;
}

// A counter set: a contiguous range of positions of one domain.
struct CounterSet {
  std::string name;
  int domain = 0;
  int first = 0;  // first position in the domain's order
  int count = 0;  // positions covered
};

// One device before it is placed into a slice.
struct Device {
  Json json;
  int domain = -1;                     // -1: consumes no counters
  std::vector<int> positions;          // positions in the domain's order it covers
  std::set<std::string> counter_sets;  // names of the sets it consumes from
  bool counted = false;                // has consumesCounters or taints (64-device limit)
};

struct DomainInfo {
  const pl::LinkDomain* domain = nullptr;
  std::vector<CounterSet> sets;  // empty: no arcs, no counters
  std::vector<int> position_of;  // card index -> position (-1 when not in this domain)
};

std::string DomainName(int index) { return "domain-" + std::to_string(index); }

std::string CounterName(int card) { return "card" + std::to_string(card); }

std::string SetNameFor(const DomainInfo& d, int position) {
  return d.sets[static_cast<size_t>(position / kMaxCountersPerSet)].name;
}

// consumesCounters for the cards at `positions` of domain `d`; one entry per counter set.
Json Consumption(const DomainInfo& d, const std::vector<int>& positions, std::set<std::string>* sets) {
  std::map<std::string, Json> by_set;
  for (int p : positions) {
    const int card = d.domain->order[static_cast<size_t>(p)];
    by_set[SetNameFor(d, p)][CounterName(card)] = {{"value", "1"}};
  }
  Json out = Json::array();
  for (auto& [name, counters] : by_set) {
    sets->insert(name);
    out.push_back({{"counterSet", name}, {"counters", counters}});
  }
  return out;
}

Json SliceShell(const SliceOptions& o, int index) {
  Json md = {{"name", SliceName(o.node_name, index)},
             {"labels", {{"app.kubernetes.io/managed-by", "hyperaccel-dra-driver"}}}};
  if (!o.node_uid.empty()) {
    md["ownerReferences"] = Json::array({{{"apiVersion", "v1"},
                                          {"kind", "Node"},
                                          {"name", o.node_name},
                                          {"uid", o.node_uid},
                                          {"controller", true}}});
  }
  Json spec = {{"driver", kDriverName},
               {"nodeName", o.node_name},
               {"pool", {{"name", o.node_name}, {"generation", 0}, {"resourceSliceCount", 0}}}};
  return {{"apiVersion", "resource.k8s.io/v1"}, {"kind", "ResourceSlice"}, {"metadata", md}, {"spec", spec}};
}

Json CounterSetJson(const DomainInfo& d, const CounterSet& s) {
  Json counters = Json::object();
  for (int p = s.first; p < s.first + s.count; ++p) {
    counters[CounterName(d.domain->order[static_cast<size_t>(p)])] = {{"value", "1"}};
  }
  return {{"name", s.name}, {"counters", counters}};
}

// Strings a YAML reader could take for something else (numbers, booleans, null, times) are
// double-quoted, so `kubectl apply -f` of the dry-run output gives back the same strings.
bool NeedsQuotes(const std::string& v) {
  if (v.empty() || v.find(':') != std::string::npos || v.find('#') != std::string::npos) return true;
  static const std::regex kPlainRisky(
      R"(^([-+]?[0-9._]+([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o?[0-7]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|~|)"
      R"(null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)$)");
  return std::regex_match(v, kPlainRisky);
}

void Emit(YAML::Emitter& e, const Json& j) {
  if (j.is_object()) {
    e << YAML::BeginMap;
    for (auto& [k, v] : j.items()) {
      e << YAML::Key << k << YAML::Value;
      Emit(e, v);
    }
    e << YAML::EndMap;
  } else if (j.is_array()) {
    e << YAML::BeginSeq;
    for (const auto& v : j) Emit(e, v);
    e << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string v = j.get<std::string>();
    if (NeedsQuotes(v)) e << YAML::DoubleQuoted;
    e << v;
  } else if (j.is_boolean()) {
    e << j.get<bool>();
  } else if (j.is_number_integer()) {
    e << j.get<int64_t>();
  } else if (j.is_number()) {
    e << j.get<double>();
  } else {
    e << YAML::Null;
  }
}

}  // namespace

Status ValidateArcSizes(const std::vector<int>& sizes) {
  std::set<int> seen;
  for (int k : sizes) {
    if (k < 2 || k > kMaxCountersPerSet) {
      return InvalidArgument("arc size " + std::to_string(k) + ": must be between 2 and " +
                             std::to_string(kMaxCountersPerSet));
    }
    if (!seen.insert(k).second) return InvalidArgument("arc size " + std::to_string(k) + " listed twice");
  }
  return Status::Ok();
}

std::string CardDeviceName(int card_index) { return "card-" + std::to_string(card_index); }

std::string ArcDeviceName(int size, int first_card_index) {
  return "arc" + std::to_string(size) + "-" + std::to_string(first_card_index);
}

Result<std::vector<PoolDevice>> PoolDevices(const hw::Inventory& inventory, const SliceOptions& options) {
  if (auto st = ValidateArcSizes(options.arc_sizes); !st.ok()) return st;
  auto graph = pl::GraphFromInventory(inventory);
  if (!graph.ok()) return graph.status();
  std::vector<PoolDevice> out;
  out.reserve(static_cast<size_t>(graph->size()));
  for (int c = 0; c < graph->size(); ++c) {
    out.push_back({CardDeviceName(c), false, {c}, {graph->ids[static_cast<size_t>(c)]}});
  }
  if (options.features.partitionable) {
    for (const auto& a : pl::LinkedArcs(*graph, options.arc_sizes, options.alignment)) {
      PoolDevice d{ArcDeviceName(a.size, a.cards.front()), true, a.cards, {}};
      for (int c : a.cards) d.card_ids.push_back(graph->ids[static_cast<size_t>(c)]);
      out.push_back(std::move(d));
    }
  }
  return out;
}

std::string SliceName(const std::string& node_name, int index) {
  std::string suffix = "-fpga-" + std::to_string(index);
  std::string node = node_name.substr(0, 253 - suffix.size());
  while (!node.empty() && (node.back() == '-' || node.back() == '.')) node.pop_back();
  return node + suffix;
}

Result<SliceSet> BuildSlices(const hw::Inventory& inventory, const SliceOptions& o) {
  if (o.node_name.empty() || o.node_name.size() > 253 || !std::regex_match(o.node_name, kDnsSubdomain)) {
    return InvalidArgument("node name \"" + o.node_name + "\" is not a DNS subdomain (pool names must be)");
  }
  if (auto st = ValidateArcSizes(o.arc_sizes); !st.ok()) return st;
  auto graph = pl::GraphFromInventory(inventory);
  if (!graph.ok()) return graph.status();
  const int n = graph->size();
  const ServerFeatures& f = o.features;

  SliceSet out;
  const std::vector<pl::LinkDomain> domains = pl::LinkDomains(*graph);
  std::vector<pl::Arc> arcs;
  if (f.partitionable) arcs = pl::LinkedArcs(*graph, o.arc_sizes, o.alignment);

  // Counter sets for every domain that has at least one arc.
  std::vector<DomainInfo> info(domains.size());
  std::vector<int> domain_of(static_cast<size_t>(n), -1);
  for (size_t i = 0; i < domains.size(); ++i) {
    info[i].domain = &domains[i];
    info[i].position_of.assign(static_cast<size_t>(n), -1);
    for (size_t p = 0; p < domains[i].order.size(); ++p) {
      info[i].position_of[static_cast<size_t>(domains[i].order[p])] = static_cast<int>(p);
      domain_of[static_cast<size_t>(domains[i].order[p])] = static_cast<int>(i);
    }
  }
  for (const auto& a : arcs) {
    DomainInfo& d = info[static_cast<size_t>(a.domain)];
    if (!d.sets.empty()) continue;
    const int size = static_cast<int>(d.domain->order.size());
    const int nsets = (size + kMaxCountersPerSet - 1) / kMaxCountersPerSet;
    for (int s = 0; s < nsets; ++s) {
      CounterSet cs;
      cs.name = nsets == 1 ? DomainName(a.domain) : DomainName(a.domain) + "-" + std::to_string(s);
      cs.domain = a.domain;
      cs.first = s * kMaxCountersPerSet;
      cs.count = std::min(kMaxCountersPerSet, size - cs.first);
      d.sets.push_back(cs);
    }
  }

  // Health per card index.
  std::vector<const hw::Card*> cards(static_cast<size_t>(n), nullptr);
  for (const auto& c : inventory.cards) {
    if (auto idx = graph->IndexOf(c.id)) cards[static_cast<size_t>(*idx)] = &c;
  }
  auto unhealthy_reason = [&](int card) -> std::optional<std::string> {
    const hw::Card* c = cards[static_cast<size_t>(card)];
    if (c && c->health == hw::Health::kHealthy) return std::nullopt;
    return c && !c->health_reason.empty() ? c->health_reason : std::string("unhealthy");
  };
  // Returns false when the device must be withdrawn.
  auto apply_health = [&](Device& dev, const std::vector<int>& members) {
    std::optional<std::string> reason;
    for (int m : members) {
      if (auto r = unhealthy_reason(m)) {
        reason = members.size() == 1 ? *r : "card-" + std::to_string(m) + ": " + *r;
        break;
      }
    }
    if (!reason) return true;
    if (!f.device_taints) return false;
    dev.json["taints"] = Json::array(
        {{{"key", kUnhealthyTaintKey}, {"value", TaintValue(*reason)}, {"effect", "NoSchedule"}}});
    dev.counted = true;
    return true;
  };

  std::vector<Device> devices;
  for (int c = 0; c < n; ++c) {
    const hw::Card* card = cards[static_cast<size_t>(c)];
    const int di = domain_of[static_cast<size_t>(c)];
    const DomainInfo& d = info[static_cast<size_t>(di)];
    const int pos = d.position_of[static_cast<size_t>(c)];
    Device dev;
    Json attrs = {{"kind", StringAttr("card")},
                  {"cards", IntAttr(1)},
                  {"linkDomain", StringAttr(DomainName(di))},
                  {"position", IntAttr(pos)},
                  {"resource.kubernetes.io/pciBusID", StringAttr(graph->ids[static_cast<size_t>(c)])}};
    if (card) {
      if (!card->serial.empty()) attrs["serial"] = StringAttr(card->serial);
      if (card->numa_node) attrs["numaNode"] = IntAttr(*card->numa_node);
      if (!card->product.empty()) attrs["product"] = StringAttr(card->product);
      if (!card->shell.empty()) attrs["shell"] = StringAttr(card->shell);
      if (!card->xclbin_uuid.empty()) attrs["xclbinUUID"] = StringAttr(card->xclbin_uuid);
      if (!card->pcie_path.empty())
        attrs["resource.kubernetes.io/pcieRoot"] = StringAttr(card->pcie_path.front());
    }
    dev.json = {{"name", CardDeviceName(c)}, {"attributes", attrs}};
    if (!d.sets.empty()) {
      dev.domain = di;
      dev.positions = {pos};
      dev.json["consumesCounters"] = Consumption(d, dev.positions, &dev.counter_sets);
      dev.counted = true;
    }
    if (!apply_health(dev, {c})) {
      ++out.withdrawn_devices;
      continue;
    }
    ++out.card_devices;
    devices.push_back(std::move(dev));
  }
  for (const auto& a : arcs) {
    const DomainInfo& d = info[static_cast<size_t>(a.domain)];
    Device dev;
    dev.domain = a.domain;
    for (int c : a.cards) dev.positions.push_back(d.position_of[static_cast<size_t>(c)]);
    // Named after the first card (unique in the pool even with several domains); `position` is
    // where the arc starts in its domain's link order.
    dev.json = {{"name", ArcDeviceName(a.size, a.cards.front())},
                {"attributes",
                 {{"kind", StringAttr("arc")},
                  {"cards", IntAttr(a.size)},
                  {"linkDomain", StringAttr(DomainName(a.domain))},
                  {"position", IntAttr(a.start)}}},
                {"consumesCounters", Consumption(d, dev.positions, &dev.counter_sets)}};
    dev.counted = true;
    if (!apply_health(dev, a.cards)) {
      ++out.withdrawn_devices;
      continue;
    }
    ++out.arc_devices;
    devices.push_back(std::move(dev));
  }
  for (const auto& d : devices) {
    if (d.json.contains("taints")) ++out.tainted_devices;
  }

  // ---- chunk into slices ----
  std::vector<Json> slices;
  auto device_limit = [](bool counted) {
    return counted ? kMaxDevicesPerSliceWithCounters : kMaxDevicesPerSlice;
  };
  if (f.layout == CounterLayout::kSplit || !f.partitionable) {
    // Counter slices: up to 8 sets each.
    std::vector<Json> sets;
    for (const auto& d : info) {
      for (const auto& s : d.sets) sets.push_back(CounterSetJson(d, s));
    }
    for (size_t i = 0; i < sets.size(); i += kMaxCounterSetsPerSlice) {
      Json slice = SliceShell(o, static_cast<int>(slices.size()));
      slice["spec"]["sharedCounters"] = Json::array();
      for (size_t j = i; j < std::min(sets.size(), i + kMaxCounterSetsPerSlice); ++j) {
        slice["spec"]["sharedCounters"].push_back(sets[j]);
      }
      slices.push_back(std::move(slice));
    }
    // Device slices: in order, 64 per slice when any device in it has counters or taints.
    size_t i = 0;
    while (i < devices.size()) {
      Json slice = SliceShell(o, static_cast<int>(slices.size()));
      slice["spec"]["devices"] = Json::array();
      bool counted = false;
      while (i < devices.size()) {
        const bool c = counted || devices[i].counted;
        if (static_cast<int>(slice["spec"]["devices"].size()) + 1 > device_limit(c)) break;
        counted = c;
        slice["spec"]["devices"].push_back(devices[i].json);
        ++i;
      }
      slices.push_back(std::move(slice));
    }
  } else {
    // 1.34: counter sets live in the slice of the devices that consume them. A unit is one counter
    // set with its devices (devices spanning two sets join the unit of their first set when the
    // second set is in the same slice; otherwise they are dropped). Units are packed first-fit in
    // order; plain devices (no counters) fill the remaining room.
    struct Unit {
      Json set;
      std::string name;
      int counters = 0;
      std::vector<const Device*> devices;
    };
    std::vector<Unit> units;
    std::map<std::string, size_t> unit_of;
    for (const auto& d : info) {
      for (const auto& s : d.sets) {
        unit_of[s.name] = units.size();
        units.push_back({CounterSetJson(d, s), s.name, s.count, {}});
      }
    }
    std::vector<const Device*> plain;
    std::vector<const Device*> spanning;
    for (const auto& d : devices) {
      if (d.counter_sets.empty()) {
        plain.push_back(&d);
      } else if (d.counter_sets.size() == 1) {
        units[unit_of[*d.counter_sets.begin()]].devices.push_back(&d);
      } else {
        spanning.push_back(&d);
      }
    }
    struct Bin {
      Json slice;
      int counters = 0;
      int sets = 0;
      std::set<std::string> names;
    };
    std::vector<Bin> bins;
    for (auto& u : units) {
      // A unit larger than one slice keeps its first 64 devices (cards come first).
      if (static_cast<int>(u.devices.size()) > kMaxDevicesPerSliceWithCounters) {
        out.dropped_arcs += static_cast<int>(u.devices.size()) - kMaxDevicesPerSliceWithCounters;
        u.devices.resize(kMaxDevicesPerSliceWithCounters);
      }
      Bin* bin = nullptr;
      for (auto& b : bins) {
        if (b.counters + u.counters <= kMaxSharedCountersPerSlice134 && b.sets < kMaxCounterSetsPerSlice &&
            static_cast<int>(b.slice["spec"]["devices"].size() + u.devices.size()) <=
                kMaxDevicesPerSliceWithCounters) {
          bin = &b;
          break;
        }
      }
      if (!bin) {
        bins.push_back({SliceShell(o, static_cast<int>(bins.size())), 0, 0, {}});
        bin = &bins.back();
        bin->slice["spec"]["sharedCounters"] = Json::array();
        bin->slice["spec"]["devices"] = Json::array();
      }
      bin->slice["spec"]["sharedCounters"].push_back(u.set);
      bin->counters += u.counters;
      bin->sets += 1;
      bin->names.insert(u.name);
      for (const Device* d : u.devices) bin->slice["spec"]["devices"].push_back(d->json);
    }
    for (const Device* d : spanning) {
      bool placed = false;
      for (auto& b : bins) {
        bool all = std::all_of(d->counter_sets.begin(), d->counter_sets.end(),
                               [&](const std::string& s) { return b.names.count(s) > 0; });
        if (all && static_cast<int>(b.slice["spec"]["devices"].size()) < kMaxDevicesPerSliceWithCounters) {
          b.slice["spec"]["devices"].push_back(d->json);
          placed = true;
          break;
        }
      }
      if (!placed) ++out.dropped_arcs;
    }
    for (const Device* d : plain) {
      Bin* bin = nullptr;
      for (auto& b : bins) {
        bool counted = b.sets > 0 || d->counted;
        for (const auto& x : b.slice["spec"]["devices"]) counted = counted || x.contains("taints");
        if (static_cast<int>(b.slice["spec"]["devices"].size()) < device_limit(counted)) {
          bin = &b;
          break;
        }
      }
      if (!bin) {
        bins.push_back({SliceShell(o, static_cast<int>(bins.size())), 0, 0, {}});
        bin = &bins.back();
        bin->slice["spec"]["devices"] = Json::array();
      }
      bin->slice["spec"]["devices"].push_back(d->json);
    }
    for (auto& b : bins) {
      if (b.slice["spec"]["devices"].empty()) b.slice["spec"].erase("devices");
      slices.push_back(std::move(b.slice));
    }
    out.arc_devices -= out.dropped_arcs;
  }
  if (slices.empty()) {
    // A node without cards still publishes its (empty) pool, so consumers see it is complete.
    Json slice = SliceShell(o, 0);
    slice["spec"]["devices"] = Json::array();
    slices.push_back(std::move(slice));
  }
  for (auto& s : slices) s["spec"]["pool"]["resourceSliceCount"] = static_cast<int64_t>(slices.size());
  out.slices = std::move(slices);
  return out;
}

std::string SlicesYaml(const std::vector<Json>& slices) {
  std::string out;
  for (const auto& s : slices) {
    YAML::Emitter e;
    Emit(e, s);
    out += "---\n";
    out += e.c_str();
    out += "\n";
  }
  return out;
}

}  // namespace hyperaccel::dra
