#include "hyperaccel/testing/apiserver_emulator.h"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <limits>
#include <regex>
#include <sstream>

#include "hyperaccel/common/json_fields.h"
#include "hyperaccel/testing/dra_validation.h"

namespace hyperaccel::testing {
namespace {

struct Kind {
  const char* resource;
  const char* kind;
  const char* api_version;
  const char* group;      // "" for the core group
  const char* qualified;  // "nodes", "hypernodes.topology.volcano.sh", "leases.coordination.k8s.io"
};

const Kind kKinds[] = {
    {"nodes", "Node", "v1", "", "nodes"},
    {"hypernodes", "HyperNode", "topology.volcano.sh/v1alpha1", "topology.volcano.sh",
     "hypernodes.topology.volcano.sh"},
    {"leases", "Lease", "coordination.k8s.io/v1", "coordination.k8s.io", "leases.coordination.k8s.io"},
    {"resourceslices", "ResourceSlice", "resource.k8s.io/v1", "resource.k8s.io",
     "resourceslices.resource.k8s.io"},
    {"deviceclasses", "DeviceClass", "resource.k8s.io/v1", "resource.k8s.io",
     "deviceclasses.resource.k8s.io"},
    {"resourceclaims", "ResourceClaim", "resource.k8s.io/v1", "resource.k8s.io",
     "resourceclaims.resource.k8s.io"},
};

const Kind* FindKind(const std::string& resource) {
  for (const auto& k : kKinds) {
    if (resource == k.resource) return &k;
  }
  return nullptr;
}

std::string Now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json StatusBody(int code, const std::string& reason, const std::string& message, const Kind* kind = nullptr,
                const std::string& name = "") {
  Json s = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason}};
  if (kind) {
    Json d = Json::object();
    if (!name.empty()) d["name"] = name;
    if (*kind->group) d["group"] = kind->group;
    d["kind"] = kind->resource;
    s["details"] = d;
  }
  s["code"] = code;
  return s;
}

void Reply(httplib::Response& res, int code, const Json& body) {
  res.status = code;
  res.set_content(body.dump(), "application/json");
}

void Fail(httplib::Response& res, int code, const std::string& reason, const std::string& message,
          const Kind* kind = nullptr, const std::string& name = "") {
  Reply(res, code, StatusBody(code, reason, message, kind, name));
}

std::string Key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

// Label selector: comma-separated k=v, k==v, k!=v, k, !k.
bool Matches(const std::string& selector, const Json& object) {
  if (selector.empty()) return true;
  Json labels = Json::object();
  if (object.contains("metadata") && object["metadata"].contains("labels"))
    labels = object["metadata"]["labels"];
  std::stringstream ss(selector);
  std::string term;
  while (std::getline(ss, term, ',')) {
    if (term.empty()) continue;
    size_t ne = term.find("!=");
    size_t eq = term.find('=');
    if (ne != std::string::npos) {
      std::string k = term.substr(0, ne), v = term.substr(ne + 2);
      if (labels.contains(k) && labels[k] == v) return false;
    } else if (eq != std::string::npos) {
      std::string k = term.substr(0, eq);
      std::string v = term.substr(term.compare(eq, 2, "==") == 0 ? eq + 2 : eq + 1);
      if (!labels.contains(k) || labels[k] != v) return false;
    } else if (term[0] == '!') {
      if (labels.contains(term.substr(1))) return false;
    } else if (!labels.contains(term)) {
      return false;
    }
  }
  return true;
}

// Field selector: comma-separated path=v, path==v, path!=v over the fields the API supports for
// the resource (metadata.name, metadata.namespace; ResourceSlices also spec.nodeName, spec.driver).
// Returns false with `error` set for an unsupported field.
bool FieldMatches(const std::string& selector, const Json& object, std::string* error = nullptr) {
  if (selector.empty()) return true;
  std::stringstream ss(selector);
  std::string term;
  while (std::getline(ss, term, ',')) {
    if (term.empty()) continue;
    size_t ne = term.find("!=");
    size_t eq = term.find('=');
    if (eq == std::string::npos) {
      if (error) *error = "invalid field selector term \"" + term + "\"";
      return false;
    }
    std::string k = term.substr(0, ne != std::string::npos ? ne : eq);
    std::string v =
        term.substr(ne != std::string::npos ? ne + 2 : (term.compare(eq, 2, "==") == 0 ? eq + 2 : eq + 1));
    std::string have;
    const Json md = json_fields::Object(object, "metadata");
    const Json spec = json_fields::Object(object, "spec");
    if (k == "metadata.name") {
      have = json_fields::String(md, "name");
    } else if (k == "metadata.namespace") {
      have = json_fields::String(md, "namespace");
    } else if (k == "spec.nodeName" && spec.is_object()) {
      have = json_fields::String(spec, "nodeName");
    } else if (k == "spec.driver" && spec.is_object()) {
      have = json_fields::String(spec, "driver");
    } else {
      if (error) *error = "field label not supported: " + k;
      return false;
    }
    if ((ne != std::string::npos) == (have == v)) return false;
  }
  return true;
}

