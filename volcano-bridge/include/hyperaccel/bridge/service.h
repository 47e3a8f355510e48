// The extender verbs as plain functions of a request body: parse, consult the session state,
// decide, encode. No HTTP here (server.h serves these), so tests call verbs directly.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "hyperaccel/bridge/state.h"
#include "hyperaccel/bridge/wire.h"
#include "hyperaccel/common/metrics.h"

namespace hyperaccel::bridge {

enum class Verb {
  kOnSessionOpen,
  kOnSessionClose,
  kPredicate,
  kPrioritize,
  kAllocate,
  kDeallocate,
  kPreemptable,
  kReclaimable,
  // Neutral answers only (the bridge has no opinion); served so that enabling them by mistake
  // does no harm: jobEnqueueable permits, jobReady says ready, queueOverused says no.
  kJobEnqueueable,
  kJobReady,
  kQueueOverused,
};
inline constexpr std::array<Verb, 11> kAllVerbs = {
    Verb::kOnSessionOpen,  Verb::kOnSessionClose, Verb::kPredicate,    Verb::kPrioritize,
    Verb::kAllocate,       Verb::kDeallocate,     Verb::kPreemptable,  Verb::kReclaimable,
    Verb::kJobEnqueueable, Verb::kJobReady,       Verb::kQueueOverused};
// The default path segment of each verb ("onSessionOpen", "predicate", "allocate", ...).
const char* VerbName(Verb verb);

struct BridgeOptions {
  std::string resource = "hyperaccel.ai/fpga";  // scalar resource holding the cards
  double weight = 1.0;                          // prioritize scores are 0..100 × weight
  // Decoded topology annotations kept between calls, in bytes (TopologyCache).
  size_t topology_cache_bytes = TopologyCache::kDefaultMaxBytes;
  // Link-domain wait (decide.h, DomainHold) for gangs whose pod and PodGroup carry no
  // hyperaccel.ai/link-domain-wait annotation, in seconds; 0: only annotated gangs wait. The
  // binary's default is kDefaultLinkDomainWaitS.
  double link_domain_wait_s = 0;
  // Seconds on a monotonic clock (link-domain wait ages); null: std::chrono::steady_clock.
  std::function<double()> now;
};

struct Reply {
  int status = 200;   // 200, or 400 for a malformed request
  std::string body;   // JSON
  std::string error;  // why the request was rejected (status 400)
};

class Bridge {
 public:
  // `registry` may be null (no metrics).
  Bridge(BridgeOptions options, metrics::Registry* registry);

  // Thread-safe; any number of concurrent calls.
  Reply Handle(Verb verb, const JsonBuffer& body);

  // Counts a request the HTTP layer rejected before it reached Handle (e.g. body too large).
  void CountRejected(Verb verb, int http_status, std::string_view kind);

  // Frees the JSON parsers no request has used since `unused_since` and hands freed heap memory
  // back to the system. Parsers are kept between requests because allocating one afresh costs a
  // page fault per 4 KiB of its buffers (several per KiB of body); call this periodically so a
  // burst of large bodies does not pin their memory. Returns how many parsers were freed.
  size_t ReleaseIdleMemory(std::chrono::steady_clock::time_point unused_since);

  SessionState& state() { return state_; }
  const BridgeOptions& options() const { return options_; }

 private:
  Reply OnSessionOpen(const JsonBuffer& body);
  Reply OnSessionClose(const JsonBuffer& body);
  Reply Predicate(const JsonBuffer& body);
  Reply Prioritize(const JsonBuffer& body);
  Reply TaskEvent(const JsonBuffer& body, bool allocate);
  Reply Evict(const JsonBuffer& body, Verb verb);
  Reply Neutral(const JsonBuffer& body, Verb verb);
  void UpdateGauges();
  double Now() const;
  // Logs an unreadable link-domain-wait annotation once per job (per few thousand jobs).
  void WarnBadDomainWait(const Task& task);

  BridgeOptions options_;
  ParserPool parsers_;
  ParseOptions parse_;
  SessionState state_;
  metrics::Counter* requests_ = nullptr;
  metrics::Counter* errors_ = nullptr;
  metrics::Counter* predicate_codes_ = nullptr;
  metrics::Counter* domain_holds_ = nullptr;
  std::mutex warned_mu_;
  std::unordered_set<std::string> warned_jobs_;
  metrics::Histogram* latency_ = nullptr;
  metrics::Gauge* session_nodes_ = nullptr;
  metrics::Gauge* session_jobs_ = nullptr;
  metrics::Gauge* tentative_ = nullptr;
  metrics::Gauge* topologies_ = nullptr;
  metrics::Gauge* topology_bytes_ = nullptr;
};

}  // namespace hyperaccel::bridge
