// Volcano extender wire format: request bodies -> small structs, small structs -> response bodies.
// Pure (no I/O, no shared state). Parsing reads only the fields the bridge needs with simdjson's
// on-demand API and tolerates what Volcano v1.13-v1.15 sends: unknown keys are skipped, `null` is
// accepted wherever an object, array or string is expected, numbers are read as doubles, scalar
// resources are milli-units. A field we read with the wrong JSON type is an error naming its path.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::bridge {

// JSON text followed by the readable padding simdjson needs. Small buffers live on the heap and
// can be reused across requests; large ones (HTTP bodies of big clusters) are mapped directly and
// given back to the system when the buffer is freed or shrunk, using transparent huge pages where
// the system allows them: faulting in a 100 MB body 4 KiB at a time costs far more than parsing it.
class JsonBuffer {
 public:
  JsonBuffer() = default;
  explicit JsonBuffer(std::string_view text) { Assign(text); }
  ~JsonBuffer();
  JsonBuffer(JsonBuffer&& other) noexcept;
  JsonBuffer& operator=(JsonBuffer&& other) noexcept;
  JsonBuffer(const JsonBuffer&) = delete;
  JsonBuffer& operator=(const JsonBuffer&) = delete;

  void Assign(std::string_view text);
  // Filling in pieces (an HTTP body as it arrives): Clear, optionally Reserve the announced
  // length, then Append each piece.
  void Clear() { size_ = 0; }
  void Reserve(size_t bytes);
  void Append(std::string_view piece);
  // Frees the memory (size and capacity become 0).
  void Release();
  // Filling in place (an HTTP body read from the socket straight into the buffer): write up to
  // room() bytes from tail() (the allocated bytes after the contents, less simdjson's padding),
  // then Commit() what was written; it becomes part of the contents, without a copy.
  char* tail() { return data_ != nullptr ? data_ + size_ : nullptr; }
  size_t room() const;
  void Commit(size_t bytes);  // bytes <= room(), else std::length_error

  std::string_view view() const { return {data(), size_}; }
  const char* data() const { return data_ != nullptr ? data_ : ""; }
  size_t size() const { return size_; }
  // Readable bytes from data(): size() plus simdjson's padding (0 before the first Assign).
  size_t capacity() const { return capacity_; }

 private:
  void Grow(size_t text_bytes);  // keeps the contents

  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;  // allocated bytes, padding included
  bool mapped_ = false;  // from mmap (large) rather than the heap
};

// Pod / PodGroup annotation: how long a gang may wait for one link domain with room for all of it
// before it may start across domains ("30m", "1h", "600"; ParseWaitSeconds). Read by the bridge
// alone (decide.h, DomainHold).
inline constexpr const char* kAnnotationLinkDomainWait = "hyperaccel.ai/link-domain-wait";

// What the bridge reads from a TaskInfo.
struct Task {
  std::string uid;
  std::string job;  // JobID "<namespace>/<podgroup>", "" for pods without a PodGroup
  std::string name;
  std::string ns;
  std::string node_name;  // TaskInfo.NodeName, or Pod.spec.nodeName when that is empty
  int status = 0;         // TaskStatus bit value (1 Pending, 2 Allocated, 16 Bound, 32 Running, ...)
  int64_t priority = 0;
  int cards = 0;  // Resreq.ScalarResources[resource] / 1000, rounded away from 0 (< 0: a bad request)
  bool require_linked = false;  // pod annotation hyperaccel.ai/require-linked: "true"
  bool spot = false;            // pod annotation or label volcano.sh/preemptable: "true"
  // Pod annotation hyperaccel.ai/link-domain-wait in seconds; < 0 when absent. An unreadable value
  // is kept in `bad_domain_wait` (and the wait stays absent) so the bridge can say so.
  double domain_wait_s = -1;
  std::string bad_domain_wait;
  std::string_view raw;  // the whole TaskInfo object as sent (evictees only; points into the body)
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
  double domain_wait_s = -1;    // PodGroup annotation hyperaccel.ai/link-domain-wait (< 0: absent)
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

// simdjson parsers kept for reuse across requests and threads. A parser's buffers grow to the
// largest body it has parsed (about 6 bytes per byte of JSON, touched as the body is indexed);
// allocating them afresh for each request costs a page fault per 4 KiB, which on a virtual
// machine dominates the parse of a large body. Parsers idle for a while are freed (Release), so a
// burst of large requests does not pin their memory. Thread-safe.
class ParserPool {
 public:
  explicit ParserPool(size_t max_idle = 8);
  ~ParserPool();
  ParserPool(const ParserPool&) = delete;
  ParserPool& operator=(const ParserPool&) = delete;

  // Frees idle parsers last used at or before `unused_since`; returns how many were freed.
  size_t Release(std::chrono::steady_clock::time_point unused_since);
  size_t idle() const;

  struct Slot;  // one parser and when it was last used (wire.cpp)

 private:
  friend class PooledParser;
  std::unique_ptr<Slot> Acquire(size_t body_bytes);
  void Return(std::unique_ptr<Slot> slot);

  size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> idle_;
};

struct ParseOptions {
  std::string resource = "hyperaccel.ai/fpga";
  bool node_tasks = false;        // fill Node::tasks (prioritize needs them for gang locality)
  ParserPool* parsers = nullptr;  // null: a parser of its own for each call, freed after it
};

// Each parser returns InvalidArgument naming the first problem ("task.Resreq.ScalarResources:
// expected object"). The returned structs do not point into `body`, except EvictArgs' `raw` views.
Result<PredicateArgs> ParsePredicate(const JsonBuffer& body, const ParseOptions& options);
Result<PrioritizeArgs> ParsePrioritize(const JsonBuffer& body, const ParseOptions& options);
Result<EvictArgs> ParseEvict(const JsonBuffer& body, const ParseOptions& options);
Result<TaskArgs> ParseTaskEvent(const JsonBuffer& body, const ParseOptions& options);
Result<Snapshot> ParseSnapshot(const JsonBuffer& body, const ParseOptions& options);
// onSessionClose: any JSON object (Volcano sends `{}`).
Status ParseSessionClose(const JsonBuffer& body, ParserPool* parsers = nullptr);
// A JSON object whose member `key` is an object (or null): {"job":{...}}, {"queue":{...}}.
Status ParseEnvelope(const JsonBuffer& body, std::string_view key, ParserPool* parsers = nullptr);

// A wait as the link-domain-wait annotation gives it: seconds ("600", "90.5") or Go-style units
// ("90s", "30m", "1h30m", "500ms"), 0 to 30 days; nullopt for anything else.
std::optional<double> ParseWaitSeconds(std::string_view text);

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