const std::regex kDnsSubdomain(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");
const std::regex kMicroTime(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$)");
const std::regex kLabelValue(R"(^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$)");

// Returns "" when valid, else the field error.
std::string Validate(const std::string& resource, const Json& o, const DraGates& gates) {
  const Json& md = o["metadata"];
  if (md.contains("labels")) {
    if (!md["labels"].is_object()) return "metadata.labels: must be an object";
    for (auto& [k, v] : md["labels"].items()) {
      if (!v.is_string()) return "metadata.labels: Invalid value: " + k + ": must be a string";
      std::string s = v.get<std::string>();
      if (s.size() > 63 || !std::regex_match(s, kLabelValue)) {
        return "metadata.labels: Invalid value: \"" + s +
               "\": a valid label must be an empty string or consist of "
               "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
               "character";
      }
    }
  }
  if (md.contains("annotations")) {
    if (!md["annotations"].is_object()) return "metadata.annotations: must be an object";
    for (auto& [k, v] : md["annotations"].items()) {
      if (!v.is_string()) return "metadata.annotations: Invalid value: " + k + ": must be a string";
    }
  }
  if (resource == "resourceslices") return ValidateResourceSlice(o, gates);
  if (resource == "deviceclasses") return ValidateDeviceClass(o);
  if (resource == "resourceclaims") return ValidateResourceClaim(o);
  if (resource == "hypernodes") {
    if (!std::regex_match(md["name"].get<std::string>(), kDnsSubdomain))
      return "metadata.name: Invalid value";
    if (!o.contains("spec") || !o["spec"].is_object()) return "spec: Required value";
    const Json& spec = o["spec"];
    if (!spec.contains("tier") || !spec["tier"].is_number_integer()) return "spec.tier: Required value";
    if (spec["tier"].get<int64_t>() < 0)
      return "spec.tier: Invalid value: should be greater than or equal to 0";
    if (spec.contains("tierName") && !spec["tierName"].is_string()) return "spec.tierName: must be a string";
    if (!spec.contains("members") || !spec["members"].is_array() || spec["members"].empty()) {
      return "spec.members: Invalid value: should have at least 1 items";
    }
    for (const auto& m : spec["members"]) {
      if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
        return "spec.members.type: Required value";
      std::string t = m["type"];
      if (t != "Node" && t != "HyperNode") return "spec.members.type: Unsupported value: \"" + t + "\"";
      if (!m.contains("selector") || !m["selector"].is_object())
        return "spec.members.selector: Required value";
      const Json& sel = m["selector"];
      int n = sel.contains("exactMatch") + sel.contains("regexMatch") + sel.contains("labelMatch");
      if (n != 1)
        return "spec.members.selector: Invalid value: exactly one of ExactMatch, RegexMatch, LabelMatch";
      if (sel.contains("exactMatch")) {
        const Json& em = sel["exactMatch"];
        if (!em.is_object() || !em.contains("name") || !em["name"].is_string() ||
            !std::regex_match(em["name"].get<std::string>(), kDnsSubdomain)) {
          return "spec.members.selector.exactMatch.name: Invalid value";
        }
      }
    }
  }
  if (resource == "leases" && o.contains("spec")) {
    const Json& spec = o["spec"];
    if (!spec.is_object()) return "spec: must be an object";
    for (const char* f : {"acquireTime", "renewTime"}) {
      if (spec.contains(f) && !spec[f].is_null() &&
          (!spec[f].is_string() || !std::regex_match(spec[f].get<std::string>(), kMicroTime))) {
        return std::string("spec.") + f + ": want RFC 3339 micro time (2006-01-02T15:04:05.000000Z)";
      }
    }
    for (const char* f : {"leaseDurationSeconds", "leaseTransitions"}) {
      if (spec.contains(f) && !spec[f].is_null() && !spec[f].is_number_integer()) {
        return std::string("spec.") + f + ": must be an integer";
      }
    }
    if (spec.contains("holderIdentity") && !spec["holderIdentity"].is_null() &&
        !spec["holderIdentity"].is_string()) {
      return "spec.holderIdentity: must be a string";
    }
  }
  return "";
}

std::string VerbOf(const std::string& method, bool has_name, bool watch) {
  if (method == "GET") return watch ? "watch" : (has_name ? "get" : "list");
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return has_name ? "delete" : "deletecollection";
  return "unknown";
}

bool IsWatch(const httplib::Request& req) {
  if (!req.has_param("watch")) return false;
  std::string w = req.get_param_value("watch");
  return w == "1" || w == "true";
}

}  // namespace

ApiServerEmulator::ApiServerEmulator() = default;

ApiServerEmulator::~ApiServerEmulator() { Stop(); }

