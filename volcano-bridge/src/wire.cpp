#include "hyperaccel/bridge/wire.h"

#include <simdjson.h>
#include <sys/mman.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#include "hyperaccel/placement/names.h"

// The x86-64-v3 build exists to get simdjson's AVX2 kernel for the on-demand parser (compiled
// into this file); without it simdjson silently uses its portable kernel.
#if defined(HYPERACCEL_BRIDGE_NEEDS_AVX2) && !SIMDJSON_CAN_ALWAYS_RUN_HASWELL && \
    !SIMDJSON_CAN_ALWAYS_RUN_ICELAKE
#error "wire.cpp must be compiled with AVX2, BMI, LZCNT and PCLMUL enabled (see CMakeLists.txt)"
#endif

namespace hyperaccel::bridge {

namespace od = simdjson::ondemand;

struct ParserPool::Slot {
  od::parser parser;
  std::chrono::steady_clock::time_point last_used;
};

// A parser for one parse: from `pool` when there is one, else a fresh one freed afterwards.
class PooledParser {
 public:
  PooledParser(ParserPool* pool, size_t body_bytes)
      : pool_(pool), slot_(pool ? pool->Acquire(body_bytes) : std::make_unique<ParserPool::Slot>()) {}
  ~PooledParser() {
    if (pool_ != nullptr) pool_->Return(std::move(slot_));
  }
  PooledParser(const PooledParser&) = delete;
  PooledParser& operator=(const PooledParser&) = delete;
  od::parser& get() { return slot_->parser; }

 private:
  ParserPool* pool_;
  std::unique_ptr<ParserPool::Slot> slot_;
};

namespace {

// A JSON path, rendered only when an error is reported: {"task", "Resreq"} -> "task.Resreq",
// array elements as "nodes.[3]".
struct Path {
  static constexpr size_t kNoIndex = ~size_t{0};
  const Path* parent = nullptr;
  std::string_view name;
  size_t index = kNoIndex;  // set for an array element (then `name` is unused)
  std::string str() const {
    std::string head = parent ? parent->str() : std::string();
    if (!head.empty()) head += '.';
    if (index == kNoIndex) {
      head += name;
    } else {
      head += '[';
      head += std::to_string(index);
      head += ']';
    }
    return head;
  }
};

Status Bad(const Path& p, std::string_view what) {
  return InvalidArgument(p.str() + ": " + std::string(what));
}
Status Bad(const Path& p, simdjson::error_code e) { return Bad(p, simdjson::error_message(e)); }

const char* TypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "array";
    case od::json_type::object: return "object";
    case od::json_type::number: return "number";
    case od::json_type::string: return "string";
    case od::json_type::boolean: return "boolean";
    case od::json_type::null: return "null";
  }
  return "unknown";
}

// Reads the type of `v`; `*is_null` is set when it is JSON null. Errors when it is neither null
// nor `want`.
Status Expect(od::value& v, const Path& p, od::json_type want, bool* is_null) {
  od::json_type t;
  if (auto e = v.type().get(t)) return Bad(p, e);
  *is_null = t == od::json_type::null;
  if (*is_null || t == want) return Status::Ok();
  return Bad(p, std::string("expected ") + TypeName(want) + ", got " + TypeName(t));
}

// The key of `field`. A key without escapes (nearly all: Go escapes only quotes, backslashes,
// control characters and <>&) is viewed in place; unescaping copies every key into the parser's
// string buffer, which for a large body is many megabytes written (and faulted in) for nothing.
// The scan cannot run off the text: stage 1 rejected bodies with an unclosed string.
Status KeyOf(od::field& field, const Path& p, std::string_view* key) {
  const char* const start = field.key().raw();
  const char* end = start;
  while (*end != '"' && *end != '\\') ++end;
  if (*end == '"') {
    *key = std::string_view(start, static_cast<size_t>(end - start));
    return Status::Ok();
  }
  if (auto e = field.unescaped_key().get(*key)) return Bad(p, e);
  return Status::Ok();
}

