#include "synthetic.h"

#include <bit>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "hyperaccel/bridge/wire.h"
#include "hyperaccel/placement/annotation.h"
#include "hyperaccel/placement/names.h"

namespace hyperaccel::bridge::synthetic {
namespace {

using Json = nlohmann::ordered_json;

Json Resource(double cpu, double mem, int cards, int pods, int max_tasks = 0) {
  Json scalars = nullptr;
  if (cards >= 0 || pods > 0) {
    scalars = Json::object();
    if (cards >= 0) scalars[names::kDefaultResource] = cards * 1000;
    if (pods > 0) scalars["pods"] = pods;
  }
  return Json{{"MilliCPU", cpu}, {"Memory", mem}, {"ScalarResources", scalars}, {"MaxTaskNum", max_tasks}};
}

std::string PodGroupName(const std::string& job) {
  auto slash = job.find('/');
  return slash == std::string::npos ? job : job.substr(slash + 1);
}

Json Pod(const TaskSpec& t) {
  Json labels = {{"volcano.sh/job-name", t.name.substr(0, t.name.rfind('-'))},
                 {"volcano.sh/job-namespace", t.ns},
                 {"volcano.sh/queue-name", "default"},
                 {"volcano.sh/task-spec", "worker"}};
  Json annotations = Json::object();
  if (!t.job.empty()) annotations["scheduling.k8s.io/group-name"] = PodGroupName(t.job);
  annotations["volcano.sh/job-name"] = labels["volcano.sh/job-name"];
  annotations["volcano.sh/task-spec"] = "worker";
  if (t.require_linked) annotations[names::kAnnotationRequireLinked] = "true";
  if (t.spot) annotations["volcano.sh/preemptable"] = "true";
  if (!t.domain_wait.empty()) annotations[kAnnotationLinkDomainWait] = t.domain_wait;
  Json requests = {{"cpu", "4"}, {"memory", "16Gi"}};
  if (t.cards > 0) requests[names::kDefaultResource] = std::to_string(t.cards);
  Json spec = {
      {"volumes",
       Json::array(
           {{{"name", "kube-api-access-9x2kq"},
             {"projected",
              {{"sources",
                Json::array({{{"serviceAccountToken", {{"expirationSeconds", 3607}, {"path", "token"}}}},
                             {{"configMap",
                               {{"name", "kube-root-ca.crt"},
                                {"items", Json::array({{{"key", "ca.crt"}, {"path", "ca.crt"}}})}}}}})},
               {"defaultMode", 420}}}}})},
      {"containers",
       Json::array({{{"name", "main"},
                     {"image", "registry.example.com/hyperaccel/fpga-runtime:2.3.1"},
                     {"resources", {{"limits", requests}, {"requests", requests}}},
                     {"volumeMounts",
                      Json::array({{{"name", "kube-api-access-9x2kq"},
                                    {"readOnly", true},
                                    {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"}}})},
                     {"terminationMessagePath", "/dev/termination-log"},
                     {"imagePullPolicy", "IfNotPresent"}}})},
      {"restartPolicy", "OnFailure"},
      {"terminationGracePeriodSeconds", 30},
      {"serviceAccountName", "default"},
      {"schedulerName", "volcano"},
      {"tolerations", Json::array({{{"key", "node.kubernetes.io/not-ready"},
                                    {"operator", "Exists"},
                                    {"effect", "NoExecute"},
                                    {"tolerationSeconds", 300}},
                                   {{"key", "node.kubernetes.io/unreachable"},
                                    {"operator", "Exists"},
                                    {"effect", "NoExecute"},
                                    {"tolerationSeconds", 300}}})},
      {"priority", t.priority},
      {"enableServiceLinks", true}};
  if (!t.node.empty()) spec["nodeName"] = t.node;
  Json conditions = Json::array();
  for (const char* type : {"Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
    conditions.push_back({{"type", type},
                          {"status", t.node.empty() ? "False" : "True"},
                          {"lastProbeTime", nullptr},
                          {"lastTransitionTime", "2026-08-20T08:16:00Z"}});
  }
  Json status = {{"phase", t.status >= 32 ? "Running" : "Pending"},
                 {"conditions", conditions},
                 {"qosClass", "Guaranteed"}};
  if (!t.node.empty()) {
    status["hostIP"] = "10.20.0.11";
    status["podIP"] = "10.244.1.17";
    status["startTime"] = "2026-08-20T08:15:00Z";
    status["containerStatuses"] = Json::array(
        {{{"name", "main"},
          {"state", {{"running", {{"startedAt", "2026-08-20T08:16:00Z"}}}}},
          {"lastState", Json::object()},
          {"ready", true},
          {"restartCount", 0},
          {"image", "registry.example.com/hyperaccel/fpga-runtime:2.3.1"},
          {"imageID",
           "registry.example.com/hyperaccel/"
           "fpga-runtime@sha256:1f2e3d4c5b6a79881726354453627180919a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"},
          {"containerID", "containerd://6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"},
          {"started", true}}});
  }
  Json managed = Json::array({{{"manager", "vc-controller-manager"},
                               {"operation", "Update"},
                               {"apiVersion", "v1"},
                               {"time", "2026-08-20T08:15:00Z"},
                               {"fieldsType", "FieldsV1"},
                               {"fieldsV1",
                                {{"f:metadata", {{"f:annotations", {{".", Json::object()}}}}},
                                 {"f:spec", {{"f:containers", Json::object()}}}}}}});
  return {{"metadata",
           {{"name", t.name},
            {"namespace", t.ns},
            {"uid", t.uid},
            {"resourceVersion", "48211100"},
            {"creationTimestamp", "2026-08-20T08:15:00Z"},
            {"labels", labels},
            {"annotations", annotations},
            {"managedFields", managed}}},
          {"spec", spec},
          {"status", status}};
}

Json TaskInfo(const TaskSpec& t) {
  Json req = Resource(4000, 17179869184.0, t.cards > 0 ? t.cards : -1, 1);
  return {{"UID", t.uid},
          {"Job", t.job},
          {"Name", t.name},
          {"Namespace", t.ns},
          {"TaskRole", "worker"},
          {"Resreq", req},
          {"InitResreq", req},
          {"DRAResreq", nullptr},
          {"ResourceClaimKeys", nullptr},
          {"ResourceClaimDRAResreq", nullptr},
          {"NodeName", t.node},
          {"EvictionOccurred", false},
          {"JobAllocatedHyperNode", ""},
          {"Status", t.status},
          {"LastTransaction", nullptr},
          {"Priority", t.priority},
          {"VolumeReady", false},
          {"Preemptable", true},
          {"BestEffort", false},
          {"HasRestartableInitContainer", false},
          {"SchGated", false},
          {"RevocableZone", ""},
          {"NumaInfo", {{"Policy", ""}, {"ResMap", Json::object()}}},
          {"Pod", Pod(t)},
          {"CustomBindErrHandlerSucceeded", false}};
}

int IdleOf(const NodeSpec& n) {
  if (n.idle >= 0) return n.idle;
  return n.cards - std::popcount(n.busy | n.unhealthy);
}

Json NodeInfo(const NodeSpec& n, const std::vector<TaskSpec>& tasks) {
  Json labels = {{"kubernetes.io/arch", "amd64"},
                 {"kubernetes.io/hostname", n.name},
                 {"kubernetes.io/os", "linux"},
                 {names::kLabelPresent, "true"},
                 {"node.kubernetes.io/instance", "fpga-64c-256g"}};
  if (!n.domain.empty()) labels[names::kLabelLinkDomain] = n.domain;
  if (!n.rack.empty()) labels[names::kLabelRack] = n.rack;
  if (!n.idc.empty()) labels[names::kLabelIdc] = n.idc;
  Json annotations = {{"node.alpha.kubernetes.io/ttl", "0"},
                      {"volumes.kubernetes.io/controller-managed-attach-detach", "true"}};
  for (const auto& [k, v] : n.labels) labels[k] = v;
  if (n.annotate)
    annotations[names::kAnnotationTopology] = n.topology.empty() ? TopologyAnnotation(n) : n.topology;
  Json conditions = Json::array();
  for (const char* type : {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"}) {
    conditions.push_back({{"type", type},
                          {"status", std::string(type) == "Ready" ? "True" : "False"},
                          {"lastHeartbeatTime", "2026-08-20T08:59:00Z"},
                          {"lastTransitionTime", "2026-08-19T09:00:00Z"},
                          {"reason", "KubeletReady"},
                          {"message", "kubelet is posting ready status"}});
  }
  const std::string cards = std::to_string(n.cards);
  Json node = {
      {"metadata",
       {{"name", n.name},
        {"uid", "e3a49c74-83f6-4e4d-9c2a-" + n.name},
        {"resourceVersion", "48213377"},
        {"creationTimestamp", "2026-07-21T09:00:00Z"},
        {"labels", labels},
        {"annotations", annotations}}},
      {"spec", {{"podCIDR", "10.244.1.0/24"}, {"podCIDRs", Json::array({"10.244.1.0/24"})}}},
      {"status",
       {{"capacity",
         {{"cpu", "64"}, {names::kDefaultResource, cards}, {"memory", "263847292Ki"}, {"pods", "110"}}},
        {"allocatable",
         {{"cpu", "63"}, {names::kDefaultResource, cards}, {"memory", "261647228Ki"}, {"pods", "110"}}},
        {"conditions", conditions},
        {"addresses", Json::array({{{"type", "InternalIP"}, {"address", "10.20.1.13"}},
                                   {{"type", "Hostname"}, {"address", n.name}}})},
        {"nodeInfo",
         {{"kernelVersion", "6.1.0-25-amd64"},
          {"osImage", "Debian GNU/Linux 12 (bookworm)"},
          {"containerRuntimeVersion", "containerd://1.7.24"},
          {"kubeletVersion", "v1.35.2"},
          {"operatingSystem", "linux"},
          {"architecture", "amd64"}}},
        {"images",
         Json::array({{{"names", Json::array({"registry.example.com/hyperaccel/fpga-runtime:2.3.1"})},
                       {"sizeBytes", 1843212933}}})}}}};
  const int used = n.cards - IdleOf(n);
  Json task_map = Json::object();
  for (const auto& t : tasks) task_map[t.ns + "/" + t.name] = TaskInfo(t);
  const int pods = static_cast<int>(tasks.size());
  return {{"Name", n.name},
          {"Node", node},
          {"State", {{"Phase", 1}, {"Reason", ""}}},
          {"Releasing", Resource(0, 0, -1, 0)},
          {"Pipelined", Resource(0, 0, -1, 0)},
          {"Idle", Resource(63000 - 4000.0 * pods, 2.6e11, IdleOf(n), 110 - pods, 110)},
          {"Used", Resource(4000.0 * pods, 1.7e10 * pods, used, pods)},
          {"Allocatable", Resource(63000, 267926761472.0, n.cards, 110, 110)},
          {"Capacity", Resource(64000, 270179627008.0, n.cards, 110, 110)},
          {"ResourceUsage",
           {{"MetricsTime", "0001-01-01T00:00:00Z"},
            {"CPUUsageAvg", Json::object()},
            {"MEMUsageAvg", Json::object()}}},
          {"Tasks", task_map},
          {"NumaInfo", nullptr},
          {"NumaChgFlag", 0},
          {"NumaSchedulerInfo", nullptr},
          {"RevocableZone", ""},
          {"Others", Json::object()},
          {"OversubscriptionNode", false},
          {"OfflineJobEvicting", false},
          {"OversubscriptionResource", Resource(0, 0, -1, 0)},
          {"ImageStates", Json::object()},
          {"Generation", 0},
          {"BindGeneration", 2}};
}

std::string Dump(const Json& j) { return j.dump(); }

}  // namespace

std::string TopologyAnnotation(const NodeSpec& spec) {
  placement::NodeTopology t;
  t.domain = spec.domain;
  char buf[64];
  for (int i = 0; i < spec.cards; ++i) {
    placement::TopologyCard c;
    std::snprintf(buf, sizeof buf, "0000:%02x:00.1", 0x10 + i);
    c.id = buf;
    std::snprintf(buf, sizeof buf, "XFL1%s%02d", spec.name.c_str(), i);
    c.serial = buf;
    c.numa = i < spec.cards / 2 ? 0 : 1;
    c.pcie_switch = i / 4;
    c.healthy = ((spec.unhealthy >> i) & 1) == 0;
    c.allocated = ((spec.busy >> i) & 1) != 0;
    t.cards.push_back(std::move(c));
  }
  for (int i = 0; spec.cards > 1 && i < spec.cards; ++i) {
    if (spec.cards == 2 && i == 1) break;
    placement::TopologyLink l;
    l.a.serial = t.cards[static_cast<size_t>(i)].serial;
    l.a.port = 1;
    l.b.serial = t.cards[static_cast<size_t>((i + 1) % spec.cards)].serial;
    l.b.port = 0;
    l.state = hw::LinkState::kUp;
    t.links.push_back(std::move(l));
  }
  return placement::EncodeTopology(t);
}

std::string TaskInfoJson(const TaskSpec& task) { return Dump(TaskInfo(task)); }
std::string NodeInfoJson(const NodeSpec& node, const std::vector<TaskSpec>& tasks) {
  return Dump(NodeInfo(node, tasks));
}

std::string PredicateBody(const TaskSpec& task, const NodeSpec& node,
                          const std::vector<TaskSpec>& node_tasks) {
  return Dump(Json{{"task", TaskInfo(task)}, {"node", NodeInfo(node, node_tasks)}});
}

std::string PrioritizeBody(const TaskSpec& task, const std::vector<NodeSpec>& nodes,
                           const std::vector<std::vector<TaskSpec>>& node_tasks) {
  static const std::vector<TaskSpec> kNone;
  std::string out = "{\"task\":" + Dump(TaskInfo(task)) + ",\"nodes\":[";
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i) out += ',';
    out += Dump(NodeInfo(nodes[i], i < node_tasks.size() ? node_tasks[i] : kNone));
  }
  out += "]}";
  return out;
}

std::string TaskEventBody(const TaskSpec& task) { return Dump(Json{{"task", TaskInfo(task)}}); }

std::string EvictBody(const TaskSpec& evictor, const std::vector<TaskSpec>& evictees) {
  Json arr = Json::array();
  for (const auto& t : evictees) arr.push_back(TaskInfo(t));
  return Dump(Json{{"evictor", TaskInfo(evictor)}, {"evictees", arr}});
}

namespace {

// Replaces the JSON string "<placeholder>" in `text` by `value` (raw JSON).
void Splice(std::string& text, const std::string& placeholder, const std::string& value) {
  const std::string quoted = "\"" + placeholder + "\"";
  for (size_t at = text.find(quoted); at != std::string::npos; at = text.find(quoted, at + value.size())) {
    text.replace(at, quoted.size(), value);
  }
}

// {"key":json,...} from already encoded members.
std::string ObjectOf(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out = "{";
  for (size_t i = 0; i < members.size(); ++i) {
    if (i) out += ',';
    out += Json(members[i].first).dump() + ":" + members[i].second;
  }
  return out + "}";
}

}  // namespace

JobSpec LinkedGang(const std::string& uid, int tasks, int cards, const std::string& task_uid_prefix,
                   const std::string& task_name_prefix, bool pods_require_linked) {
  JobSpec job;
  job.uid = uid;
  job.min_available = tasks;
  job.require_linked = true;  // PodGroup annotation
  for (int i = 0; i < tasks; ++i) {
    TaskSpec t;
    t.uid = task_uid_prefix + std::to_string(i);
    t.job = uid;
    t.name = task_name_prefix + std::to_string(i);
    t.cards = cards;
    t.require_linked = pods_require_linked;
    job.tasks.push_back(t);
  }
  return job;
}

std::string SnapshotBody(const std::vector<NodeSpec>& nodes, const std::vector<JobSpec>& jobs) {
  // Bodies for big clusters are hundreds of MB: every TaskInfo is encoded once and its text
  // spliced into the five places Volcano repeats it.
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < nodes.size(); ++i) index[nodes[i].name] = i;
  std::vector<std::vector<std::pair<std::string, std::string>>> on_node(nodes.size());
  std::string out = "{\"Jobs\":{";
  bool first_job = true;
  for (const auto& j : jobs) {
    std::vector<std::pair<std::string, std::string>> tasks;
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_status;
    for (const auto& t : j.tasks) {
      std::string text = Dump(TaskInfo(t));
      auto it = index.find(t.node);
      if (it != index.end()) on_node[it->second].push_back({t.ns + "/" + t.name, text});
      by_status[std::to_string(t.status)].push_back({t.uid, text});
      tasks.push_back({t.uid, std::move(text)});
    }
    std::vector<std::pair<std::string, std::string>> status_members;
    status_members.reserve(by_status.size());
    for (const auto& [status, members] : by_status) status_members.push_back({status, ObjectOf(members)});
    const std::string task_map = ObjectOf(tasks);
    const std::string status_map = ObjectOf(status_members);
    const std::string pg = PodGroupName(j.uid);
    Json pg_annotations = Json::object();
    if (j.require_linked) pg_annotations[names::kAnnotationRequireLinked] = "true";
    if (!j.domain_wait.empty()) pg_annotations[kAnnotationLinkDomainWait] = j.domain_wait;
    Json job = {{"UID", j.uid},
                {"PgUID", "9b1d2c3e-" + pg},
                {"Name", pg},
                {"Namespace", "ml-team"},
                {"Queue", "default"},
                {"Priority", 0},
                {"MinAvailable", j.min_available},
                {"WaitingTime", nullptr},
                {"JobFitErrors", ""},
                {"NodesFitErrors", Json::object()},
                {"AllocatedHyperNode", ""},
                {"NetworkTopology", nullptr},
                {"SubJobs",
                 {{j.uid,
                   {{"GID", j.uid},
                    {"UID", j.uid},
                    {"Job", j.uid},
                    {"MinAvailable", j.min_available},
                    {"Priority", 0},
                    {"MatchIndex", 0},
                    {"Tasks", "@@TASKS@@"},
                    {"TaskStatusIndex", "@@STATUS@@"},
                    {"AllocatedHyperNode", ""},
                    {"NominatedHyperNode", ""},
                    {"NetworkTopology", nullptr}}}}},
                {"TaskToSubJob", Json::object()},
                {"MinSubJobs", Json::object()},
                {"TaskStatusIndex", "@@STATUS@@"},
                {"Tasks", "@@TASKS@@"},
                {"TaskMinAvailable", {{"worker", j.min_available}}},
                {"TaskMinAvailableTotal", j.min_available},
                {"Allocated", Resource(0, 0, -1, 0)},
                {"TotalRequest", Resource(0, 0, -1, 0)},
                {"CreationTimestamp", "2026-08-20T08:58:00Z"},
                {"ScheduleStartTimestamp", nullptr},
                {"PodGroup",
                 {{"metadata", {{"name", pg}, {"namespace", "ml-team"}, {"annotations", pg_annotations}}},
                  {"spec", {{"minMember", j.min_available}, {"queue", "default"}}},
                  {"status", {{"phase", "Inqueue"}}},
                  {"Version", "v1beta1"}}},
                {"Preemptable", false},
                {"RevocableZone", ""},
                {"Budget", {{"MinAvailable", ""}, {"MaxUnavailable", ""}}}};
    std::string text = Dump(job);
    Splice(text, "@@TASKS@@", task_map);
    Splice(text, "@@STATUS@@", status_map);
    if (!first_job) out += ',';
    first_job = false;
    out += Json(j.uid).dump() + ":" + text;
  }
  out += "},\"Nodes\":{";
  static const std::vector<TaskSpec> kNone;
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string text = Dump(NodeInfo(nodes[i], kNone));
    const std::string empty_tasks = "\"Tasks\":{}";
    const size_t at = text.find(empty_tasks);
    if (at != std::string::npos) text.replace(at, empty_tasks.size(), "\"Tasks\":" + ObjectOf(on_node[i]));
    if (i) out += ',';
    out += Json(nodes[i].name).dump() + ":" + text;
  }
  Json queues = {{"default",
                  {{"UID", "default"},
                   {"Name", "default"},
                   {"Weight", 1},
                   {"Weights", ""},
                   {"Hierarchy", ""},
                   {"Queue",
                    {{"metadata", {{"name", "default"}}},
                     {"spec", {{"weight", 1}}},
                     {"status", {{"state", "Open"}}}}}}}};
  out += "},\"Queues\":" + Dump(queues) + R"(,"NamespaceInfo":{},"RevocableNodes":{},"NodeList":null})";
  return out;
}

Cluster MakeCluster(int nodes, int pods_per_node, uint32_t seed) {
  Cluster c;
  std::mt19937 rng(seed);
  c.nodes.reserve(static_cast<size_t>(nodes));
  c.node_tasks.resize(static_cast<size_t>(nodes));
  JobSpec job;
  int job_index = 0;
  auto flush = [&](bool force) {
    if (job.tasks.empty() || (!force && job.tasks.size() < 4)) return;
    job.min_available = static_cast<int>(job.tasks.size());
    c.jobs.push_back(std::move(job));
    job = JobSpec{};
  };
  for (int i = 0; i < nodes; ++i) {
    NodeSpec n;
    n.name = "fpga-node-" + std::to_string(i);
    n.domain = "ld-" + std::to_string(i / 4);
    n.idc = "idc" + std::to_string(i / 256);
    n.rack = n.idc + ".rack" + std::to_string(i / 16);
    auto& tasks = c.node_tasks[static_cast<size_t>(i)];
    TaskSpec ds;
    ds.uid = "ds-" + std::to_string(i);
    ds.name = "hyperaccel-device-plugin-" + std::to_string(i);
    ds.ns = "kube-system";
    ds.node = n.name;
    ds.cards = 0;
    ds.status = 32;
    ds.priority = 2000001000;
    tasks.push_back(ds);
    int used = static_cast<int>(rng() % 3) * 2;  // 0, 2 or 4 busy cards, as 2-card tasks
    for (int p = 1; p < pods_per_node; ++p) {
      TaskSpec t;
      if (job.tasks.empty()) job.uid = "ml-team/job-" + std::to_string(job_index++);
      t.job = job.uid;
      t.uid = "uid-" + std::to_string(i) + "-" + std::to_string(p);
      t.name = "job" + std::to_string(job_index) + "-worker-" + std::to_string(job.tasks.size());
      t.node = n.name;
      t.status = 32;
      t.cards = p <= used / 2 ? 2 : 0;
      t.priority = static_cast<int64_t>(rng() % 3) * 100;
      tasks.push_back(t);
      job.tasks.push_back(t);
      flush(false);
    }
    n.busy = (placement::Mask{1} << used) - 1;
    c.nodes.push_back(std::move(n));
  }
  flush(true);
  return c;
}

}  // namespace hyperaccel::bridge::synthetic