std::string ApiServerEmulator::url() const {
  return (tls_cert_.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port_);
}

void ApiServerEmulator::SetTls(std::string cert_file, std::string key_file, std::string client_ca_file) {
  tls_cert_ = std::move(cert_file);
  tls_key_ = std::move(key_file);
  tls_client_ca_ = std::move(client_ca_file);
}

bool ApiServerEmulator::running() const { return server_ != nullptr; }

Status ApiServerEmulator::Start(int port) {
  Stop();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = false;
  }
  if (tls_cert_.empty()) {
    server_ = std::make_unique<httplib::Server>();
  } else {
    server_ = std::make_unique<httplib::SSLServer>(tls_cert_.c_str(), tls_key_.c_str(),
                                                   tls_client_ca_.empty() ? nullptr : tls_client_ca_.c_str());
    if (!server_->is_valid()) {
      server_.reset();
      return InvalidArgument("apiserver emulator: cannot load TLS certificate " + tls_cert_ + " / key " +
                             tls_key_);
    }
  }
  server_->new_task_queue = [] { return new httplib::ThreadPool(48); };
  server_->set_keep_alive_max_count(1000);
  // A real API server answers without Nagle delays; without this a response written as header
  // then body waits for the client's delayed ACK (~40 ms per request on Linux).
  server_->set_tcp_nodelay(true);
  // Requests are recorded before they are answered (a client that got its reply finds its
  // request counted); the status is filled in once the reply is written. httplib runs the
  // pre-routing handler, the handler and the logger of one request on the same worker thread.
  static thread_local uint64_t current_seq = 0;
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    std::string path = req.path;
    if (!req.params.empty()) {
      std::string q;
      for (const auto& [k, v] : req.params) q += (q.empty() ? "?" : "&") + k + "=" + v;
      path += q;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      current_seq = ++request_seq_;
      requests_.push_back({req.method, path, 0, current_seq});
    }
    return PreRoute(req, res) ? httplib::Server::HandlerResponse::Handled
                              : httplib::Server::HandlerResponse::Unhandled;
  });
  auto h = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  server_->Get(".*", h);
  server_->Post(".*", h);
  server_->Put(".*", h);
  server_->Patch(".*", h);
  server_->Delete(".*", h);
  server_->set_logger([this](const httplib::Request&, const httplib::Response& res) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = requests_.rbegin(); it != requests_.rend(); ++it) {
      if (it->seq == current_seq) {
        it->status = res.status;
        break;
      }
    }
  });
  int bound = port == 0 ? server_->bind_to_any_port("127.0.0.1")
                        : (server_->bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0) {
    server_.reset();
    return Unavailable("apiserver emulator: cannot bind 127.0.0.1:" + std::to_string(port));
  }
  port_ = bound;
  thread_ = std::thread([srv = server_.get()] { srv->listen_after_bind(); });
  // stop() is a no-op until the listen loop runs: wait for it, so Stop() right after Start() works.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return Status::Ok();
}

