#include "hyperaccel/dra_driver/publisher.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "hyperaccel/common/json_fields.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/shutdown.h"

namespace hyperaccel::dra {
namespace {

// The parts of a slice the publisher owns, with what the server adds removed (taint timeAdded)
// and the generation left out (compared separately).
Json Comparable(const Json& slice) {
  Json c = Json::object();
  const Json& md = json_fields::Object(slice, "metadata");
  c["labels"] = json_fields::Object(md, "labels");
  c["ownerReferences"] = json_fields::Array(md, "ownerReferences");
  Json spec = json_fields::Object(slice, "spec");
  if (spec.contains("pool") && spec["pool"].is_object()) spec["pool"].erase("generation");
  if (spec.contains("devices") && spec["devices"].is_array()) {
    for (auto& d : spec["devices"]) {
      if (!d.is_object() || !d.contains("taints") || !d["taints"].is_array()) continue;
      for (auto& t : d["taints"]) {
        if (t.is_object()) t.erase("timeAdded");
      }
    }
  }
  c["spec"] = spec;
  return c;
}

int64_t GenerationOf(const Json& slice) {
  const Json* g = nullptr;
  if (auto s = slice.find("spec"); s != slice.end() && s->is_object()) {
    if (auto p = s->find("pool"); p != s->end() && p->is_object()) {
      if (auto it = p->find("generation"); it != p->end()) g = &*it;
    }
  }
  return g && g->is_number_integer() ? g->get<int64_t>() : 0;
}

std::string NameOf(const Json& o) {
  if (auto md = o.find("metadata"); md != o.end() && md->is_object()) {
    if (auto n = md->find("name"); n != md->end() && n->is_string()) return n->get<std::string>();
  }
  return "";
}

bool HasConsumedCounters(const Json& slice) {
  const Json& spec = json_fields::Object(slice, "spec");
  if (spec.contains("sharedCounters")) return true;
  for (const auto& d : json_fields::Array(spec, "devices")) {
    if (d.is_object() && d.contains("consumesCounters")) return true;
  }
  return false;
}

bool HasTaints(const Json& slice) {
  for (const auto& d : json_fields::Array(json_fields::Object(slice, "spec"), "devices")) {
    if (d.is_object() && d.contains("taints")) return true;
  }
  return false;
}

// Sleeps `d` in small steps; false when `stop` was set meanwhile (or the process is shutting down).
bool SleepUnless(const std::atomic<bool>* stop, std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!stop->load() && !shutdown::Requested()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
  return false;
}

}  // namespace

Result<Tristate> ParseTristate(const std::string& value, const std::string& flag) {
  if (value == "auto") return Tristate::kAuto;
  if (value == "true" || value == "on" || value == "yes") return Tristate::kOn;
  if (value == "false" || value == "off" || value == "no") return Tristate::kOff;
  return InvalidArgument("--" + flag + "=" + value + ": want auto, true or false");
}

Publisher::Publisher(kube::Client* client, PublisherOptions options, metrics::Registry* registry)
    : client_(client), options_(std::move(options)) {
  if (registry) {
    writes_metric_ = &registry->AddCounter("hyperaccel_dra_slice_writes_total",
                                           "ResourceSlice and node-label writes by verb", {"verb"});
    devices_metric_ = &registry->AddGauge("hyperaccel_dra_devices", "Devices published, by kind", {"kind"});
  }
}

bool Publisher::IsOwnWrite(const std::string& resource_version) const {
  std::lock_guard<std::mutex> lk(own_mu_);
  return own_writes_.count(resource_version) > 0;
}

void Publisher::NoteWrite(const Json& response) {
  std::string rv = kube::ResourceVersionOf(response);
  if (rv.empty()) return;
  std::lock_guard<std::mutex> lk(own_mu_);
  if (own_writes_.size() > 4096) own_writes_.clear();
  own_writes_.insert(rv);
}

Status Publisher::Detect() {
  auto v = kube::DiscoverServerVersion(*client_);
  if (!v.ok()) return v.status().WithContext("server version");
  version_ = *v;
  if (!version_.AtLeast(1, 34)) {
    return FailedPrecondition("API server " + version_.ToString() +
                              " does not serve resource.k8s.io/v1 (Kubernetes 1.34 or later is needed)");
  }
  features_.layout = version_.AtLeast(1, 35) ? CounterLayout::kSplit : CounterLayout::kCombined;
  features_.partitionable = options_.partitionable != Tristate::kOff;
  features_.device_taints = options_.device_taints != Tristate::kOff;
  detected_ = true;
  HA_LOG(kInfo, "API server detected")
      .kv("version", version_.ToString())
      .kv("counter_layout", features_.layout == CounterLayout::kSplit ? "split" : "combined")
      .kv("partitionable", features_.partitionable)
      .kv("device_taints", features_.device_taints);
  return Status::Ok();
}

bool Publisher::CheckDropped(const Json& sent, const Json& response) {
  bool changed = false;
  if (options_.partitionable == Tristate::kAuto && features_.partitionable && HasConsumedCounters(sent) &&
      !HasConsumedCounters(response)) {
    features_.partitionable = false;
    changed = true;
    HA_LOG(kWarn,
           "partitionable devices are off on the API server (gate DRAPartitionableDevices); "
           "publishing cards only, no linked arcs")
        .kv("node", options_.node_name)
        .kv("label", std::string(kArcsLabel) + "=false");
  }
  if (options_.device_taints == Tristate::kAuto && features_.device_taints && HasTaints(sent) &&
      !HasTaints(response)) {
    features_.device_taints = false;
    changed = true;
    HA_LOG(kWarn,
           "device taints are off on the API server (gate DRADeviceTaints); unhealthy cards "
           "and their arcs are withdrawn instead of tainted")
        .kv("node", options_.node_name);
  }
  return changed;
}

SliceOptions Publisher::slice_options() const {
  SliceOptions so;
  so.node_name = options_.node_name;
  so.arc_sizes = options_.arc_sizes;
  so.alignment = options_.alignment;
  so.features = features_;
  return so;
}

Status Publisher::Sync(const hw::Inventory& inventory) {
  ++stats_.syncs;
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool retry = false;
    Status st = SyncOnce(inventory, &retry);
    if (!st.ok()) {
      if (st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kDeadlineExceeded)
        detected_ = false;
      return st;
    }
    if (!retry) return st;
  }
  return Internal("slices did not settle after feature fallback");
}

