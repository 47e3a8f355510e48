// Volcano extender wire format: request bodies -> small structs, small structs -> response bodies.
// Pure (no I/O, no shared state). Parsing reads only the fields the bridge needs with simdjson's
// on-demand API and tolerates what Volcano v1.13-v1.15 sends: unknown keys are skipped, `null` is
// accepted wherever an object, array or string is expected, numbers are read as doubles, scalar
// resources are milli-units. A field we read with the wrong JSON type is an error naming its path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::bridge {

// JSON text followed by the readable padding simdjson needs. Reused across requests by one thread
// so steady-state parsing allocates nothing for the buffer.
class JsonBuffer {
 public:
  JsonBuffer() = default;
  explicit JsonBuffer(std::string_view text) { Assign(text); }
  void Assign(std::string_view text);
  std::string_view view() const { return {data_.data(), size_}; }
  const char* data() const { return data_.data(); }
  size_t size() const { return size_; }
  size_t capacity() const { return data_.size(); }

 private:
  std::string data_;
  size_t size_ = 0;
};

// What the bridge reads from a TaskInfo.
struct Task {
  std::string uid;
  std::string job;  // JobID "<namespace>/<podgroup>", "" for pods without a PodGroup
  std::string name;
  std::string ns;
  std::string node_name;  // TaskInfo.NodeName, or Pod.spec.nodeName when that is empty
  int status = 0;         // TaskStatus bit value (1 Pending, 2 Allocated, 16 Bound, 32 Running, ...)
  int64_t priority = 0;
  int cards = 0;                // Resreq.ScalarResources[resource] / 1000, rounded up
  bool require_linked = false;  // pod annotation hyperaccel.ai/require-linked: "true"
  bool spot = false;            // pod annotation or label volcano.sh/preemptable: "true"
  std::string_view raw;         // the whole TaskInfo object as sent (evictees only; points into the body)
};

// A task bound or allocated to a node, as listed in NodeInfo.Tasks.
struct NodeTask {
  std::string uid;
  std::string job;
  int cards = 0;
};

// What the bridge reads from a NodeInfo.
struct Node {
  std::string name;
  std::string link_domain;  // node labels (names.h): tier 1, 2, 3
  std::string rack;
  std::string idc;
  std::string topology;                  // annotation hyperaccel.ai/topology, "" when absent
  std::optional<int> allocatable_cards;  // Allocatable.ScalarResources[resource] / 1000
  std::optional<int> idle_cards;         // Idle.ScalarResources[resource] / 1000
  std::vector<NodeTask> tasks;           // only tasks holding cards; only when asked for
};

// One PodGroup from the onSessionOpen snapshot.
struct Job {
  std::string uid;
  int min_available = 0;
  bool require_linked = false;  // PodGroup annotation hyperaccel.ai/require-linked: "true"
  bool spot = false;            // JobInfo.Preemptable (PodGroup volcano.sh/preemptable)
  std::vector<Task> tasks;      // tasks that request cards
};

struct Snapshot {
  std::vector<Node> nodes;
  std::vector<Job> jobs;
};

struct PredicateArgs {
  Task task;
  Node node;
};

struct PrioritizeArgs {
  Task task;
  std::vector<Node> nodes;
};

struct EvictArgs {  // preemptable and reclaimable
  Task evictor;
  std::vector<Task> evictees;  // `raw` set on each
};

struct TaskArgs {  // allocateFunc and deallocateFunc
  Task task;
};

struct ParseOptions {
  std::string resource = "hyperaccel.ai/fpga";
  bool node_tasks = false;  // fill Node::tasks (prioritize needs them for gang locality)
};

// Each parser returns InvalidArgument naming the first problem ("task.Resreq.ScalarResources:
// expected object"). The returned structs do not point into `body`, except EvictArgs' `raw` views.
Result<PredicateArgs> ParsePredicate(const JsonBuffer& body, const ParseOptions& options);
Result<PrioritizeArgs> ParsePrioritize(const JsonBuffer& body, const ParseOptions& options);
Result<EvictArgs> ParseEvict(const JsonBuffer& body, const ParseOptions& options);
Result<TaskArgs> ParseTaskEvent(const JsonBuffer& body, const ParseOptions& options);
Result<Snapshot> ParseSnapshot(const JsonBuffer& body, const ParseOptions& options);
// onSessionClose: any JSON object (Volcano sends `{}`).
Status ParseSessionClose(const JsonBuffer& body);
// A JSON object whose member `key` is an object (or null): {"job":{...}}, {"queue":{...}}.
Status ParseEnvelope(const JsonBuffer& body, std::string_view key);

// Milli-units (Volcano's scalar resource encoding) to whole cards, rounded up, clamped to [0, 1e6].
int CardsFromMilli(double milli);

// ---- Responses -----------------------------------------------------------------------------

// Appends `s` as a JSON string literal (quotes included).
void AppendJsonString(std::string& out, std::string_view s);

std::string EncodePredicateResponse(int code, std::string_view reason);
struct NodeScore {
  std::string node;
  double score = 0;
};
std::string EncodePrioritizeResponse(const std::vector<NodeScore>& scores, std::string_view error = {});
std::string EncodeEvictResponse(int status, const std::vector<std::string_view>& victims_raw);
std::string EncodeEventResponse(std::string_view error = {});

}  // namespace hyperaccel::bridge