void ApiServerEmulator::Stop() {
  if (!server_) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void ApiServerEmulator::AddToken(const std::string& token, std::set<std::string> permissions) {
  std::lock_guard<std::mutex> lk(mu_);
  tokens_[token] = std::move(permissions);
}

void ApiServerEmulator::InjectFault(Fault fault) {
  std::lock_guard<std::mutex> lk(mu_);
  faults_.push_back(std::move(fault));
}

void ApiServerEmulator::ClearFaults() {
  std::lock_guard<std::mutex> lk(mu_);
  faults_.clear();
}

void ApiServerEmulator::SetDown(bool down) {
  std::lock_guard<std::mutex> lk(mu_);
  down_ = down;
}

void ApiServerEmulator::SetBookmarkInterval(std::chrono::milliseconds interval) {
  std::lock_guard<std::mutex> lk(mu_);
  bookmark_interval_ = interval;
}

void ApiServerEmulator::SetEventWindow(size_t events) {
  std::lock_guard<std::mutex> lk(mu_);
  window_ = std::max<size_t>(1, events);
}

void ApiServerEmulator::CompactHistory() {
  std::lock_guard<std::mutex> lk(mu_);
  events_.clear();
  compacted_rv_ = rv_;
}

std::vector<RequestRecord> ApiServerEmulator::Requests() const {
  std::lock_guard<std::mutex> lk(mu_);
  return requests_;
}

void ApiServerEmulator::ClearRequests() {
  std::lock_guard<std::mutex> lk(mu_);
  requests_.clear();
}

size_t ApiServerEmulator::CountRequests(const std::string& method, const std::string& prefix) const {
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (const auto& r : requests_) {
    if ((method.empty() || r.method == method) && r.path.rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

uint64_t ApiServerEmulator::resource_version() const {
  std::lock_guard<std::mutex> lk(mu_);
  return rv_;
}

bool ApiServerEmulator::WaitStoppable(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lk(mu_);
  return !cv_.wait_for(lk, d, [this] { return stopping_; });
}

// ---- store ------------------------------------------------------------------------------------

Json ApiServerEmulator::Stamp(const std::string& resource, Json o, const std::string& ns, const Json* old) {
  const Kind* k = FindKind(resource);
  o["kind"] = k->kind;
  o["apiVersion"] = k->api_version;
  Json& md = o["metadata"];
  if (!ns.empty()) md["namespace"] = ns;
  md["resourceVersion"] = std::to_string(++rv_);
  if (old) {
    md["uid"] = (*old)["metadata"]["uid"];
    md["creationTimestamp"] = (*old)["metadata"]["creationTimestamp"];
    int64_t gen = json_fields::Int((*old)["metadata"], "generation", 1);
    if (json_fields::Any(o, "spec") != json_fields::Any(*old, "spec")) ++gen;
    if (resource != "nodes") md["generation"] = gen;
  } else {
    char uid[40];
    std::snprintf(uid, sizeof(uid), "00000000-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(++uid_));
    md["uid"] = uid;
    md["creationTimestamp"] = Now();
    if (resource != "nodes") md["generation"] = 1;
  }
  return o;
}

void ApiServerEmulator::Record(const std::string& type, const std::string& resource, const std::string& ns,
                               const Json& object) {
  uint64_t rv = std::stoull(object["metadata"]["resourceVersion"].get<std::string>());
  events_.push_back({rv, type, resource, ns, object});
  while (events_.size() > window_) {
    compacted_rv_ = events_.front().rv;
    events_.erase(events_.begin());
  }
  cv_.notify_all();
}

Json ApiServerEmulator::Upsert(const std::string& resource, Json object, const std::string& ns) {
  std::lock_guard<std::mutex> lk(mu_);
  std::string name = object["metadata"]["name"];
  auto& objs = store_[resource];
  auto it = objs.find(Key(ns, name));
  Json stored = Stamp(resource, std::move(object), ns, it == objs.end() ? nullptr : &it->second);
  Record(it == objs.end() ? "ADDED" : "MODIFIED", resource, ns, stored);
  objs[Key(ns, name)] = stored;
  return stored;
}

void ApiServerEmulator::PutNode(const std::string& name, const std::map<std::string, std::string>& labels) {
  Json node = {{"metadata", {{"name", name}, {"labels", Json::object()}}},
               {"spec", Json::object()},
               {"status", Json::object()}};
  auto cur = Get("nodes", name);
  if (cur) node = *cur;
  for (const auto& [k, v] : labels) node["metadata"]["labels"][k] = v;
  Upsert("nodes", node);
}

std::optional<Json> ApiServerEmulator::Get(const std::string& resource, const std::string& name,
                                           const std::string& ns) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto r = store_.find(resource);
  if (r == store_.end()) return std::nullopt;
  auto it = r->second.find(Key(ns, name));
  if (it == r->second.end()) return std::nullopt;
  return it->second;
}

std::vector<Json> ApiServerEmulator::List(const std::string& resource) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Json> out;
  auto r = store_.find(resource);
  if (r == store_.end()) return out;
  for (const auto& [k, v] : r->second) out.push_back(v);
  return out;
}

bool ApiServerEmulator::Remove(const std::string& resource, const std::string& name, const std::string& ns) {
  std::lock_guard<std::mutex> lk(mu_);
  auto& objs = store_[resource];
  auto it = objs.find(Key(ns, name));
  if (it == objs.end()) return false;
  Json o = it->second;
  objs.erase(it);
  o["metadata"]["resourceVersion"] = std::to_string(++rv_);
  Record("DELETED", resource, ns, o);
  if (resource == "nodes") CollectGarbageLocked(o);
  return true;
}

void ApiServerEmulator::SetServerVersion(int major, int minor) {
  std::lock_guard<std::mutex> lk(mu_);
  version_major_ = major;
  gates_.minor = minor;
}

void ApiServerEmulator::SetDraGates(bool partitionable, bool device_taints) {
  std::lock_guard<std::mutex> lk(mu_);
  gates_.partitionable = partitionable;
  gates_.device_taints = device_taints;
}

DraGates ApiServerEmulator::dra_gates() const {
  std::lock_guard<std::mutex> lk(mu_);
  return gates_;
}

void ApiServerEmulator::Admit(const std::string& resource, Json& object) const {
  if (resource != "resourceslices") return;
  DropDisabledDraFields(object, gates_);
  // The server stamps timeAdded on taints that lack it.
  if (object.contains("spec") && object["spec"].is_object() && object["spec"].contains("devices") &&
      object["spec"]["devices"].is_array()) {
    for (auto& d : object["spec"]["devices"]) {
      if (!d.is_object() || !d.contains("taints") || !d["taints"].is_array()) continue;
      for (auto& t : d["taints"]) {
        if (t.is_object() && !t.contains("timeAdded")) t["timeAdded"] = Now();
      }
    }
  }
}

void ApiServerEmulator::CollectGarbageLocked(const Json& node) {
  // Dependents whose owner reference names this Node (by name and UID) go with it, as the
  // garbage collector of kube-controller-manager does (background propagation).
  const std::string name = json_fields::String(node["metadata"], "name");
  const std::string uid = json_fields::String(node["metadata"], "uid");
  auto& slices = store_["resourceslices"];
  for (auto it = slices.begin(); it != slices.end();) {
    bool owned = false;
    for (const auto& ref : json_fields::Array(it->second["metadata"], "ownerReferences")) {
      if (json_fields::String(ref, "kind") == "Node" && json_fields::String(ref, "name") == name &&
          json_fields::String(ref, "uid") == uid)
        owned = true;
    }
    if (!owned) {
      ++it;
      continue;
    }
    Json o = it->second;
    it = slices.erase(it);
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    Record("DELETED", "resourceslices", "", o);
  }
}

std::vector<Json> ApiServerEmulator::Pool(const std::string& driver, const std::string& pool) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Json> out;
  auto r = store_.find("resourceslices");
  if (r == store_.end()) return out;
  for (const auto& [k, v] : r->second) {
    const Json spec = json_fields::Object(v, "spec");
    if (json_fields::String(spec, "driver") == driver &&
        json_fields::String(json_fields::Object(spec, "pool"), "name") == pool)
      out.push_back(v);
  }
  return out;
}

// ---- HTTP -------------------------------------------------------------------------------------

ApiServerEmulator::Route ApiServerEmulator::ParseRoute(const std::string& path) {
  static const std::regex nodes(R"(^/api/v1/nodes(?:/([^/]+))?/?$)");
  static const std::regex hypernodes(R"(^/apis/topology\.volcano\.sh/v1alpha1/hypernodes(?:/([^/]+))?/?$)");
  static const std::regex leases(
      R"(^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?/?$)");
  static const std::regex slices(R"(^/apis/resource\.k8s\.io/v1/resourceslices(?:/([^/]+))?/?$)");
  static const std::regex classes(R"(^/apis/resource\.k8s\.io/v1/deviceclasses(?:/([^/]+))?/?$)");
  static const std::regex claims(
      R"(^/apis/resource\.k8s\.io/v1/namespaces/([^/]+)/resourceclaims(?:/([^/]+)(/status)?)?/?$)");
  std::smatch m;
  Route r;
  if (std::regex_match(path, m, slices)) {
    r = {"resourceslices", "", m[1].str(), true};
  } else if (std::regex_match(path, m, classes)) {
    r = {"deviceclasses", "", m[1].str(), true};
  } else if (std::regex_match(path, m, claims)) {
    r = {"resourceclaims", m[1].str(), m[2].str(), true};
    r.status = m[3].matched;
  } else if (std::regex_match(path, m, nodes)) {
    r = {"nodes", "", m[1].str(), true};
  } else if (std::regex_match(path, m, hypernodes)) {
    r = {"hypernodes", "", m[1].str(), true};
  } else if (std::regex_match(path, m, leases)) {
    r = {"leases", m[1].str(), m[2].str(), true};
  }
  return r;
}

bool ApiServerEmulator::PreRoute(const httplib::Request& req, httplib::Response& res) {
  std::optional<Fault> fault;
  bool down;
  std::set<std::string> perms;
  bool auth_on;
  bool known_token = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    down = down_;
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if ((it->method.empty() || it->method == req.method) && req.path.rfind(it->path_prefix, 0) == 0) {
        fault = *it;
        if (it->count > 0 && --it->count == 0) faults_.erase(it);
        break;
      }
    }
    auth_on = !tokens_.empty();
    std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0) {
      auto t = tokens_.find(auth.substr(7));
      if (t != tokens_.end()) {
        known_token = true;
        perms = t->second;
      }
    }
  }
  auto drop = [&res] {
    res.status = 200;
    res.set_content_provider(1 << 20, "application/json",
                             [](size_t, size_t, httplib::DataSink&) { return false; });
  };
  if (down) {
    drop();
    return true;
  }
  if (fault) {
    switch (fault->kind) {
      case Fault::Kind::kError500:
        Fail(res, 500, "InternalError", "Internal error occurred: injected fault");
        return true;
      case Fault::Kind::kRetryAfter:
        Fail(res, fault->code, fault->code == 429 ? "TooManyRequests" : "ServiceUnavailable",
             "injected fault: please try again later");
        res.set_header("Retry-After", std::to_string(fault->retry_after_seconds));
        return true;
      case Fault::Kind::kSlow:
        if (!WaitStoppable(fault->delay)) return true;
        break;
      case Fault::Kind::kHang:
        WaitStoppable(fault->delay);
        Fail(res, 504, "Timeout", "injected hang");
        return true;
      case Fault::Kind::kDrop: drop(); return true;
    }
  }
  if (auth_on) {
    if (!known_token) {
      Fail(res, 401, "Unauthorized", "Unauthorized");
      return true;
    }
    Route r = ParseRoute(req.path);
    if (r.ok && !perms.count("*")) {
      std::string verb = VerbOf(req.method, !r.name.empty(), IsWatch(req));
      if (!perms.count(verb + " " + r.resource)) {
        const Kind* k = FindKind(r.resource);
        std::string scope = r.ns.empty() ? "at the cluster scope" : "in the namespace \"" + r.ns + "\"";
        Fail(res, 403, "Forbidden",
             r.resource + (r.name.empty() ? "" : " \"" + r.name + "\"") +
                 " is forbidden: User \"test\" cannot " + verb + " resource \"" + r.resource +
                 "\" in API group \"" + k->group + "\" " + scope,
             k, r.name);
        return true;
      }
    }
  }
  return false;
}