// Calls f(key, value&, path) for each field of an object; null is an empty object.
template <typename F>
Status ForEachField(od::value& v, const Path& p, F&& f) {
  bool null = false;
  if (Status s = Expect(v, p, od::json_type::object, &null); !s.ok() || null) return s;
  od::object obj;
  if (auto e = v.get_object().get(obj)) return Bad(p, e);
  for (auto field_result : obj) {
    if (auto e = field_result.error()) return Bad(p, e);
    od::field& field = field_result.value_unsafe();
    std::string_view key;
    if (Status s = KeyOf(field, p, &key); !s.ok()) return s;
    Path child{&p, key};
    if (Status s = f(key, field.value(), child); !s.ok()) return s;
  }
  return Status::Ok();
}

// Calls f(value&, path) for each element of an array; null is an empty array.
template <typename F>
Status ForEachElement(od::value& v, const Path& p, F&& f) {
  bool null = false;
  if (Status s = Expect(v, p, od::json_type::array, &null); !s.ok() || null) return s;
  od::array arr;
  if (auto e = v.get_array().get(arr)) return Bad(p, e);
  size_t i = 0;
  for (auto element_result : arr) {
    if (auto e = element_result.error()) return Bad(p, e);
    od::value& element = element_result.value_unsafe();
    Path child{&p, {}, i++};
    if (Status s = f(element, child); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ReadString(od::value& v, const Path& p, std::string_view* out) {
  bool null = false;
  if (Status s = Expect(v, p, od::json_type::string, &null); !s.ok()) return s;
  if (null) {
    *out = {};
    return Status::Ok();
  }
  if (auto e = v.get_string().get(*out)) return Bad(p, e);
  return Status::Ok();
}

Status ReadString(od::value& v, const Path& p, std::string* out) {
  std::string_view s;
  if (Status st = ReadString(v, p, &s); !st.ok()) return st;
  out->assign(s);
  return Status::Ok();
}

Status ReadNumber(od::value& v, const Path& p, double* out) {
  bool null = false;
  if (Status s = Expect(v, p, od::json_type::number, &null); !s.ok() || null) return s;
  if (auto e = v.get_double().get(*out)) return Bad(p, e);
  if (!std::isfinite(*out)) return Bad(p, "number out of range");
  return Status::Ok();
}

Status ReadInt(od::value& v, const Path& p, int64_t* out) {
  double d = 0;
  if (Status s = ReadNumber(v, p, &d); !s.ok()) return s;
  if (d > 9.0e18 || d < -9.0e18) return Bad(p, "integer out of range");
  *out = static_cast<int64_t>(d);
  return Status::Ok();
}

Status ReadBool(od::value& v, const Path& p, bool* out) {
  bool null = false;
  if (Status s = Expect(v, p, od::json_type::boolean, &null); !s.ok() || null) return s;
  if (auto e = v.get_bool().get(*out)) return Bad(p, e);
  return Status::Ok();
}

bool IsTrue(std::string_view s) { return s == "true" || s == "True" || s == "TRUE"; }

// Resource {"MilliCPU","Memory","ScalarResources":{name: milli}} -> cards of `resource`. A task's
// request keeps its sign (a negative request is refused by the predicate, not read as none); a
// node's amounts are clamped at 0.
Status ReadCards(od::value& v, const Path& p, const ParseOptions& o, std::optional<int>* out,
                 bool task_request = false) {
  return ForEachField(v, p, [&](std::string_view key, od::value& val, const Path& kp) {
    if (key != "ScalarResources") return Status::Ok();
    return ForEachField(val, kp, [&](std::string_view name, od::value& q, const Path& qp) {
      if (name != o.resource) return Status::Ok();
      double milli = 0;
      if (Status s = ReadNumber(q, qp, &milli); !s.ok()) return s;
      *out = task_request && milli < 0 ? -CardsFromMilli(-milli) : CardsFromMilli(milli);
      return Status::Ok();
    });
  });
}

// The link-domain-wait annotation's value into `*wait_s`, or into `*bad` when unreadable.
void ReadDomainWait(std::string_view text, double* wait_s, std::string* bad) {
  if (auto w = ParseWaitSeconds(text)) {
    *wait_s = *w;
  } else {
    bad->assign(text.substr(0, 64));
  }
}

// Pod: metadata.annotations / metadata.labels flags and spec.nodeName.
Status ReadPod(od::value& v, const Path& p, Task* t) {
  std::string_view node_name;
  Status s = ForEachField(v, p, [&](std::string_view key, od::value& val, const Path& kp) {
    if (key == "metadata") {
      return ForEachField(val, kp, [&](std::string_view mk, od::value& mv, const Path& mp) {
        const bool annotations = mk == "annotations";
        if (!annotations && mk != "labels") return Status::Ok();
        return ForEachField(mv, mp, [&](std::string_view ak, od::value& av, const Path& ap) {
          const bool linked = annotations && ak == names::kAnnotationRequireLinked;
          const bool wait = annotations && ak == kAnnotationLinkDomainWait;
          const bool spot = ak == "volcano.sh/preemptable";
          if (!linked && !spot && !wait) return Status::Ok();
          std::string_view text;
          if (Status st = ReadString(av, ap, &text); !st.ok()) return st;
          if (linked) t->require_linked = IsTrue(text);
          if (wait) ReadDomainWait(text, &t->domain_wait_s, &t->bad_domain_wait);
          if (spot && IsTrue(text)) t->spot = true;
          return Status::Ok();
        });
      });
    }
    if (key == "spec") {
      return ForEachField(val, kp, [&](std::string_view sk, od::value& sv, const Path& sp) {
        if (sk != "nodeName") return Status::Ok();
        return ReadString(sv, sp, &node_name);
      });
    }
    return Status::Ok();
  });
  if (s.ok() && t->node_name.empty()) t->node_name.assign(node_name);
  return s;
}

// TaskInfo. `with_pod` reads the embedded Pod (annotations, labels, spec.nodeName); otherwise it
// is skipped, which is most of the bytes of a task.
Status ReadTask(od::value& v, const Path& p, const ParseOptions& o, bool with_pod, Task* t) {
  return ForEachField(v, p, [&](std::string_view key, od::value& val, const Path& kp) -> Status {
    if (key == "UID") return ReadString(val, kp, &t->uid);
    if (key == "Job") return ReadString(val, kp, &t->job);
    if (key == "Name") return ReadString(val, kp, &t->name);
    if (key == "Namespace") return ReadString(val, kp, &t->ns);
    if (key == "NodeName") {
      std::string_view n;
      if (Status st = ReadString(val, kp, &n); !st.ok()) return st;
      if (!n.empty()) t->node_name.assign(n);
      return Status::Ok();
    }
    if (key == "Status" || key == "Priority") {
      int64_t n = 0;
      if (Status st = ReadInt(val, kp, &n); !st.ok()) return st;
      if (key == "Status")
        t->status = static_cast<int>(std::clamp<int64_t>(n, 0, 1 << 30));
      else
        t->priority = n;
      return Status::Ok();
    }
    if (key == "Resreq") {
      std::optional<int> cards;
      if (Status st = ReadCards(val, kp, o, &cards, /*task_request=*/true); !st.ok()) return st;
      t->cards = cards.value_or(0);
      return Status::Ok();
    }
    if (key == "Pod" && with_pod) return ReadPod(val, kp, t);
    return Status::Ok();
  });
}

// NodeInfo.
Status ReadNode(od::value& v, const Path& p, const ParseOptions& o, Node* n) {
  return ForEachField(v, p, [&](std::string_view key, od::value& val, const Path& kp) -> Status {
    if (key == "Name") return ReadString(val, kp, &n->name);
    if (key == "Node") {
      return ForEachField(val, kp, [&](std::string_view nk, od::value& nv, const Path& np) {
        if (nk != "metadata") return Status::Ok();
        return ForEachField(nv, np, [&](std::string_view mk, od::value& mv, const Path& mp) -> Status {
          if (mk == "name" && n->name.empty()) return ReadString(mv, mp, &n->name);
          if (mk == "labels") {
            return ForEachField(mv, mp, [&](std::string_view lk, od::value& lv, const Path& lp) -> Status {
              if (lk == names::kLabelLinkDomain) return ReadString(lv, lp, &n->link_domain);
              if (lk == names::kLabelRack) return ReadString(lv, lp, &n->rack);
              if (lk == names::kLabelIdc) return ReadString(lv, lp, &n->idc);
              return Status::Ok();
            });
          }
          if (mk == "annotations") {
            return ForEachField(mv, mp, [&](std::string_view ak, od::value& av, const Path& ap) -> Status {
              if (ak == names::kAnnotationTopology) return ReadString(av, ap, &n->topology);
              return Status::Ok();
            });
          }
          return Status::Ok();
        });
      });
    }
    if (key == "Allocatable") return ReadCards(val, kp, o, &n->allocatable_cards);
    if (key == "Idle") return ReadCards(val, kp, o, &n->idle_cards);
    if (key == "Tasks" && o.node_tasks) {
      return ForEachField(val, kp, [&](std::string_view, od::value& tv, const Path& tp) {
        Task t;
        if (Status st = ReadTask(tv, tp, o, /*with_pod=*/false, &t); !st.ok()) return st;
        if (t.cards > 0) n->tasks.push_back({std::move(t.uid), std::move(t.job), t.cards});
        return Status::Ok();
      });
    }
    return Status::Ok();
  });
}

// JobInfo (snapshot).
Status ReadJob(od::value& v, const Path& p, const ParseOptions& o, Job* j) {
  return ForEachField(v, p, [&](std::string_view key, od::value& val, const Path& kp) -> Status {
    if (key == "UID") return ReadString(val, kp, &j->uid);
    if (key == "MinAvailable") {
      int64_t n = 0;
      if (Status st = ReadInt(val, kp, &n); !st.ok()) return st;
      j->min_available = static_cast<int>(std::clamp<int64_t>(n, 0, 1 << 30));
      return Status::Ok();
    }
    if (key == "Preemptable") return ReadBool(val, kp, &j->spot);
    if (key == "Tasks") {
      return ForEachField(val, kp, [&](std::string_view, od::value& tv, const Path& tp) {
        Task t;
        if (Status st = ReadTask(tv, tp, o, /*with_pod=*/false, &t); !st.ok()) return st;
        if (t.cards > 0) j->tasks.push_back(std::move(t));
        return Status::Ok();
      });
    }
    if (key == "PodGroup") {
      return ForEachField(val, kp, [&](std::string_view gk, od::value& gv, const Path& gp) {
        if (gk != "metadata") return Status::Ok();
        return ForEachField(gv, gp, [&](std::string_view mk, od::value& mv, const Path& mp) {
          if (mk != "annotations") return Status::Ok();
          return ForEachField(mv, mp, [&](std::string_view ak, od::value& av, const Path& ap) {
            const bool linked = ak == names::kAnnotationRequireLinked;
            if (!linked && ak != kAnnotationLinkDomainWait) return Status::Ok();
            std::string_view text;
            if (Status st = ReadString(av, ap, &text); !st.ok()) return st;
            if (linked) {
              j->require_linked = IsTrue(text);
            } else {
              j->domain_wait_s = ParseWaitSeconds(text).value_or(-1);
            }
            return Status::Ok();
          });
        });
      });
    }
    return Status::Ok();
  });
}

// Parses `text` (followed by `capacity - size` readable bytes) and calls f(value&, root path)
// on the root, which must be an object. Unlike Go's decoder, content after the root (other than
// whitespace) is an error: a body is one request, and what follows it would otherwise go unseen.
template <typename F>
Status ParseRoot(const char* text, size_t size, size_t capacity, ParserPool* pool, F&& f) {
  static const Path kRoot{nullptr, "body"};
  if (size == 0) return Bad(kRoot, "empty");
  PooledParser parser(pool, size);
  od::document doc;
  if (auto e = parser.get().iterate(simdjson::padded_string_view(text, size, capacity)).get(doc))
    return Bad(kRoot, e);
  od::value root;
  if (auto e = doc.get_value().get(root)) return Bad(kRoot, e);
  od::json_type t;
  if (auto e = root.type().get(t)) return Bad(kRoot, e);
  if (t != od::json_type::object) return Bad(kRoot, std::string("expected object, got ") + TypeName(t));
  if (Status s = f(root, kRoot); !s.ok()) return s;
  // `f` has walked the whole root object, so anything left is past its closing brace.
  // (current_location() is OUT_OF_BOUNDS exactly at the end of the document.)
  const char* rest = nullptr;
  if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS) {
    return Bad(kRoot, "unexpected content after the JSON object");
  }
  return Status::Ok();
}

template <typename F>
Status ParseBody(const JsonBuffer& body, ParserPool* pool, F&& f) {
  return ParseRoot(body.data(), body.size(), body.capacity(), pool, std::forward<F>(f));
}

Status Missing(std::string_view what) { return InvalidArgument("body: " + std::string(what) + " missing"); }

// Buffers from this size on are mapped rather than taken from the heap: freeing them gives the
// memory back at once, and they can use transparent huge pages.
constexpr size_t kMapBytes = size_t{1} << 20;
constexpr size_t kHugePage = size_t{2} << 20;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

// ---- JsonBuffer -----------------------------------------------------------------------------

JsonBuffer::~JsonBuffer() { Release(); }

JsonBuffer::JsonBuffer(JsonBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      mapped_(std::exchange(other.mapped_, false)) {}

JsonBuffer& JsonBuffer::operator=(JsonBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    mapped_ = std::exchange(other.mapped_, false);
  }
  return *this;
}

void JsonBuffer::Release() {
  if (mapped_) {
    ::munmap(data_, capacity_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  size_ = 0;
  capacity_ = 0;
  mapped_ = false;
}

void JsonBuffer::Grow(size_t text_bytes) {
  const size_t want = text_bytes + simdjson::SIMDJSON_PADDING;
  if (want <= capacity_) return;
  // Appending without a Reserve grows geometrically, so a body costs O(size) copying in all.
  size_t bytes = std::max(want, capacity_ + capacity_ / 2);
  char* fresh = nullptr;
  const bool mapped = bytes >= kMapBytes;
  if (mapped) {
    bytes = RoundUp(bytes, kHugePage);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // A hint: with transparent huge pages in `madvise` mode (the common default) this turns 512
    // page faults into one. Harmless where huge pages are off.
    ::madvise(p, bytes, MADV_HUGEPAGE);
    fresh = static_cast<char*>(p);
  } else {
    fresh = static_cast<char*>(std::malloc(bytes));
    if (fresh == nullptr) throw std::bad_alloc();
  }
  if (size_ > 0) std::memcpy(fresh, data_, size_);
  const size_t size = size_;
  Release();
  data_ = fresh;
  size_ = size;
  capacity_ = bytes;
  mapped_ = mapped;
}

void JsonBuffer::Reserve(size_t bytes) { Grow(bytes); }

void JsonBuffer::Assign(std::string_view text) {
  size_ = 0;
  Append(text);
}

size_t JsonBuffer::room() const {
  return capacity_ > size_ + simdjson::SIMDJSON_PADDING ? capacity_ - size_ - simdjson::SIMDJSON_PADDING : 0;
}

void JsonBuffer::Commit(size_t bytes) {
  if (bytes == 0) return;
  if (bytes > room()) throw std::length_error("JsonBuffer::Commit past room()");
  size_ += bytes;
  std::memset(data_ + size_, 0, simdjson::SIMDJSON_PADDING);
}

void JsonBuffer::Append(std::string_view piece) {
  Grow(size_ + piece.size());
  if (!piece.empty()) std::memcpy(data_ + size_, piece.data(), piece.size());
  size_ += piece.size();
  std::memset(data_ + size_, 0, simdjson::SIMDJSON_PADDING);
}

// ---- ParserPool -----------------------------------------------------------------------------

ParserPool::ParserPool(size_t max_idle) : max_idle_(max_idle) {}
ParserPool::~ParserPool() = default;

std::unique_ptr<ParserPool::Slot> ParserPool::Acquire(size_t body_bytes) {
  std::unique_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The smallest idle parser that is large enough, else the largest (it grows least).
    auto best = idle_.end();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      const size_t cap = (*it)->parser.capacity();
      if (best == idle_.end()) {
        best = it;
        continue;
      }
      const size_t best_cap = (*best)->parser.capacity();
      const bool fits = cap >= body_bytes, best_fits = best_cap >= body_bytes;
      if (fits != best_fits ? fits : (fits ? cap < best_cap : cap > best_cap)) best = it;
    }
    if (best != idle_.end()) {
      slot = std::move(*best);
      idle_.erase(best);
    }
  }
  if (!slot) slot = std::make_unique<Slot>();
  // simdjson would grow to exactly this body; some headroom spares a reallocation (and its page
  // faults) for the next, slightly larger body. On failure iterate() allocates (or reports) itself.
  if (slot->parser.capacity() < body_bytes) {
    if (auto e = slot->parser.allocate(RoundUp(body_bytes + body_bytes / 8, 4096))) (void)e;
  }
  return slot;
}

void ParserPool::Return(std::unique_ptr<Slot> slot) {
  slot->last_used = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(slot));
  // else: more parsers than were ever idle at once; this one is freed as `slot` goes out of scope.
}

size_t ParserPool::Release(std::chrono::steady_clock::time_point unused_since) {
  std::vector<std::unique_ptr<Slot>> freed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = idle_.begin(); it != idle_.end();) {
      if ((*it)->last_used <= unused_since) {
        freed.push_back(std::move(*it));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return freed.size();  // parsers are freed here, outside the lock
}

size_t ParserPool::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

// ---- Parsers ----------------------------------------------------------------------------------

std::optional<double> ParseWaitSeconds(std::string_view text) {
  constexpr double kMax = 30.0 * 24 * 3600;
  if (text.empty() || text.size() > 64) return std::nullopt;
  double total = 0;
  bool bare = true;  // a number without a unit: seconds
  while (!text.empty()) {
    double n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || !std::isfinite(n) || n < 0 || text.front() == '-' || text.front() == '+')
      return std::nullopt;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    double unit = 1;
    if (text.starts_with("ms")) {
      unit = 0.001;
      text.remove_prefix(2);
    } else if (!text.empty() && (text.front() == 'h' || text.front() == 'm' || text.front() == 's')) {
      unit = text.front() == 'h' ? 3600 : text.front() == 'm' ? 60 : 1;
      text.remove_prefix(1);
    } else if (!text.empty() || !bare) {
      return std::nullopt;  // an unknown unit, or "1h30" (a unit-less number after units)
    }
    bare = false;
    total += n * unit;
  }
  if (total > kMax) return std::nullopt;
  return total;
}

int CardsFromMilli(double milli) {
  if (!(milli > 0)) return 0;
  const double cards = std::ceil(milli / 1000.0 - 1e-9);
  return cards > 1e6 ? 1000000 : static_cast<int>(cards);
}

Result<PredicateArgs> ParsePredicate(const JsonBuffer& body, const ParseOptions& options) {
  PredicateArgs args;
  bool has_task = false, has_node = false;
  Status s = ParseBody(body, options.parsers, [&](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [&](std::string_view key, od::value& v, const Path& p) -> Status {
      if (key == "task") {
        has_task = true;
        return ReadTask(v, p, options, /*with_pod=*/true, &args.task);
      }
      if (key == "node") {
        has_node = true;
        ParseOptions no_tasks = options;
        no_tasks.node_tasks = false;
        return ReadNode(v, p, no_tasks, &args.node);
      }
      return Status::Ok();
    });
  });
  if (!s.ok()) return s;
  if (!has_task) return Missing("\"task\"");
  if (!has_node || args.node.name.empty()) return Missing("\"node\".Name");
  return args;
}

