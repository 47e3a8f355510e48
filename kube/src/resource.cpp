#include "hyperaccel/kube/resource.h"

#include <charconv>
#include <optional>

namespace hyperaccel::kube {
namespace {

// Leading decimal digits of `s` ("35+" -> 35); nullopt when there are none or they overflow.
std::optional<int> LeadingNumber(std::string_view s) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr == s.data() || v < 0) return std::nullopt;
  return v;
}

const std::string kResourceBase = "/apis/resource.k8s.io/v1";

}  // namespace

std::string ServerVersion::ToString() const {
  std::string s = std::to_string(major) + "." + std::to_string(minor);
  if (!git_version.empty()) s += " (" + git_version + ")";
  return s;
}

Result<ServerVersion> ParseServerVersion(std::string_view body) {
  auto j = ParseObject(body, "/version");
  if (!j.ok()) return j.status();
  ServerVersion v;
  auto text = [&](const char* field) -> std::string {
    auto it = j->find(field);
    return it != j->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  v.git_version = text("gitVersion");
  std::string major = text("major");
  std::string minor = text("minor");
  auto ma = LeadingNumber(major);
  auto mi = LeadingNumber(minor);
  if (!ma || !mi) {
    // Some distributions leave major/minor empty; gitVersion is "v<major>.<minor>.<patch>...".
    std::string_view g = v.git_version;
    if (!g.empty() && g.front() == 'v') g.remove_prefix(1);
    size_t dot = g.find('.');
    if (dot == std::string_view::npos) {
      return InvalidArgument("/version: no usable major/minor (major=\"" + major + "\", minor=\"" + minor +
                             "\", gitVersion=\"" + v.git_version + "\")");
    }
    ma = LeadingNumber(g.substr(0, dot));
    mi = LeadingNumber(g.substr(dot + 1));
    if (!ma || !mi) {
      return InvalidArgument("/version: gitVersion \"" + v.git_version + "\" is not v<major>.<minor>...");
    }
  }
  v.major = *ma;
  v.minor = *mi;
  return v;
}

Result<ServerVersion> DiscoverServerVersion(Client& client) {
  auto r = client.Send("GET", "/version", "", "");
  if (!r.ok()) return r.status();
  if (r->code >= 300) return StatusFromResponse(r->code, r->body, "GET /version");
  return ParseServerVersion(r->body);
}

std::string ResourceSlicesPath() { return kResourceBase + "/resourceslices"; }
std::string ResourceSlicePath(std::string_view name) {
  return ResourceSlicesPath() + "/" + std::string(name);
}
std::string DeviceClassesPath() { return kResourceBase + "/deviceclasses"; }
std::string DeviceClassPath(std::string_view name) { return DeviceClassesPath() + "/" + std::string(name); }
std::string ResourceClaimsPath(std::string_view ns) {
  return kResourceBase + "/namespaces/" + std::string(ns) + "/resourceclaims";
}
std::string ResourceClaimPath(std::string_view ns, std::string_view name) {
  return ResourceClaimsPath(ns) + "/" + std::string(name);
}
std::string ResourceClaimStatusPath(std::string_view ns, std::string_view name) {
  return ResourceClaimPath(ns, name) + "/status";
}

std::string SliceFieldSelector(std::string_view node_name, std::string_view driver) {
  std::string s;
  if (!node_name.empty()) s += "spec.nodeName=" + std::string(node_name);
  if (!driver.empty()) s += (s.empty() ? "" : ",") + std::string("spec.driver=") + std::string(driver);
  return s;
}

std::string WithFieldSelector(std::string path, std::string_view field_selector) {
  if (field_selector.empty()) return path;
  path += path.find('?') == std::string::npos ? "?" : "&";
  path += "fieldSelector=" + QueryEscape(field_selector);
  return path;
}

Result<Json> ListNodeResourceSlices(Client& client, std::string_view node_name, std::string_view driver) {
  return client.List(WithFieldSelector(ResourceSlicesPath(), SliceFieldSelector(node_name, driver)));
}

Result<std::vector<AllocatedDevice>> AllocatedDevices(const Json& claim) {
  std::vector<AllocatedDevice> out;
  if (!claim.is_object()) return InvalidArgument("ResourceClaim: not an object");
  const Json* results = nullptr;
  if (auto st = claim.find("status"); st != claim.end() && st->is_object()) {
    if (auto al = st->find("allocation"); al != st->end() && al->is_object()) {
      if (auto dv = al->find("devices"); dv != al->end() && dv->is_object()) {
        if (auto rs = dv->find("results"); rs != dv->end()) results = &*rs;
      }
    }
  }
  if (!results || results->is_null()) return out;
  if (!results->is_array()) return InvalidArgument("status.allocation.devices.results: not a list");
  for (size_t i = 0; i < results->size(); ++i) {
    const Json& r = (*results)[i];
    std::string where = "status.allocation.devices.results[" + std::to_string(i) + "]";
    if (!r.is_object()) return InvalidArgument(where + ": not an object");
    AllocatedDevice d;
    for (auto [field, dst] : {std::pair{"request", &d.request}, std::pair{"driver", &d.driver},
                              std::pair{"pool", &d.pool}, std::pair{"device", &d.device}}) {
      auto it = r.find(field);
      if (it == r.end() || !it->is_string() || it->get<std::string>().empty()) {
        return InvalidArgument(where + "." + field + ": required string");
      }
      *dst = it->get<std::string>();
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace hyperaccel::kube