Status Publisher::SyncOnce(const hw::Inventory& inventory, bool* retry) {
  if (!detected_) {
    if (auto st = Detect(); !st.ok()) return st;
  }
  const std::string& node = options_.node_name;
  auto node_obj = client_->Get("/api/v1/nodes/" + node);
  if (!node_obj.ok()) {
    if (node_obj.status().code() == StatusCode::kNotFound) {
      return FailedPrecondition("node " + node + " does not exist; nothing published until it does");
    }
    return node_obj.status();
  }
  const std::string uid = json_fields::String(json_fields::Object(*node_obj, "metadata"), "uid");

  SliceOptions so = slice_options();
  so.node_uid = uid;
  auto built = BuildSlices(inventory, so);
  if (!built.ok()) return built.status();
  std::vector<Json>& desired = built->slices;

  auto list = kube::ListNodeResourceSlices(*client_, node, kDriverName);
  if (!list.ok()) return list.status().WithContext("list slices");
  std::map<std::string, Json> existing;  // name -> object, this pool only
  int64_t gen = 0;
  for (const auto& item : json_fields::Array(*list, "items")) {
    const Json& spec = json_fields::Object(item, "spec");
    if (json_fields::String(json_fields::Object(spec, "pool"), "name") != node) continue;
    existing[NameOf(item)] = item;
    gen = std::max(gen, GenerationOf(item));
  }

  // What differs at the current generation.
  std::vector<size_t> differing;
  bool same_names = existing.size() == desired.size();
  for (size_t i = 0; i < desired.size(); ++i) {
    auto it = existing.find(NameOf(desired[i]));
    if (it == existing.end()) {
      same_names = false;
      differing.push_back(i);
      continue;
    }
    Json want = desired[i];
    if (GenerationOf(it->second) != gen || Comparable(it->second) != Comparable(want)) differing.push_back(i);
  }
  for (const auto& [name, obj] : existing) {
    if (GenerationOf(obj) != gen) same_names = false;  // stale generation left behind
  }

  auto write = [&](Json slice, int64_t generation) -> Status {
    slice["spec"]["pool"]["generation"] = generation;
    const std::string name = NameOf(slice);
    auto it = existing.find(name);
    Result<Json> r = Internal("unreachable");
    if (it != existing.end()) {
      slice["metadata"]["resourceVersion"] = kube::ResourceVersionOf(it->second);
      r = client_->Replace(kube::ResourceSlicePath(name), slice);
      if (r.ok()) ++stats_.updates;
      if (writes_metric_) writes_metric_->Inc({"update"});
    } else {
      r = client_->Create(kube::ResourceSlicesPath(), slice);
      if (r.ok()) ++stats_.creates;
      if (writes_metric_) writes_metric_->Inc({"create"});
    }
    if (!r.ok()) return r.status().WithContext("write slice " + name);
    NoteWrite(*r);
    if (CheckDropped(slice, *r)) *retry = true;
    return Status::Ok();
  };

  if (differing.empty() && same_names) {
    ++stats_.noop_syncs;
  } else if (same_names && differing.size() == 1) {
    if (auto st = write(desired[differing.front()], gen); !st.ok()) return st;
    HA_LOG(kInfo, "slice updated in place")
        .kv("slice", NameOf(desired[differing.front()]))
        .kv("generation", gen);
  } else {
    const int64_t next = gen + 1;
    for (const auto& s : desired) {
      if (auto st = write(s, next); !st.ok()) return st;
      if (*retry) return Status::Ok();  // features changed: rebuild before writing the rest
    }
    std::set<std::string> keep;
    for (const auto& s : desired) keep.insert(NameOf(s));
    for (const auto& [name, obj] : existing) {
      if (keep.count(name)) continue;
      Status st = client_->Delete(kube::ResourceSlicePath(name), kube::ResourceVersionOf(obj));
      if (writes_metric_) writes_metric_->Inc({"delete"});
      if (!st.ok() && st.code() != StatusCode::kNotFound) return st.WithContext("delete stale slice " + name);
      ++stats_.deletes;
    }
    HA_LOG(kInfo, "slices published")
        .kv("node", node)
        .kv("generation", next)
        .kv("slices", desired.size())
        .kv("cards", built->card_devices)
        .kv("arcs", built->arc_devices)
        .kv("tainted", built->tainted_devices)
        .kv("withdrawn", built->withdrawn_devices);
  }

  // The node label says whether arcs are published.
  const std::string want_label = features_.partitionable ? "true" : "false";
  const Json& labels = json_fields::Object(json_fields::Object(*node_obj, "metadata"), "labels");
  if (!labels.contains(kArcsLabel) || labels[kArcsLabel] != want_label) {
    auto r = client_->MergePatch("/api/v1/nodes/" + node,
                                 {{"metadata", {{"labels", {{kArcsLabel, want_label}}}}}});
    if (writes_metric_) writes_metric_->Inc({"patch"});
    if (!r.ok()) return r.status().WithContext("label node");
    ++stats_.label_patches;
  }
  if (devices_metric_) {
    devices_metric_->Set({"card"}, built->card_devices);
    devices_metric_->Set({"arc"}, built->arc_devices);
    devices_metric_->Set({"withdrawn"}, built->withdrawn_devices);
  }
  published_ = std::move(desired);
  return Status::Ok();
}