Result<PrioritizeArgs> ParsePrioritize(const JsonBuffer& body, const ParseOptions& options) {
  PrioritizeArgs args;
  bool has_task = false;
  Status s = ParseBody(body, options.parsers, [&](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [&](std::string_view key, od::value& v, const Path& p) -> Status {
      if (key == "task") {
        has_task = true;
        return ReadTask(v, p, options, /*with_pod=*/true, &args.task);
      }
      if (key == "nodes") {
        return ForEachElement(v, p, [&](od::value& nv, const Path& np) {
          Node n;
          if (Status st = ReadNode(nv, np, options, &n); !st.ok()) return st;
          if (n.name.empty()) return Bad(np, "node without Name");
          args.nodes.push_back(std::move(n));
          return Status::Ok();
        });
      }
      return Status::Ok();
    });
  });
  if (!s.ok()) return s;
  if (!has_task) return Missing("\"task\"");
  return args;
}

Result<EvictArgs> ParseEvict(const JsonBuffer& body, const ParseOptions& options) {
  EvictArgs args;
  bool has_evictor = false;
  const char* const end = body.data() + body.capacity();
  Status s = ParseBody(body, options.parsers, [&](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [&](std::string_view key, od::value& v, const Path& p) -> Status {
      if (key == "evictor") {
        has_evictor = true;
        return ReadTask(v, p, options, /*with_pod=*/true, &args.evictor);
      }
      if (key != "evictees") return Status::Ok();
      return ForEachElement(v, p, [&](od::value& ev, const Path& ep) -> Status {
        bool null = false;
        if (Status st = Expect(ev, ep, od::json_type::object, &null); !st.ok()) return st;
        if (null) return Status::Ok();
        od::object obj;
        if (auto e = ev.get_object().get(obj)) return Bad(ep, e);
        std::string_view raw;
        if (auto e = obj.raw_json().get(raw)) return Bad(ep, e);
        while (!raw.empty() &&
               (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == '\t')) {
          raw.remove_suffix(1);
        }
        // The evictee's own text is re-read with a second parser (the first one is busy); the
        // rest of the body serves as its padding.
        Task t;
        const size_t capacity = static_cast<size_t>(end - raw.data());
        Status st = ParseRoot(
            raw.data(), raw.size(), capacity, options.parsers,
            [&](od::value& tv, const Path&) { return ReadTask(tv, ep, options, /*with_pod=*/true, &t); });
        if (!st.ok()) return st;
        t.raw = raw;
        args.evictees.push_back(std::move(t));
        return Status::Ok();
      });
    });
  });
  if (!s.ok()) return s;
  if (!has_evictor) return Missing("\"evictor\"");
  return args;
}

