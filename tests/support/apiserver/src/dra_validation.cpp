#include "hyperaccel/testing/dra_validation.h"

#include <map>
#include <regex>
#include <set>

#include "hyperaccel/common/json_fields.h"

namespace hyperaccel::testing {
namespace {

using Json = nlohmann::json;
namespace jf = json_fields;

const std::regex kDnsLabel(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)");
const std::regex kDnsSubdomain(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");
const std::regex kCIdentifier(R"(^[A-Za-z_][A-Za-z0-9_]*$)");
const std::regex kLabelValue(R"(^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$)");
const std::regex kLabelName(R"(^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$)");
const std::regex kSemver(
    R"(^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$)");
const std::regex kQuantity(
    R"(^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$)");

constexpr size_t kMaxDevices = 128;
constexpr size_t kMaxDevicesWithCounters = 64;
constexpr size_t kMaxAttributes = 32;
constexpr size_t kMaxCounterSets = 8;
constexpr size_t kMaxCounters = 32;
constexpr size_t kMaxConsumes = 2;
constexpr size_t kMaxTaints = 16;
constexpr size_t kMaxSharedCounters134 = 32;

std::string Invalid(const std::string& field, const std::string& value, const std::string& why) {
  return field + ": Invalid value: \"" + value + "\": " + why;
}
std::string Required(const std::string& field) { return field + ": Required value"; }
std::string TooMany(const std::string& field, size_t have, size_t max) {
  return field + ": Too many: " + std::to_string(have) + ": must have at most " + std::to_string(max) +
         " items";
}

bool IsDnsLabel(const std::string& s) {
  return !s.empty() && s.size() <= 63 && std::regex_match(s, kDnsLabel);
}
bool IsDnsSubdomain(const std::string& s) {
  return !s.empty() && s.size() <= 253 && std::regex_match(s, kDnsSubdomain);
}

std::string Str(const Json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

// QualifiedName: C identifier (<= 32), or <DNS subdomain <= 63>/<C identifier <= 32>.
std::string CheckQualifiedName(const std::string& field, const std::string& name) {
  size_t slash = name.find('/');
  std::string id = slash == std::string::npos ? name : name.substr(slash + 1);
  if (slash != std::string::npos) {
    std::string domain = name.substr(0, slash);
    if (domain.empty() || domain.size() > 63 || !std::regex_match(domain, kDnsSubdomain)) {
      return Invalid(field, name, "the domain must be a DNS subdomain of at most 63 characters");
    }
  }
  if (id.empty() || id.size() > 32 || !std::regex_match(id, kCIdentifier)) {
    return Invalid(field, name, "a C identifier of at most 32 characters is required");
  }
  return "";
}

std::string CheckCounters(const std::string& field, const Json& counters) {
  if (!counters.is_object() || counters.empty()) return Required(field);
  if (counters.size() > kMaxCounters) return TooMany(field, counters.size(), kMaxCounters);
  for (auto& [name, c] : counters.items()) {
    if (!IsDnsLabel(name)) return Invalid(field, name, "a lowercase RFC 1123 label is required");
    if (!c.is_object() || !c.contains("value") || !c["value"].is_string() ||
        !std::regex_match(c["value"].get<std::string>(), kQuantity)) {
      return Invalid(field + "[" + name + "].value", c.dump(), "a quantity is required");
    }
  }
  return "";
}

std::string CheckNodeSelection(const Json& spec, const std::string& prefix, bool allow_none) {
  int n = 0;
  if (spec.contains("nodeName") && !spec["nodeName"].is_null()) {
    if (!spec["nodeName"].is_string() || !IsDnsSubdomain(spec["nodeName"].get<std::string>())) {
      return Invalid(prefix + "nodeName", Str(spec["nodeName"]), "a DNS subdomain is required");
    }
    ++n;
  }
  if (spec.contains("nodeSelector") && !spec["nodeSelector"].is_null()) {
    const Json& ns = spec["nodeSelector"];
    if (!ns.is_object() || !ns.contains("nodeSelectorTerms") || !ns["nodeSelectorTerms"].is_array() ||
        ns["nodeSelectorTerms"].size() != 1) {
      return Invalid(prefix + "nodeSelector.nodeSelectorTerms", ns.dump(),
                     "must have exactly one node selector term");
    }
    ++n;
  }
  for (const char* k : {"allNodes", "perDeviceNodeSelection"}) {
    const Json& v = jf::Any(spec, k);
    if (!v.is_null() && !v.is_boolean()) return Invalid(prefix + k, v.dump(), "a boolean is required");
    if (v.is_boolean() && v.get<bool>()) ++n;
  }
  if (n > 1)
    return prefix +
           "nodeName: Invalid value: exactly one of `nodeName`, `nodeSelector`, `allNodes`, "
           "`perDeviceNodeSelection` is required, but multiple fields are set";
  if (n == 0 && !allow_none) {
    return Required(prefix + "nodeName") +
           ": exactly one of `nodeName`, `nodeSelector`, `allNodes`, "
           "`perDeviceNodeSelection` is required";
  }
  return "";
}

std::string CheckDevice(const Json& d, const std::string& f, bool per_device_nodes,
                        const std::set<std::string>* sets_in_slice) {
  if (!d.is_object()) return Invalid(f, d.dump(), "must be an object");
  if (!d.contains("name") || !d["name"].is_string()) return Required(f + ".name");
  const std::string name = d["name"];
  if (!IsDnsLabel(name))
    return Invalid(f + ".name", name, "a lowercase RFC 1123 label of at most 63 characters is required");
  size_t attrs = 0;
  if (d.contains("attributes")) {
    const Json& a = d["attributes"];
    if (!a.is_object()) return Invalid(f + ".attributes", a.dump(), "must be a map");
    attrs += a.size();
    for (auto& [k, v] : a.items()) {
      const std::string af = f + ".attributes[" + k + "]";
      if (auto e = CheckQualifiedName(af, k); !e.empty()) return e;
      if (!v.is_object()) return Invalid(af, v.dump(), "must be an object");
      int kinds = 0;
      for (const char* t : {"int", "bool", "string", "version"}) kinds += v.contains(t);
      if (kinds != 1 || v.size() != 1) return Invalid(af, v.dump(), "exactly one value must be specified");
      if (v.contains("int") && !v["int"].is_number_integer())
        return Invalid(af + ".int", v.dump(), "an integer is required");
      if (v.contains("bool") && !v["bool"].is_boolean())
        return Invalid(af + ".bool", v.dump(), "a boolean is required");
      if (v.contains("string")) {
        if (!v["string"].is_string()) return Invalid(af + ".string", v.dump(), "a string is required");
        if (v["string"].get<std::string>().size() > 64) {
          return af + ".string: Too long: may not be more than 64 bytes";
        }
      }
      if (v.contains("version")) {
        if (!v["version"].is_string()) return Invalid(af + ".version", v.dump(), "a string is required");
        const std::string s = v["version"];
        if (s.size() > 64) return af + ".version: Too long: may not be more than 64 bytes";
        if (!std::regex_match(s, kSemver))
          return Invalid(af + ".version", s, "must be a string compatible with semver.org spec 2.0.0");
      }
    }
  }
  if (d.contains("capacity")) {
    if (!d["capacity"].is_object()) return Invalid(f + ".capacity", d["capacity"].dump(), "must be a map");
    attrs += d["capacity"].size();
    for (auto& [k, v] : d["capacity"].items()) {
      if (auto e = CheckQualifiedName(f + ".capacity[" + k + "]", k); !e.empty()) return e;
      if (!v.is_object() || !v.contains("value") || !v["value"].is_string() ||
          !std::regex_match(v["value"].get<std::string>(), kQuantity)) {
        return Invalid(f + ".capacity[" + k + "].value", v.dump(), "a quantity is required");
      }
    }
  }
  if (attrs > kMaxAttributes) {
    return f + ": Too many: " + std::to_string(attrs) +
           ": the total number of attributes and capacities must not exceed 32";
  }
  if (d.contains("consumesCounters")) {
    const Json& cc = d["consumesCounters"];
    if (!cc.is_array()) return Invalid(f + ".consumesCounters", cc.dump(), "must be a list");
    if (cc.size() > kMaxConsumes) return TooMany(f + ".consumesCounters", cc.size(), kMaxConsumes);
    std::set<std::string> seen;
    for (size_t i = 0; i < cc.size(); ++i) {
      const std::string cf = f + ".consumesCounters[" + std::to_string(i) + "]";
      const Json& c = cc[i];
      if (!c.is_object() || !c.contains("counterSet") || !c["counterSet"].is_string())
        return Required(cf + ".counterSet");
      const std::string set = c["counterSet"];
      if (!IsDnsLabel(set)) return Invalid(cf + ".counterSet", set, "a lowercase RFC 1123 label is required");
      if (!seen.insert(set).second) return cf + ".counterSet: Duplicate value: \"" + set + "\"";
      if (auto e = CheckCounters(cf + ".counters", jf::Any(c, "counters")); !e.empty()) return e;
      if (sets_in_slice && !sets_in_slice->count(set)) {
        return Invalid(cf + ".counterSet", set,
                       "must reference a counter set defined in the ResourceSlice sharedCounters");
      }
    }
  }
  if (d.contains("taints")) {
    const Json& ts = d["taints"];
    if (!ts.is_array()) return Invalid(f + ".taints", ts.dump(), "must be a list");
    if (ts.size() > kMaxTaints) return TooMany(f + ".taints", ts.size(), kMaxTaints);
    for (size_t i = 0; i < ts.size(); ++i) {
      const std::string tf = f + ".taints[" + std::to_string(i) + "]";
      const Json& t = ts[i];
      if (!t.is_object() || !t.contains("key") || !t["key"].is_string()) return Required(tf + ".key");
      const std::string key = t["key"];
      size_t slash = key.find('/');
      std::string kname = slash == std::string::npos ? key : key.substr(slash + 1);
      if ((slash != std::string::npos && !IsDnsSubdomain(key.substr(0, slash))) || kname.size() > 63 ||
          !std::regex_match(kname, kLabelName)) {
        return Invalid(tf + ".key", key, "a qualified name is required");
      }
      if (t.contains("value") && (!t["value"].is_string() || t["value"].get<std::string>().size() > 63 ||
                                  !std::regex_match(t["value"].get<std::string>(), kLabelValue))) {
        return Invalid(tf + ".value", Str(t["value"]), "a valid label value is required");
      }
      const std::string effect =
          jf::Any(t, "effect").is_string() ? t["effect"].get<std::string>() : jf::Any(t, "effect").dump();
      if (effect != "None" && effect != "NoSchedule" && effect != "NoExecute") {
        return tf + ".effect: Unsupported value: \"" + effect +
               "\": supported values: \"NoExecute\", \"NoSchedule\", \"None\"";
      }
    }
  }
  if (per_device_nodes) {
    if (auto e = CheckNodeSelection(d, f + ".", false); !e.empty()) return e;
  } else {
    for (const char* k : {"nodeName", "nodeSelector", "allNodes"}) {
      if (d.contains(k) && !d[k].is_null()) {
        return f + "." + k + ": Forbidden: only allowed when spec.perDeviceNodeSelection is true";
      }
    }
  }
  return "";
}

}  // namespace

void DropDisabledDraFields(Json& slice, const DraGates& gates) {
  if (!slice.contains("spec") || !slice["spec"].is_object()) return;
  Json& spec = slice["spec"];
  if (!gates.partitionable) {
    spec.erase("sharedCounters");
    spec.erase("perDeviceNodeSelection");
  }
  if (spec.contains("devices") && spec["devices"].is_array()) {
    for (auto& d : spec["devices"]) {
      if (!d.is_object()) continue;
      if (!gates.partitionable) {
        d.erase("consumesCounters");
        d.erase("nodeName");
        d.erase("nodeSelector");
        d.erase("allNodes");
      }
      if (!gates.device_taints) d.erase("taints");
    }
  }
}

std::string ValidateResourceSlice(const Json& o, const DraGates& gates) {
  const std::string name = jf::String(jf::Object(o, "metadata"), "name");
  if (!IsDnsSubdomain(name))
    return Invalid("metadata.name", name, "a lowercase RFC 1123 subdomain is required");
  if (!o.contains("spec") || !o["spec"].is_object()) return Required("spec");
  const Json& spec = o["spec"];
  if (!spec.contains("driver") || !spec["driver"].is_string()) return Required("spec.driver");
  const std::string driver = spec["driver"];
  if (driver.size() > 63 || !IsDnsSubdomain(driver)) {
    return Invalid("spec.driver", driver,
                   "a lowercase RFC 1123 subdomain of at most 63 characters is required");
  }
  if (!spec.contains("pool") || !spec["pool"].is_object()) return Required("spec.pool");
  const Json& pool = spec["pool"];
  if (!pool.contains("name") || !pool["name"].is_string() || pool["name"].get<std::string>().empty()) {
    return Required("spec.pool.name");
  }
  const std::string pname = pool["name"];
  if (pname.size() > 253) return "spec.pool.name: Too long: may not be more than 253 bytes";
  for (size_t b = 0; b <= pname.size();) {
    size_t e = pname.find('/', b);
    if (e == std::string::npos) e = pname.size();
    if (!IsDnsSubdomain(pname.substr(b, e - b))) {
      return Invalid("spec.pool.name", pname, "each part separated by / must be a DNS subdomain");
    }
    b = e + 1;
  }
  if (!pool.contains("generation") || !pool["generation"].is_number_integer() ||
      pool["generation"].get<int64_t>() < 0) {
    return Invalid("spec.pool.generation", jf::Any(pool, "generation").dump(),
                   "must be greater than or equal to 0");
  }
  if (!pool.contains("resourceSliceCount") || !pool["resourceSliceCount"].is_number_integer() ||
      pool["resourceSliceCount"].get<int64_t>() <= 0) {
    return Invalid("spec.pool.resourceSliceCount", jf::Any(pool, "resourceSliceCount").dump(),
                   "must be greater than 0");
  }
  if (auto e = CheckNodeSelection(spec, "spec.", false); !e.empty()) return e;
  const bool per_device = jf::Bool(spec, "perDeviceNodeSelection");

  const Json& devices = jf::Find(spec, "devices") != nullptr ? spec["devices"] : jf::Array(spec, "devices");
  const Json& shared = jf::Find(spec, "sharedCounters") != nullptr ? spec["sharedCounters"]
                                                                   : jf::Array(spec, "sharedCounters");
  if (!devices.is_array()) return Invalid("spec.devices", devices.dump(), "must be a list");
  if (!shared.is_array()) return Invalid("spec.sharedCounters", shared.dump(), "must be a list");
  if (gates.minor >= 35 && !devices.empty() && !shared.empty()) {
    return "spec: Invalid value: only one of `devices` and `sharedCounters` may be set";
  }
  std::set<std::string> set_names;
  size_t total_counters = 0;
  if (shared.size() > kMaxCounterSets) return TooMany("spec.sharedCounters", shared.size(), kMaxCounterSets);
  for (size_t i = 0; i < shared.size(); ++i) {
    const std::string sf = "spec.sharedCounters[" + std::to_string(i) + "]";
    const Json& s = shared[i];
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) return Required(sf + ".name");
    const std::string sn = s["name"];
    if (!IsDnsLabel(sn)) return Invalid(sf + ".name", sn, "a lowercase RFC 1123 label is required");
    if (!set_names.insert(sn).second) return sf + ".name: Duplicate value: \"" + sn + "\"";
    if (auto e = CheckCounters(sf + ".counters", jf::Any(s, "counters")); !e.empty()) return e;
    total_counters += s["counters"].size();
  }
  if (gates.minor < 35 && total_counters > kMaxSharedCounters134) {
    return "spec.sharedCounters: Too many: " + std::to_string(total_counters) +
           ": the total number of shared counters must not exceed 32";
  }
  bool counted = false;
  for (const auto& d : devices)
    counted = counted || (d.is_object() && (d.contains("consumesCounters") || d.contains("taints")));
  const size_t max = counted ? kMaxDevicesWithCounters : kMaxDevices;
  if (devices.size() > max) return TooMany("spec.devices", devices.size(), max);
  std::set<std::string> names;
  for (size_t i = 0; i < devices.size(); ++i) {
    const std::string f = "spec.devices[" + std::to_string(i) + "]";
    if (auto e = CheckDevice(devices[i], f, per_device, gates.minor < 35 ? &set_names : nullptr); !e.empty())
      return e;
    if (!names.insert(devices[i]["name"].get<std::string>()).second) {
      return f + ".name: Duplicate value: \"" + devices[i]["name"].get<std::string>() + "\"";
    }
  }
  return "";
}

std::string ValidateResourceSliceUpdate(const Json& updated, const Json& old) {
  const Json& a = jf::Any(updated, "spec");
  const Json& b = jf::Any(old, "spec");
  if (jf::Any(a, "driver") != jf::Any(b, "driver")) return "spec.driver: Invalid value: field is immutable";
  if (jf::Any(jf::Any(a, "pool"), "name") != jf::Any(jf::Any(b, "pool"), "name")) {
    return "spec.pool.name: Invalid value: field is immutable";
  }
  if (jf::Any(a, "nodeName") != jf::Any(b, "nodeName"))
    return "spec.nodeName: Invalid value: field is immutable";
  return "";
}

std::string ValidateDeviceClass(const Json& o) {
  const std::string name = jf::String(jf::Object(o, "metadata"), "name");
  if (!IsDnsSubdomain(name))
    return Invalid("metadata.name", name, "a lowercase RFC 1123 subdomain is required");
  const Json& spec = jf::Find(o, "spec") != nullptr ? o["spec"] : jf::Object(o, "spec");
  if (!spec.is_object()) return Invalid("spec", spec.dump(), "must be an object");
  const Json& sel = jf::Find(spec, "selectors") != nullptr ? spec["selectors"] : jf::Array(spec, "selectors");
  if (!sel.is_array()) return Invalid("spec.selectors", sel.dump(), "must be a list");
  if (sel.size() > 32) return TooMany("spec.selectors", sel.size(), 32);
  for (size_t i = 0; i < sel.size(); ++i) {
    const std::string f = "spec.selectors[" + std::to_string(i) + "].cel.expression";
    if (!sel[i].is_object() || !sel[i].contains("cel") || !sel[i]["cel"].is_object() ||
        !sel[i]["cel"].contains("expression") || !sel[i]["cel"]["expression"].is_string() ||
        sel[i]["cel"]["expression"].get<std::string>().empty()) {
      return Required(f);
    }
    if (sel[i]["cel"]["expression"].get<std::string>().size() > size_t{10} * 1024)
      return f + ": Too long: may not be more than 10240 bytes";
  }
  return "";
}

std::string ValidateResourceClaim(const Json& o) {
  const std::string name = jf::String(jf::Object(o, "metadata"), "name");
  if (!IsDnsSubdomain(name))
    return Invalid("metadata.name", name, "a lowercase RFC 1123 subdomain is required");
  const Json& spec = jf::Find(o, "spec") != nullptr ? o["spec"] : jf::Object(o, "spec");
  const Json& devices = !spec.is_object()                      ? jf::Any(o, "spec")
                        : jf::Find(spec, "devices") != nullptr ? spec["devices"]
                                                               : jf::Object(spec, "devices");
  if (!devices.is_object()) return Invalid("spec.devices", devices.dump(), "must be an object");
  const Json& requests =
      jf::Find(devices, "requests") != nullptr ? devices["requests"] : jf::Array(devices, "requests");
  if (!requests.is_array()) return Invalid("spec.devices.requests", requests.dump(), "must be a list");
  if (requests.size() > 32) return TooMany("spec.devices.requests", requests.size(), 32);
  std::set<std::string> names;
  for (size_t i = 0; i < requests.size(); ++i) {
    const std::string f = "spec.devices.requests[" + std::to_string(i) + "]";
    const Json& r = requests[i];
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string()) return Required(f + ".name");
    if (!IsDnsLabel(r["name"].get<std::string>()))
      return Invalid(f + ".name", Str(r["name"]), "a lowercase RFC 1123 label is required");
    if (!names.insert(r["name"].get<std::string>()).second) return f + ".name: Duplicate value";
    if (r.contains("exactly") == r.contains("firstAvailable")) {
      return f + ": Invalid value: exactly one of `exactly` or `firstAvailable` is required";
    }
    if (r.contains("exactly")) {
      const Json& e = r["exactly"];
      if (!e.is_object() || !e.contains("deviceClassName") || !e["deviceClassName"].is_string() ||
          !IsDnsSubdomain(e["deviceClassName"].get<std::string>())) {
        return Required(f + ".exactly.deviceClassName");
      }
      const Json& mode_field = jf::Any(e, "allocationMode");
      const std::string mode = mode_field.is_null()     ? "ExactCount"
                               : mode_field.is_string() ? mode_field.get<std::string>()
                                                        : mode_field.dump();
      if (mode != "ExactCount" && mode != "All")
        return f + ".exactly.allocationMode: Unsupported value: \"" + mode + "\"";
      if (e.contains("count") && (!e["count"].is_number_integer() || e["count"].get<int64_t>() < 1)) {
        return Invalid(f + ".exactly.count", e["count"].dump(), "must be greater than zero");
      }
    } else if (!r["firstAvailable"].is_array() || r["firstAvailable"].empty() ||
               r["firstAvailable"].size() > 8) {
      return Invalid(f + ".firstAvailable", r["firstAvailable"].dump(), "must have 1 to 8 subrequests");
    }
  }
  // Allocation results name driver, pool and device.
  const Json& status = jf::Object(o, "status");
  if (status.contains("allocation") && status["allocation"].is_object()) {
    const Json& adev = jf::Any(status["allocation"], "devices");
    const Json& results = jf::Find(adev, "results") != nullptr ? adev["results"] : jf::Array(adev, "results");
    if (!results.is_array())
      return Invalid("status.allocation.devices.results", results.dump(), "must be a list");
    for (size_t i = 0; i < results.size(); ++i) {
      const std::string f = "status.allocation.devices.results[" + std::to_string(i) + "]";
      for (const char* k : {"request", "driver", "pool", "device"}) {
        if (!results[i].is_object() || !results[i].contains(k) || !results[i][k].is_string() ||
            results[i][k].get<std::string>().empty()) {
          return Required(f + "." + k);
        }
      }
    }
  }
  return "";
}

std::string ValidatePool(const std::vector<Json>& slices) {
  if (slices.empty()) return "pool: no slices";
  std::map<std::string, std::set<std::string>> sets;  // counter set -> counter names
  int64_t gen = -1;
  for (const auto& s : slices) {
    const Json& pool = jf::Object(jf::Object(s, "spec"), "pool");
    const int64_t g = jf::Int(pool, "generation", -1);
    if (gen >= 0 && g != gen)
      return "pool: slices at generations " + std::to_string(gen) + " and " + std::to_string(g);
    gen = g;
    if (jf::Int(pool, "resourceSliceCount") != static_cast<int64_t>(slices.size())) {
      return "pool: resourceSliceCount " + jf::Any(pool, "resourceSliceCount").dump() + " but " +
             std::to_string(slices.size()) + " slices";
    }
    for (const auto& cs : jf::Array(jf::Object(s, "spec"), "sharedCounters")) {
      const std::string name = jf::String(cs, "name");
      if (sets.count(name)) return "pool: counter set \"" + name + "\" defined twice";
      const Json& counters = jf::Object(cs, "counters");
      for (auto& [c, v] : counters.items()) sets[name].insert(c);
    }
  }
  for (const auto& s : slices) {
    for (const auto& d : jf::Array(jf::Object(s, "spec"), "devices")) {
      for (const auto& cc : jf::Array(d, "consumesCounters")) {
        const std::string set = jf::String(cc, "counterSet");
        auto it = sets.find(set);
        if (it == sets.end())
          return "device " + jf::String(d, "name") + ": counter set \"" + set + "\" not in the pool";
        const Json& counters = jf::Object(cc, "counters");
        for (auto& [c, v] : counters.items()) {
          if (!it->second.count(c))
            return "device " + jf::String(d, "name") + ": counter " + set + "/" + c + " not in the pool";
        }
      }
    }
  }
  return "";
}

}  // namespace hyperaccel::testing