void Publisher::WatchSlices(kube::Client* client, const std::string& node_name, const std::atomic<bool>* stop,
                            const std::function<bool(const std::string&)>& is_own_write,
                            const std::function<void()>& on_change) {
  kube::Backoff backoff(std::chrono::milliseconds(200), std::chrono::seconds(10));
  const std::string path =
      kube::WithFieldSelector(kube::ResourceSlicesPath(), kube::SliceFieldSelector(node_name, kDriverName));
  std::string rv;
  while (!stop->load()) {
    if (rv.empty()) {
      auto list = client->List(path);
      if (!list.ok()) {
        HA_LOG(kDebug, "slice watch: list failed").kv("error", list.status().message());
        if (!SleepUnless(stop, backoff.Next())) return;
        continue;
      }
      rv = kube::ResourceVersionOf(*list);
      on_change();  // whatever happened while not watching
    }
    Status st = client->Watch(
        path, "", rv,
        [&](kube::WatchEvent&& e) {
          std::string erv = kube::ResourceVersionOf(e.object);
          if (!erv.empty()) rv = erv;
          if (e.type == "BOOKMARK") return !stop->load();
          if (e.type == "DELETED" || !is_own_write(erv)) on_change();
          backoff.Reset();
          return !stop->load();
        },
        stop, std::chrono::seconds(60));
    if (stop->load()) return;
    if (!st.ok()) {
      if (kube::IsGone(st)) {
        rv.clear();
        continue;
      }
      HA_LOG(kDebug, "slice watch ended").kv("error", st.message());
      rv.clear();
      if (!SleepUnless(stop, backoff.Next())) return;
    }
  }
}

}  // namespace hyperaccel::dra