Result<TaskArgs> ParseTaskEvent(const JsonBuffer& body, const ParseOptions& options) {
  TaskArgs args;
  bool has_task = false;
  Status s = ParseBody(body, options.parsers, [&](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [&](std::string_view key, od::value& v, const Path& p) -> Status {
      if (key != "task") return Status::Ok();
      has_task = true;
      return ReadTask(v, p, options, /*with_pod=*/true, &args.task);
    });
  });
  if (!s.ok()) return s;
  if (!has_task || args.task.uid.empty()) return Missing("\"task\".UID");
  return args;
}

Result<Snapshot> ParseSnapshot(const JsonBuffer& body, const ParseOptions& options) {
  Snapshot snap;
  ParseOptions no_tasks = options;
  no_tasks.node_tasks = false;
  Status s = ParseBody(body, options.parsers, [&](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [&](std::string_view key, od::value& v, const Path& p) -> Status {
      if (key == "Nodes") {
        return ForEachField(v, p, [&](std::string_view name, od::value& nv, const Path& np) {
          Node n;
          if (Status st = ReadNode(nv, np, no_tasks, &n); !st.ok()) return st;
          if (n.name.empty()) n.name.assign(name);
          snap.nodes.push_back(std::move(n));
          return Status::Ok();
        });
      }
      if (key == "Jobs") {
        return ForEachField(v, p, [&](std::string_view id, od::value& jv, const Path& jp) {
          Job j;
          if (Status st = ReadJob(jv, jp, options, &j); !st.ok()) return st;
          if (j.uid.empty()) j.uid.assign(id);
          snap.jobs.push_back(std::move(j));
          return Status::Ok();
        });
      }
      return Status::Ok();
    });
  });
  if (!s.ok()) return s;
  return snap;
}