void ApiServerEmulator::Handle(const httplib::Request& req, httplib::Response& res) {
  if (req.path == "/version" && req.method == "GET") {
    std::lock_guard<std::mutex> lk(mu_);
    Json v = {
        {"major", std::to_string(version_major_)},
        {"minor", std::to_string(gates_.minor)},
        {"gitVersion", "v" + std::to_string(version_major_) + "." + std::to_string(gates_.minor) + ".0"},
        {"platform", "linux/amd64"}};
    return Reply(res, 200, v);
  }
  Route r = ParseRoute(req.path);
  if (!r.ok) {
    Fail(res, 404, "NotFound", "the server could not find the requested resource");
    return;
  }
  if (req.method == "GET" && r.name.empty() && IsWatch(req)) {
    ServeWatch(r, req, res);
    return;
  }
  Serve(r, req, res);
}

void ApiServerEmulator::Serve(const Route& r, const httplib::Request& req, httplib::Response& res) {
  const Kind* k = FindKind(r.resource);
  auto not_found = [&] {
    Fail(res, 404, "NotFound", std::string(k->qualified) + " \"" + r.name + "\" not found", k, r.name);
  };
  auto conflict = [&](const std::string& why) {
    Fail(res, 409, "Conflict",
         "Operation cannot be fulfilled on " + std::string(k->qualified) + " \"" + r.name + "\": " + why, k,
         r.name);
  };
  auto invalid = [&](const std::string& name, const std::string& why) {
    Fail(res, 422, "Invalid", std::string(k->kind) + " \"" + name + "\" is invalid: " + why, k, name);
  };
  Json body;
  if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      Fail(res, 400, "BadRequest", "the body of the request was in an unknown format");
      return;
    }
  }
  std::unique_lock<std::mutex> lk(mu_);
  auto& objs = store_[r.resource];
  std::string key = Key(r.ns, r.name);

  if (req.method == "GET") {
    if (!r.name.empty()) {
      auto it = objs.find(key);
      if (it == objs.end()) return not_found();
      return Reply(res, 200, it->second);
    }
    std::string sel = req.has_param("labelSelector") ? req.get_param_value("labelSelector") : "";
    std::string fsel = req.has_param("fieldSelector") ? req.get_param_value("fieldSelector") : "";
    std::string ferr;
    if (!FieldMatches(fsel, Json::object({{"metadata", Json::object()}}), &ferr) && !ferr.empty()) {
      Fail(res, 400, "BadRequest", ferr);
      return;
    }
    Json items = Json::array();
    for (const auto& [kk, v] : objs) {
      if (!r.ns.empty() && json_fields::String(v["metadata"], "namespace") != r.ns) continue;
      if (Matches(sel, v) && FieldMatches(fsel, v)) items.push_back(v);
    }
    Json list = {{"kind", std::string(k->kind) + "List"},
                 {"apiVersion", k->api_version},
                 {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                 {"items", items}};
    return Reply(res, 200, list);
  }

  if (req.method == "POST") {
    if (!r.name.empty()) {
      Fail(res, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
      return;
    }
    if (body.contains("kind") && body["kind"] != k->kind) {
      Fail(res, 400, "BadRequest", "the kind in the body does not match the resource");
      return;
    }
    if (!body.contains("metadata") || !body["metadata"].is_object() || !body["metadata"].contains("name") ||
        !body["metadata"]["name"].is_string() || body["metadata"]["name"].get<std::string>().empty()) {
      return invalid("", "metadata.name: Required value: name or generateName is required");
    }
    std::string name = body["metadata"]["name"];
    if (!json_fields::String(body["metadata"], "resourceVersion").empty()) {
      return invalid(name, "metadata.resourceVersion: Invalid value: must be empty on create");
    }
    Admit(r.resource, body);
    if (std::string why = Validate(r.resource, body, gates_); !why.empty()) return invalid(name, why);
    if (objs.count(Key(r.ns, name))) {
      Fail(res, 409, "AlreadyExists", std::string(k->qualified) + " \"" + name + "\" already exists", k,
           name);
      return;
    }
    Json stored = Stamp(r.resource, body, r.ns, nullptr);
    objs[Key(r.ns, name)] = stored;
    Record("ADDED", r.resource, r.ns, stored);
    return Reply(res, 201, stored);
  }

  if (r.name.empty()) {
    Fail(res, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    return;
  }
  auto it = objs.find(key);

  if (req.method == "PUT") {
    if (!body.contains("metadata") || !body["metadata"].is_object()) body["metadata"] = Json::object();
    std::string name = json_fields::String(body["metadata"], "name");
    if (name != r.name) {
      Fail(res, 400, "BadRequest",
           "the name of the object (" + name + ") does not match the name on the URL (" + r.name + ")");
      return;
    }
    std::string rv;
    if (body["metadata"].contains("resourceVersion") && body["metadata"]["resourceVersion"].is_string()) {
      rv = body["metadata"]["resourceVersion"];
    }
    if (r.status) {
      // The status subresource: only status changes.
      if (it == objs.end()) return not_found();
      Json merged = it->second;
      merged["status"] = json_fields::Object(body, "status");
      body = merged;
      body["metadata"]["resourceVersion"] = rv.empty() ? it->second["metadata"]["resourceVersion"] : Json(rv);
    }
    Admit(r.resource, body);
    if (std::string why = Validate(r.resource, body, gates_); !why.empty()) return invalid(name, why);
    if (it != objs.end() && r.resource == "resourceslices") {
      if (std::string why = ValidateResourceSliceUpdate(body, it->second); !why.empty())
        return invalid(name, why);
    }
    if (it == objs.end()) {
      if (r.resource != "leases") return not_found();
      if (!rv.empty()) return not_found();
      Json stored = Stamp(r.resource, body, r.ns, nullptr);
      objs[key] = stored;
      Record("ADDED", r.resource, r.ns, stored);
      return Reply(res, 201, stored);
    }
    if (rv.empty() && r.resource == "hypernodes") {
      return invalid(name, "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update");
    }
    if (!rv.empty() && rv != it->second["metadata"]["resourceVersion"]) {
      return conflict(
          "the object has been modified; please apply your changes to the latest version and try again");
    }
    if (r.resource != "leases" && r.resource != "nodes" && !r.status)
      body["status"] = json_fields::Object(it->second, "status");
    Json stored = Stamp(r.resource, body, r.ns, &it->second);
    it->second = stored;
    Record("MODIFIED", r.resource, r.ns, stored);
    return Reply(res, 200, stored);
  }

  if (req.method == "PATCH") {
    std::string ct = req.get_header_value("Content-Type");
    if (ct.rfind("application/merge-patch+json", 0) != 0) {
      Fail(res, 415, "UnsupportedMediaType",
           "the body of the request was in an unknown format - accepted media types "
           "include: application/merge-patch+json");
      return;
    }
    if (it == objs.end()) return not_found();
    if (body.contains("metadata") && body["metadata"].is_object() &&
        body["metadata"].contains("resourceVersion") &&
        body["metadata"]["resourceVersion"] != it->second["metadata"]["resourceVersion"]) {
      return conflict(
          "the object has been modified; please apply your changes to the latest version and try again");
    }
    Json patched = it->second;
    patched.merge_patch(body);
    if (!patched.contains("metadata") || !patched["metadata"].is_object())
      patched["metadata"] = Json::object();
    patched["metadata"]["name"] = r.name;
    Admit(r.resource, patched);
    if (std::string why = Validate(r.resource, patched, gates_); !why.empty()) return invalid(r.name, why);
    if (r.resource == "resourceslices") {
      if (std::string why = ValidateResourceSliceUpdate(patched, it->second); !why.empty())
        return invalid(r.name, why);
    }
    if (patched == it->second) return Reply(res, 200, it->second);  // no-op patches do not bump
    Json stored = Stamp(r.resource, patched, r.ns, &it->second);
    it->second = stored;
    Record("MODIFIED", r.resource, r.ns, stored);
    return Reply(res, 200, stored);
  }

  if (req.method == "DELETE") {
    if (it == objs.end()) return not_found();
    if (!req.body.empty()) {
      Json opts = Json::parse(req.body, nullptr, false);
      if (opts.is_discarded()) {
        Fail(res, 400, "BadRequest", "the body of the request was in an unknown format");
        return;
      }
      if (opts.contains("preconditions") && opts["preconditions"].contains("resourceVersion")) {
        std::string want = opts["preconditions"]["resourceVersion"];
        std::string have = it->second["metadata"]["resourceVersion"];
        if (want != have) {
          return conflict("the ResourceVersion in the precondition (" + want +
                          ") does not match the ResourceVersion in record (" + have +
                          "). The object might have been modified");
        }
      }
    }
    Json o = it->second;
    objs.erase(it);
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    Record("DELETED", r.resource, r.ns, o);
    if (r.resource == "nodes") CollectGarbageLocked(o);
    return Reply(res, 200, o);
  }
  Fail(res, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
}

void ApiServerEmulator::ServeWatch(const Route& r, const httplib::Request& req, httplib::Response& res) {
  std::string sel = req.has_param("labelSelector") ? req.get_param_value("labelSelector") : "";
  std::string fsel = req.has_param("fieldSelector") ? req.get_param_value("fieldSelector") : "";
  bool bookmarks =
      req.has_param("allowWatchBookmarks") && req.get_param_value("allowWatchBookmarks") == "true";
  int timeout_s = 1800;
  if (req.has_param("timeoutSeconds")) {
    const std::string v = req.get_param_value("timeoutSeconds");
    char* end = nullptr;
    const long t = std::strtol(v.c_str(), &end, 10);
    if (end == v.c_str() || *end != '\0' || t < 0 || t > std::numeric_limits<int>::max()) {
      Fail(res, 400, "BadRequest", "invalid timeoutSeconds \"" + v + "\"");
      return;
    }
    timeout_s = static_cast<int>(t);
  }
  std::string rv_param = req.has_param("resourceVersion") ? req.get_param_value("resourceVersion") : "";
  const Kind* k = FindKind(r.resource);

  struct State {
    uint64_t from = 0;
    bool initial = false;
    bool gone = false;
    bool done = false;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::steady_clock::time_point next_bookmark;
  };
  auto st = std::make_shared<State>();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (rv_param.empty() || rv_param == "0") {
      st->initial = true;  // synthetic ADDED for everything, then changes
      st->from = rv_;
    } else {
      char* end = nullptr;
      st->from = std::strtoull(rv_param.c_str(), &end, 10);
      if (end == rv_param.c_str() || *end) {
        Fail(res, 400, "BadRequest", "invalid resourceVersion \"" + rv_param + "\"");
        return;
      }
      if (st->from < compacted_rv_) st->gone = true;
    }
    st->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    st->next_bookmark = std::chrono::steady_clock::now() + bookmark_interval_;
  }
  res.status = 200;
  res.set_chunked_content_provider("application/json", [this, st, r, sel, fsel, bookmarks, k](
                                                           size_t, httplib::DataSink& sink) {
    auto write = [&](const std::string& type, const Json& obj) {
      std::string line = Json{{"type", type}, {"object", obj}}.dump() + "\n";
      return sink.write(line.data(), line.size());
    };
    if (st->done) {
      sink.done();
      return true;
    }
    if (st->gone) {
      std::string from;
      {
        std::lock_guard<std::mutex> lk(mu_);
        from = std::to_string(compacted_rv_);
      }
      write("ERROR", StatusBody(410, "Expired",
                                "too old resource version: " + std::to_string(st->from) + " (" + from + ")"));
      st->done = true;
      sink.done();
      return true;
    }
    std::vector<std::pair<std::string, Json>> out;
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (st->initial) {
        st->initial = false;
        auto objs = store_.find(r.resource);
        if (objs != store_.end()) {
          for (const auto& [key, v] : objs->second) {
            if (!r.ns.empty() && json_fields::String(v["metadata"], "namespace") != r.ns) continue;
            if (Matches(sel, v) && FieldMatches(fsel, v)) out.emplace_back("ADDED", v);
          }
        }
      }
      if (out.empty()) {
        auto wake = std::min(st->deadline, st->next_bookmark);
        cv_.wait_until(lk, wake,
                       [&] { return stopping_ || (!events_.empty() && events_.back().rv > st->from); });
      }
      if (stopping_) return false;
      if (st->from < compacted_rv_) {
        st->gone = true;
        return true;
      }
      for (const auto& e : events_) {
        if (e.rv <= st->from) continue;
        st->from = e.rv;
        if (e.resource != r.resource || (!r.ns.empty() && e.ns != r.ns)) continue;
        if (Matches(sel, e.object) && FieldMatches(fsel, e.object)) out.emplace_back(e.type, e.object);
      }
    }
    for (const auto& [type, obj] : out) {
      if (!write(type, obj)) return false;
    }
    auto now = std::chrono::steady_clock::now();
    if (bookmarks && now >= st->next_bookmark) {
      Json bm = {
          {"kind", k->kind},
          {"apiVersion", k->api_version},
          {"metadata", {{"resourceVersion", std::to_string(st->from)}, {"creationTimestamp", nullptr}}}};
      if (!write("BOOKMARK", bm)) return false;
      std::lock_guard<std::mutex> lk(mu_);
      st->next_bookmark = now + bookmark_interval_;
    }
    if (now >= st->deadline) {
      st->done = true;
      sink.done();
    }
    return sink.is_writable();
  });
}

}  // namespace hyperaccel::testing
