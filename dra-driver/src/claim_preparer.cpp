#include "hyperaccel/dra_driver/claim_preparer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "hyperaccel/common/log.h"
#include "hyperaccel/device_plugin/allocation.h"
#include "hyperaccel/device_plugin/resources.h"
#include "hyperaccel/kube/client.h"
#include "hyperaccel/kube/resource.h"

namespace hyperaccel::dra {
namespace {

namespace dp = device_plugin;

// CDI name rules (the CDI parser): vendor = letter, then [A-Za-z0-9_.-], ending alphanumeric;
// class = letter, then [A-Za-z0-9_.-], ending alphanumeric; device name = alphanumeric, then
// [A-Za-z0-9_.:-], ending alphanumeric.
const std::regex kCdiVendor(R"(^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$)");
const std::regex kCdiClass(R"(^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$)");
const std::regex kDnsSubdomain(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");

// A claim UID goes into file and CDI device names: only [A-Za-z0-9-], at most 128 characters.
bool ValidUid(const std::string& uid) {
  if (uid.empty() || uid.size() > 128) return false;
  return std::all_of(uid.begin(), uid.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-'; });
}

std::string Join(const std::vector<std::string>& items, const char* sep = ",") {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string ClaimName(const ClaimRef& ref) { return ref.ns + "/" + ref.name + " (" + ref.uid + ")"; }

Result<std::vector<MappedDevice>> MapClaim(const Json& claim, const ClaimRef& ref,
                                           const std::vector<PoolDevice>& pool, const std::string& driver,
                                           const std::string& node_name, std::string* reason) {
  auto fail = [&](const char* why, Status st) -> Status {
    *reason = why;
    return st;
  };
  if (!claim.is_object()) return fail("bad_claim", InvalidArgument("ResourceClaim: not an object"));
  auto md = claim.find("metadata");
  if (md == claim.end() || !md->is_object()) {
    return fail("bad_claim", InvalidArgument("ResourceClaim: metadata missing"));
  }
  auto uid = md->find("uid");
  if (uid == md->end() || !uid->is_string()) {
    return fail("bad_claim", InvalidArgument("ResourceClaim: metadata.uid missing"));
  }
  if (uid->get<std::string>() != ref.uid) {
    return fail("uid_mismatch",
                FailedPrecondition("the kubelet asked for UID " + ref.uid + " but the API server has UID " +
                                   uid->get<std::string>() + " (claim deleted and re-created?)"));
  }
  if (auto del = md->find("deletionTimestamp"); del != md->end() && !del->is_null()) {
    return fail("deleting", FailedPrecondition("the claim is being deleted"));
  }
  auto results = kube::AllocatedDevices(claim);
  if (!results.ok()) return fail("bad_claim", results.status());
  if (results->empty()) return fail("not_allocated", FailedPrecondition("the claim is not allocated"));

  std::vector<MappedDevice> out;
  std::map<std::string, std::string> card_owner;  // card -> device, within this claim
  for (const auto& r : *results) {
    if (r.driver != driver) continue;
    if (r.pool != node_name) {
      return fail("foreign_pool", FailedPrecondition("request " + r.request + ": device " + r.device +
                                                     " was allocated from pool " + r.pool +
                                                     ", not from this node's pool " + node_name));
    }
    auto it = std::find_if(pool.begin(), pool.end(), [&](const PoolDevice& d) { return d.name == r.device; });
    if (it == pool.end()) {
      int cards = 0;
      for (const auto& d : pool) cards += d.arc ? 0 : 1;
      return fail("unknown_device",
                  FailedPrecondition("request " + r.request + ": device " + r.device + " is not in pool " +
                                     node_name + " (" + std::to_string(cards) + " cards, " +
                                     std::to_string(pool.size() - static_cast<size_t>(cards)) +
                                     " arcs; slices out of date?)"));
    }
    for (const auto& card : it->card_ids) {
      auto [owner, inserted] = card_owner.emplace(card, r.device);
      if (!inserted) {
        return fail("double_allocation", FailedPrecondition("card " + card + " is in both " + owner->second +
                                                            " and " + r.device + " of this claim"));
      }
    }
    out.push_back({r.request, r.device, it->card_ids});
  }
  if (out.empty()) {
    return fail("not_allocated",
                FailedPrecondition("no device of driver " + driver + " is allocated to the claim"));
  }
  return out;
}

dp::AllocateOptions AllocateOptionsOf(const PreparerOptions& o) {
  dp::AllocateOptions a;
  a.expose_mgmt = o.expose_mgmt;
  a.mount_xrt = o.mount_xrt;
  a.xrt_host_dir = o.xrt_host_dir;
  a.xrt_container_dir = o.xrt_container_dir;
  a.mount_icd = o.mount_icd;
  a.icd_file = o.icd_file;
  return a;
}

dp::ResourceView ViewOf(const hw::Inventory& inv, const std::string& resource) {
  dp::ResourceView view;
  view.resource_name = resource;
  for (const auto& c : inv.cards) {
    dp::DeviceEntry e;
    e.card = c;
    e.healthy = c.health == hw::Health::kHealthy;
    e.reason = c.health_reason.empty() && !e.healthy ? "unhealthy" : c.health_reason;
    view.devices.push_back(std::move(e));
  }
  std::sort(view.devices.begin(), view.devices.end(),
            [](const dp::DeviceEntry& a, const dp::DeviceEntry& b) { return a.card.id < b.card.id; });
  auto graph = placement::GraphFromInventory(inv);
  if (graph.ok()) {
    view.graph = std::move(graph).value();
  } else {
    view.graph_error = graph.status().message();
  }
  return view;
}

std::pair<std::string, std::string> SplitKind(const std::string& kind) {
  auto slash = kind.find('/');
  if (slash == std::string::npos) return {kind, ""};
  return {kind.substr(0, slash), kind.substr(slash + 1)};
}

int CompareVersions(const std::string& a, const std::string& b) {
  int ma = 0, na = 0, pa = 0, mb = 0, nb = 0, pb = 0;
  std::sscanf(a.c_str(), "%d.%d.%d", &ma, &na, &pa);  // NOLINT(cert-err34-c): our own constants
  std::sscanf(b.c_str(), "%d.%d.%d", &mb, &nb, &pb);  // NOLINT(cert-err34-c)
  if (ma != mb) return ma < mb ? -1 : 1;
  if (na != nb) return na < nb ? -1 : 1;
  if (pa != pb) return pa < pb ? -1 : 1;
  return 0;
}

// Checks one health card: present and healthy.
Status CheckCard(const hw::Inventory& inv, const std::string& id, const std::string& device) {
  const hw::Card* c = inv.FindById(id);
  if (c == nullptr) return FailedPrecondition("card " + id + " of " + device + " has vanished from the node");
  if (c->health != hw::Health::kHealthy) {
    return FailedPrecondition("card " + id + " of " + device + " is unhealthy: " +
                              (c->health_reason.empty() ? std::string("unhealthy") : c->health_reason));
  }
  return Status::Ok();
}

std::string ReadFile(const std::string& path, bool* exists, std::string* error) {
  std::error_code ec;
  *exists = std::filesystem::exists(path, ec);
  if (!*exists) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open " + path;
    return "";
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// ---- helpers ----------------------------------------------------------------------------------

ClaimGetter KubeClaimGetter(kube::Client& client) {
  // A kube::Client is not thread-safe; Prepare and Cleanup may run on different threads.
  auto mu = std::make_shared<std::mutex>();
  return [&client, mu](const std::string& ns, const std::string& name) {
    std::lock_guard<std::mutex> lk(*mu);
    return client.Get(kube::ResourceClaimPath(ns, name));
  };
}

void PoolState::Set(hw::Inventory inventory, SliceOptions slices) {
  auto next = std::make_shared<const PoolSnapshot>(PoolSnapshot{std::move(inventory), std::move(slices)});
  std::lock_guard<std::mutex> lk(mu_);
  current_ = std::move(next);
}

std::shared_ptr<const PoolSnapshot> PoolState::Get() const {
  std::lock_guard<std::mutex> lk(mu_);
  return current_;
}

PoolProvider PoolState::Provider() const {
  return [this] { return Get(); };
}

Status ValidatePreparerOptions(const PreparerOptions& o) {
  if (o.driver_name.empty()) return InvalidArgument("driver name: empty");
  if (o.node_name.empty() || o.node_name.size() > 253 || !std::regex_match(o.node_name, kDnsSubdomain)) {
    return InvalidArgument("node name \"" + o.node_name + "\" is not a DNS subdomain (pool names must be)");
  }
  auto [vendor, cls] = SplitKind(o.cdi_kind);
  if (!std::regex_match(vendor, kCdiVendor) || !std::regex_match(cls, kCdiClass)) {
    return InvalidArgument("CDI kind \"" + o.cdi_kind +
                           "\": want <vendor>/<class>, each starting with a letter and ending alphanumeric");
  }
  if (o.cdi_dir.empty() || o.cdi_dir.front() != '/') {
    return InvalidArgument("CDI directory \"" + o.cdi_dir + "\": must be an absolute path");
  }
  if (o.checkpoint_path.empty() || o.checkpoint_path.back() == '/') {
    return InvalidArgument("checkpoint path \"" + o.checkpoint_path + "\": must name a file");
  }
  return Status::Ok();
}

Result<std::vector<MappedDevice>> MapClaimDevices(const Json& claim, const ClaimRef& ref,
                                                  const std::vector<PoolDevice>& pool,
                                                  const std::string& driver, const std::string& node_name) {
  std::string reason;
  return MapClaim(claim, ref, pool, driver, node_name, &reason);
}

std::string MinimumCdiVersion(const Json& spec) {
  std::string v = "0.3.0";
  auto need = [&v](const char* want) {
    if (CompareVersions(want, v) > 0) v = want;
  };
  auto edits_of = [](const Json& holder, std::vector<const Json*>* out) {
    auto e = holder.find("containerEdits");
    if (e != holder.end() && e->is_object()) out->push_back(&*e);
  };
  if (!spec.is_object()) return v;
  std::vector<const Json*> edits;
  edits_of(spec, &edits);
  if (auto a = spec.find("annotations"); a != spec.end() && a->is_object() && !a->empty()) need("0.6.0");
  if (auto k = spec.find("kind"); k != spec.end() && k->is_string()) {
    if (SplitKind(k->get<std::string>()).second.find('.') != std::string::npos) need("0.6.0");
  }
  if (auto devs = spec.find("devices"); devs != spec.end() && devs->is_array()) {
    for (const auto& d : *devs) {
      if (!d.is_object()) continue;
      edits_of(d, &edits);
      if (auto n = d.find("name"); n != d.end() && n->is_string()) {
        const std::string name = n->get<std::string>();
        if (!name.empty() && std::isalpha(static_cast<unsigned char>(name[0])) == 0) need("0.5.0");
      }
      if (auto a = d.find("annotations"); a != d.end() && a->is_object() && !a->empty()) need("0.6.0");
    }
  }
  for (const Json* e : edits) {
    if (auto m = e->find("mounts"); m != e->end() && m->is_array()) {
      for (const auto& x : *m) {
        if (x.is_object() && x.contains("type")) need("0.4.0");
      }
    }
    if (auto n = e->find("deviceNodes"); n != e->end() && n->is_array()) {
      for (const auto& x : *n) {
        if (x.is_object() && x.contains("hostPath")) need("0.5.0");
      }
    }
    if (e->contains("intelRdt")) need("0.7.0");
    if (auto g = e->find("additionalGids"); g != e->end() && g->is_array() && !g->empty()) need("0.7.0");
    if (e->contains("netDevices")) need("1.1.0");
  }
  return v;
}

Result<ClaimCdiSpec> RenderClaimSpec(const std::string& claim_uid, const std::vector<MappedDevice>& devices,
                                     const hw::Inventory& inventory, const PreparerOptions& options) {
  if (!ValidUid(claim_uid)) return InvalidArgument("claim UID \"" + claim_uid + "\" is not a UID");
  if (devices.empty()) return InvalidArgument("no devices to prepare");
  const dp::ResourceView view = ViewOf(inventory, options.driver_name);
  const dp::AllocateOptions alloc = AllocateOptionsOf(options);

  // The claim's cards: each device's cards in link order, devices in allocation order.
  std::vector<std::string> all;
  for (const auto& d : devices) {
    for (const auto& id : d.card_ids) {
      if (auto st = CheckCard(inventory, id, d.device); !st.ok()) return st;
      all.push_back(id);
    }
  }
  auto claim_alloc = dp::BuildAllocation(view, all, alloc);
  if (!claim_alloc.ok()) return claim_alloc.status();
  std::vector<std::string> serials;
  serials.reserve(all.size());
  for (const auto& id : all) serials.push_back(inventory.FindById(id)->serial);
  std::map<std::string, std::string> env = claim_alloc->envs;
  env[dp::kEnvVisibleDevices] = Join(all);
  env[dp::kEnvDeviceSerials] = Join(serials);
  env[dp::kEnvRingOrder] = Join(all);
  Json device_env = Json::array();
  Json spec_env = Json::array();
  for (const auto& [k, v] : env) {
    std::string entry = k;
    entry += '=';
    entry += v;
    (k == dp::kEnvXilinxXrt ? spec_env : device_env).push_back(std::move(entry));
  }

  ClaimCdiSpec out;
  Json cdi_devices = Json::array();
  for (const auto& d : devices) {
    auto a = dp::BuildAllocation(view, d.card_ids, alloc);
    if (!a.ok()) return a.status().WithContext("device " + d.device);
    // Device nodes in the device's link order (BuildAllocation sorts by ID).
    Json nodes = Json::array();
    for (const auto& id : d.card_ids) {
      const hw::Card* c = inventory.FindById(id);
      for (const auto& n : a->devices) {
        if (n.host_path != c->render_node && n.host_path != c->mgmt_node) continue;
        Json node = {{"path", n.container_path}, {"permissions", n.permissions}};
        if (n.host_path != n.container_path) node["hostPath"] = n.host_path;
        nodes.push_back(std::move(node));
      }
    }
    Json edits = {{"env", device_env}};
    if (!nodes.empty()) edits["deviceNodes"] = nodes;
    const std::string name = claim_uid + "-" + d.device;
    cdi_devices.push_back({{"name", name}, {"containerEdits", edits}});
    out.cdi_ids.push_back(options.cdi_kind + "=" + name);
  }
  Json spec_edits = Json::object();
  if (!spec_env.empty()) spec_edits["env"] = spec_env;
  Json mounts = Json::array();
  for (const auto& m : claim_alloc->mounts) {
    const bool dir = m.host_path == options.xrt_host_dir && options.mount_xrt;
    mounts.push_back({{"hostPath", m.host_path},
                      {"containerPath", m.container_path},
                      {"type", "bind"},
                      {"options", {m.read_only ? "ro" : "rw", "nosuid", "nodev", dir ? "rbind" : "bind"}}});
  }
  if (!mounts.empty()) spec_edits["mounts"] = mounts;
  Json spec = {{"cdiVersion", "0.3.0"}, {"kind", options.cdi_kind}, {"devices", cdi_devices}};
  if (!spec_edits.empty()) spec["containerEdits"] = spec_edits;
  spec["cdiVersion"] = MinimumCdiVersion(spec);
  // Replace, not throw, on bytes that are not UTF-8 (a serial read from a broken EEPROM).
  out.content = spec.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  auto [vendor, cls] = SplitKind(options.cdi_kind);
  out.path =
      (std::filesystem::path(options.cdi_dir) / (vendor + "-" + cls + "_" + claim_uid + ".json")).string();
  return out;
}

// ---- the preparer -----------------------------------------------------------------------------

struct CdiClaimPreparer::Metrics {
  explicit Metrics(metrics::Registry& r)
      : prepares(r.AddCounter("hyperaccel_dra_prepares_total",
                              "claims prepared (NodePrepareResources), by result", {"result"})),
        unprepares(r.AddCounter("hyperaccel_dra_unprepares_total",
                                "claims unprepared (NodeUnprepareResources), by result", {"result"})),
        errors(r.AddCounter("hyperaccel_dra_prepare_errors_total", "failed claim preparations, by reason",
                            {"reason"})),
        latency(r.AddHistogram("hyperaccel_dra_prepare_seconds",
                               "time to prepare one claim (API read, CDI spec, checkpoint fsyncs)", {},
                               metrics::Histogram::LatencyBuckets())),
        prepared(r.AddGauge("hyperaccel_dra_prepared_claims", "claims prepared on this node (checkpoint)")),
        recreated(r.AddCounter("hyperaccel_dra_cdi_specs_recreated_total",
                               "CDI specs written again for a claim already prepared (lost on reboot)")),
        cleaned(r.AddCounter("hyperaccel_dra_claims_cleaned_up_total",
                             "prepared claims unprepared because their ResourceClaim is gone")) {}
  metrics::Counter& prepares;
  metrics::Counter& unprepares;
  metrics::Counter& errors;
  metrics::Histogram& latency;
  metrics::Gauge& prepared;
  metrics::Counter& recreated;
  metrics::Counter& cleaned;
};

CdiClaimPreparer::CdiClaimPreparer(PreparerOptions options, ClaimGetter get_claim, PoolProvider pool)
    : options_(std::move(options)), get_claim_(std::move(get_claim)), pool_(std::move(pool)) {
  metrics::Registry* reg = options_.registry;
  if (reg == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    reg = own_registry_.get();
  }
  metrics_ = std::make_unique<Metrics>(*reg);
  recovery_ = ValidatePreparerOptions(options_);
  if (recovery_.ok()) recovery_ = Recover();
}

CdiClaimPreparer::~CdiClaimPreparer() = default;

std::string CdiClaimPreparer::SpecPath(const std::string& uid) const {
  auto [vendor, cls] = SplitKind(options_.cdi_kind);
  return (std::filesystem::path(options_.cdi_dir) / (vendor + "-" + cls + "_" + uid + ".json")).string();
}

Status CdiClaimPreparer::Save() {
  return WriteFileDurable(options_.checkpoint_path, SerializeCheckpoint(checkpoint_));
}

void CdiClaimPreparer::UpdateGauge() {
  size_t completed = 0;
  for (const auto& [uid, e] : checkpoint_.claims) completed += e.state == PrepareState::kCompleted;
  metrics_->prepared.Set(static_cast<double>(completed));
}

Checkpoint CdiClaimPreparer::Snapshot() const {
  std::lock_guard<std::mutex> lk(mu_);
  return checkpoint_;
}

Status CdiClaimPreparer::Recover() {
  if (auto st = ValidatePreparerOptions(options_); !st.ok()) return st;
  std::lock_guard<std::mutex> lk(mu_);
  checkpoint_.claims.clear();
  const std::string& path = options_.checkpoint_path;
  bool exists = false;
  std::string read_error;
  const std::string text = ReadFile(path, &exists, &read_error);
  if (!read_error.empty()) {
    HA_LOG(kError, "cannot read the checkpoint").kv("path", path).kv("error", read_error);
    return Unavailable("checkpoint " + path + ": " + read_error);
  }
  Status result = Status::Ok();
  if (!exists) {
    HA_LOG(kInfo, "no checkpoint yet; no claims prepared").kv("path", path);
  } else {
    auto parsed = ParseCheckpoint(text);
    if (parsed.ok()) {
      for (const auto& [uid, e] : parsed->claims) {
        if (!ValidUid(uid)) {
          parsed = InvalidArgument("checkpoint: claims[" + uid + "]: not a claim UID");
          break;
        }
      }
    }
    if (!parsed.ok()) {
      std::string aside = path + ".corrupt-" +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
      std::error_code ec;
      // Never overwrite an earlier corrupt copy (two in one second).
      for (int n = 1; std::filesystem::exists(aside, ec); ++n) aside += "." + std::to_string(n);
      std::filesystem::rename(path, aside, ec);
      HA_LOG(kError, "checkpoint unreadable; moved aside, starting with no prepared claims")
          .kv("path", path)
          .kv("moved_to", ec ? std::string("(rename failed: ") + ec.message() + ")" : aside)
          .kv("error", parsed.status().message());
      result = FailedPrecondition("checkpoint " + path + " is corrupt (" + parsed.status().message() +
                                  "); moved to " + aside + " and started empty");
    } else {
      checkpoint_ = std::move(parsed).value();
    }
  }
  // Roll back half-done preparations: their CDI spec may or may not be there.
  bool changed = false;
  for (auto it = checkpoint_.claims.begin(); it != checkpoint_.claims.end();) {
    if (it->second.state == PrepareState::kCompleted) {
      ++it;
      continue;
    }
    if (auto st = RemoveFileDurable(SpecPath(it->first)); !st.ok()) {
      HA_LOG(kError, "cannot roll back a half-done prepare").kv("uid", it->first).kv("error", st.message());
      if (result.ok()) result = st;
      ++it;
      continue;
    }
    HA_LOG(kWarn, "rolled back a half-done prepare")
        .kv("claim", it->second.ns + "/" + it->second.name)
        .kv("uid", it->first);
    it = checkpoint_.claims.erase(it);
    changed = true;
  }
  if (changed) {
    if (auto st = Save(); !st.ok() && result.ok()) result = st;
  }
  UpdateGauge();
  HA_LOG(kInfo, "checkpoint loaded").kv("path", path).kv("claims", checkpoint_.claims.size());
  return result;
}

std::map<std::string, ClaimPrepareResult> CdiClaimPreparer::Prepare(const std::vector<ClaimRef>& claims) {
  std::map<std::string, ClaimPrepareResult> out;
  std::lock_guard<std::mutex> lk(mu_);
  const auto pool = pool_ ? pool_() : nullptr;
  Result<std::vector<PoolDevice>> devices = Unavailable("no hardware scan yet");
  if (pool) devices = PoolDevices(pool->inventory, pool->slices);
  for (const auto& ref : claims) {
    const auto start = std::chrono::steady_clock::now();
    std::string reason;
    ClaimPrepareResult r;
    if (!recovery_.ok() && recovery_.code() == StatusCode::kInvalidArgument) {
      r.error = "driver misconfigured: " + recovery_.message();
      reason = "config";
    } else if (!ValidUid(ref.uid)) {
      r.error = "claim " + ref.ns + "/" + ref.name + ": \"" + ref.uid + "\" is not a claim UID";
      reason = "bad_request";
    } else {
      r = PrepareOne(ref, pool.get(), devices.ok() ? &*devices : nullptr, &reason);
      if (!r.error.empty() && !devices.ok() && reason == "no_inventory") {
        r.error += ": " + devices.status().message();
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics_->latency.Observe({}, secs);
    if (r.error.empty()) {
      metrics_->prepares.Inc({"ok"});
    } else {
      metrics_->prepares.Inc({"error"});
      metrics_->errors.Inc({reason.empty() ? "other" : reason});
      HA_LOG(kWarn, "prepare failed").kv("claim", ClaimName(ref)).kv("reason", reason).kv("error", r.error);
      r.devices.clear();
    }
    out[ref.uid] = std::move(r);
  }
  UpdateGauge();
  return out;
}

ClaimPrepareResult CdiClaimPreparer::Replay(const ClaimRef& ref, const CheckpointEntry& entry,
                                            const PoolSnapshot* pool, std::string* reason) {
  ClaimPrepareResult r;
  if (entry.ns != ref.ns || entry.name != ref.name) {
    *reason = "uid_mismatch";
    r.error = "claim " + ClaimName(ref) + ": UID already prepared for claim " + entry.ns + "/" + entry.name;
    return r;
  }
  const std::string path = SpecPath(ref.uid);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    // Lost (a reboot empties /var/run/cdi): write it again for the same cards.
    if (pool == nullptr) {
      *reason = "no_inventory";
      r.error = "claim " + ClaimName(ref) + ": CDI spec missing and no hardware scan yet to re-create it";
      return r;
    }
    std::vector<MappedDevice> mapped;
    for (const auto& d : entry.devices) mapped.push_back({d.request, d.device, d.cards});
    auto spec = RenderClaimSpec(ref.uid, mapped, pool->inventory, options_);
    if (!spec.ok()) {
      *reason = "recreate";
      r.error = "claim " + ClaimName(ref) + ": cannot re-create its CDI spec: " + spec.status().message();
      return r;
    }
    if (auto st = WriteFileAtomic(spec->path, spec->content); !st.ok()) {
      *reason = "cdi_write";
      r.error = "claim " + ClaimName(ref) + ": " + st.message();
      return r;
    }
    metrics_->recreated.Inc();
    HA_LOG(kInfo, "re-created the CDI spec of a prepared claim").kv("claim", ClaimName(ref)).kv("spec", path);
  }
  for (const auto& d : entry.devices) r.devices.push_back({{d.request}, d.pool, d.device, d.cdi_device_ids});
  HA_LOG(kDebug, "claim already prepared").kv("claim", ClaimName(ref));
  return r;
}

ClaimPrepareResult CdiClaimPreparer::PrepareOne(const ClaimRef& ref, const PoolSnapshot* pool,
                                                const std::vector<PoolDevice>* devices, std::string* reason) {
  ClaimPrepareResult r;
  auto fail = [&](const char* why, const std::string& msg) {
    *reason = why;
    r.error = "claim " + ClaimName(ref) + ": " + msg;
    return r;
  };
  if (auto it = checkpoint_.claims.find(ref.uid); it != checkpoint_.claims.end()) {
    if (it->second.state == PrepareState::kCompleted) return Replay(ref, it->second, pool, reason);
    if (auto st = UnprepareLocked(ref.uid); !st.ok()) return fail("rollback", st.message());
  }
  if (pool == nullptr || devices == nullptr) return fail("no_inventory", "cannot map devices to cards");
  auto claim = get_claim_(ref.ns, ref.name);
  if (!claim.ok()) {
    if (claim.status().code() == StatusCode::kNotFound) {
      return fail("claim_not_found", "not found in the API server (deleted, or already unprepared?)");
    }
    return fail("api", "cannot read the claim: " + claim.status().message());
  }
  auto mapped = MapClaim(*claim, ref, *devices, options_.driver_name, options_.node_name, reason);
  if (!mapped.ok()) {
    r.error = "claim " + ClaimName(ref) + ": " + mapped.status().message();
    return r;
  }
  // Health, and never two claims on one card.
  for (const auto& d : *mapped) {
    for (const auto& id : d.card_ids) {
      if (auto st = CheckCard(pool->inventory, id, d.device); !st.ok())
        return fail("unhealthy", st.message());
      for (const auto& [uid, e] : checkpoint_.claims) {
        if (uid == ref.uid) continue;
        for (const auto& od : e.devices) {
          if (std::find(od.cards.begin(), od.cards.end(), id) != od.cards.end()) {
            std::string msg = "card " + id + " of " + d.device + " is already prepared for claim ";
            msg += e.ns + "/" + e.name;
            msg += " (" + uid + ", device " + od.device + ")";
            return fail("in_use", msg);
          }
        }
      }
    }
  }
  auto spec = RenderClaimSpec(ref.uid, *mapped, pool->inventory, options_);
  if (!spec.ok()) return fail("allocation", spec.status().message());

  CheckpointEntry entry;
  entry.ns = ref.ns;
  entry.name = ref.name;
  entry.state = PrepareState::kStarted;
  for (size_t i = 0; i < mapped->size(); ++i) {
    const auto& m = (*mapped)[i];
    entry.devices.push_back({m.request, options_.node_name, m.device, m.card_ids, {spec->cdi_ids[i]}});
  }
  checkpoint_.claims[ref.uid] = entry;
  if (auto st = Save(); !st.ok()) {
    checkpoint_.claims.erase(ref.uid);
    return fail("checkpoint", st.message());
  }
  if (auto st = WriteFileAtomic(spec->path, spec->content); !st.ok()) {
    if (auto rb = UnprepareLocked(ref.uid); !rb.ok()) {
      HA_LOG(kError, "rollback failed").kv("claim", ClaimName(ref)).kv("error", rb.message());
    }
    return fail("cdi_write", st.message());
  }
  checkpoint_.claims[ref.uid].state = PrepareState::kCompleted;
  if (auto st = Save(); !st.ok()) {
    checkpoint_.claims[ref.uid].state = PrepareState::kStarted;
    if (auto rb = UnprepareLocked(ref.uid); !rb.ok()) {
      HA_LOG(kError, "rollback failed").kv("claim", ClaimName(ref)).kv("error", rb.message());
    }
    return fail("checkpoint", st.message());
  }
  std::string what;
  for (const auto& d : entry.devices) {
    if (!what.empty()) what += "; ";
    what += d.device + " -> cards " + Join(d.cards);
  }
  HA_LOG(kInfo, "prepared claim " + ref.ns + "/" + ref.name + " (" + ref.uid + "): " + what)
      .kv("spec", spec->path);
  for (const auto& d : entry.devices) r.devices.push_back({{d.request}, d.pool, d.device, d.cdi_device_ids});
  return r;
}

Status CdiClaimPreparer::UnprepareLocked(const std::string& uid) {
  auto it = checkpoint_.claims.find(uid);
  if (it == checkpoint_.claims.end()) return Status::Ok();
  if (auto st = RemoveFileDurable(SpecPath(uid)); !st.ok()) return st;
  CheckpointEntry saved = std::move(it->second);
  checkpoint_.claims.erase(it);
  if (auto st = Save(); !st.ok()) {
    checkpoint_.claims[uid] = std::move(saved);
    return st;
  }
  return Status::Ok();
}

std::map<std::string, std::string> CdiClaimPreparer::Unprepare(const std::vector<ClaimRef>& claims) {
  std::map<std::string, std::string> out;
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& ref : claims) {
    auto it = checkpoint_.claims.find(ref.uid);
    if (it == checkpoint_.claims.end()) {
      HA_LOG(kDebug, "unprepare of an unknown claim").kv("claim", ClaimName(ref));
      metrics_->unprepares.Inc({"ok"});
      out[ref.uid] = "";
      continue;
    }
    std::string cards;
    for (const auto& d : it->second.devices)
      cards += (cards.empty() ? "" : "; ") + d.device + " -> cards " + Join(d.cards);
    if (auto st = UnprepareLocked(ref.uid); !st.ok()) {
      metrics_->unprepares.Inc({"error"});
      HA_LOG(kWarn, "unprepare failed").kv("claim", ClaimName(ref)).kv("error", st.message());
      out[ref.uid] = "claim " + ClaimName(ref) + ": " + st.message();
      continue;
    }
    metrics_->unprepares.Inc({"ok"});
    HA_LOG(kInfo, "unprepared claim " + ref.ns + "/" + ref.name + " (" + ref.uid + "): released " + cards);
    out[ref.uid] = "";
  }
  UpdateGauge();
  return out;
}

Result<int> CdiClaimPreparer::Cleanup() {
  if (!get_claim_) return FailedPrecondition("no claim getter");
  std::vector<std::pair<std::string, CheckpointEntry>> completed;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [uid, e] : checkpoint_.claims) {
      if (e.state == PrepareState::kCompleted) completed.emplace_back(uid, e);
    }
  }
  int removed = 0;
  Status last = Status::Ok();
  for (const auto& [uid, e] : completed) {
    auto claim = get_claim_(e.ns, e.name);
    std::string why;
    if (!claim.ok()) {
      if (claim.status().code() != StatusCode::kNotFound) {
        HA_LOG(kWarn, "cleanup: cannot read claim; keeping it")
            .kv("claim", e.ns + "/" + e.name)
            .kv("error", claim.status().message());
        continue;
      }
      why = "claim deleted";
    } else {
      std::string current;
      if (claim->is_object()) {
        auto md = claim->find("metadata");
        if (md != claim->end() && md->is_object()) {
          auto u = md->find("uid");
          if (u != md->end() && u->is_string()) current = u->get<std::string>();
        }
      }
      if (current.empty() || current == uid) continue;
      why = "claim re-created with UID " + current;
    }
    std::lock_guard<std::mutex> lk(mu_);
    auto it = checkpoint_.claims.find(uid);
    if (it == checkpoint_.claims.end() || it->second.state != PrepareState::kCompleted) continue;
    if (auto st = UnprepareLocked(uid); !st.ok()) {
      HA_LOG(kWarn, "cleanup: cannot unprepare").kv("claim", e.ns + "/" + e.name).kv("error", st.message());
      last = st;
      continue;
    }
    ++removed;
    metrics_->cleaned.Inc();
    HA_LOG(kInfo, "cleanup: unprepared a claim that is gone")
        .kv("claim", e.ns + "/" + e.name + " (" + uid + ")")
        .kv("why", why);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    UpdateGauge();
  }
  if (!last.ok() && removed == 0) return last;
  return removed;
}

}  // namespace hyperaccel::dra