Status ParseSessionClose(const JsonBuffer& body, ParserPool* parsers) {
  return ParseBody(body, parsers, [](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [](std::string_view, od::value&, const Path&) { return Status::Ok(); });
  });
}

Status ParseEnvelope(const JsonBuffer& body, std::string_view key, ParserPool* parsers) {
  bool found = false;
  Status s = ParseBody(body, parsers, [&](od::value& root, const Path& rp) {
    return ForEachField(root, rp, [&](std::string_view k, od::value& v, const Path& p) -> Status {
      if (k != key) return Status::Ok();
      found = true;
      return ForEachField(v, p, [](std::string_view, od::value&, const Path&) { return Status::Ok(); });
    });
  });
  if (!s.ok()) return s;
  if (!found) return Missing("\"" + std::string(key) + "\"");
  return Status::Ok();
}

// ---- Responses -----------------------------------------------------------------------------

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

namespace {
void AppendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) {
    out += '0';
    return;
  }
  out.append(buf, ptr);
}
}  // namespace

std::string EncodePredicateResponse(int code, std::string_view reason) {
  std::string out = "{\"status\":";
  AppendJsonString(out, reason);
  out += ",\"code\":";
  out += std::to_string(code);
  out += '}';
  return out;
}

std::string EncodePrioritizeResponse(const std::vector<NodeScore>& scores, std::string_view error) {
  std::string out;
  out.reserve(32 + scores.size() * 32);
  out += "{\"nodeScore\":{";
  bool first = true;
  for (const auto& s : scores) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, s.node);
    out += ':';
    AppendNumber(out, s.score);
  }
  out += "},\"errorMessage\":";
  AppendJsonString(out, error);
  out += '}';
  return out;
}

std::string EncodeEvictResponse(int status, const std::vector<std::string_view>& victims_raw) {
  size_t n = 32;
  for (auto v : victims_raw) n += v.size() + 1;
  std::string out;
  out.reserve(n);
  out += "{\"status\":";
  out += std::to_string(status);
  out += ",\"victims\":[";
  for (size_t i = 0; i < victims_raw.size(); ++i) {
    if (i) out += ',';
    out += victims_raw[i];
  }
  out += "]}";
  return out;
}

std::string EncodeEventResponse(std::string_view error) {
  std::string out = "{\"errorMessage\":";
  AppendJsonString(out, error);
  out += '}';
  return out;
}

}  // namespace hyperaccel::bridge
