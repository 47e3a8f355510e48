#include "hyperaccel/bridge/service.h"

#include <malloc.h>

#include <chrono>
#include <map>

#include "hyperaccel/bridge/decide.h"
#include "hyperaccel/common/log.h"

namespace hyperaccel::bridge {
namespace {

Reply Malformed(const Status& s) {
  Reply r;
  r.status = 400;
  r.error = s.message();
  std::string body = "{\"error\":";
  AppendJsonString(body, r.error);
  body += '}';
  r.body = std::move(body);
  return r;
}

Reply Ok(std::string body) {
  Reply r;
  r.body = std::move(body);
  return r;
}

}  // namespace

const char* VerbName(Verb verb) {
  switch (verb) {
    case Verb::kOnSessionOpen: return "onSessionOpen";
    case Verb::kOnSessionClose: return "onSessionClose";
    case Verb::kPredicate: return "predicate";
    case Verb::kPrioritize: return "prioritize";
    case Verb::kAllocate: return "allocate";
    case Verb::kDeallocate: return "deallocate";
    case Verb::kPreemptable: return "preemptable";
    case Verb::kReclaimable: return "reclaimable";
    case Verb::kJobEnqueueable: return "jobEnqueueable";
    case Verb::kJobReady: return "jobReady";
    case Verb::kQueueOverused: return "queueOverused";
  }
  return "unknown";
}

Bridge::Bridge(BridgeOptions options, metrics::Registry* registry)
    : options_(std::move(options)), state_(options_.topology_cache_bytes) {
  parse_.resource = options_.resource;
  parse_.parsers = &parsers_;
  if (registry == nullptr) return;
  requests_ = &registry->AddCounter("hyperaccel_bridge_requests_total",
                                    "Extender requests by verb and HTTP status", {"verb", "code"});
  errors_ = &registry->AddCounter("hyperaccel_bridge_errors_total",
                                  "Rejected extender requests by verb and kind", {"verb", "kind"});
  predicate_codes_ =
      &registry->AddCounter("hyperaccel_bridge_predicate_results_total",
                            "Predicate answers by Volcano code (0 fits, 2 unschedulable, 3 never)", {"code"});
  domain_holds_ = &registry->AddCounter("hyperaccel_bridge_link_domain_holds_total",
                                        "Predicate answers that held a gang back for one link domain with "
                                        "room for all of it (link-domain wait)");
  latency_ = &registry->AddHistogram("hyperaccel_bridge_request_seconds", "Extender request handling time",
                                     {"verb"}, metrics::Histogram::LatencyBuckets());
  session_nodes_ =
      &registry->AddGauge("hyperaccel_bridge_session_nodes", "Nodes in the last onSessionOpen snapshot");
  session_jobs_ =
      &registry->AddGauge("hyperaccel_bridge_session_jobs", "Jobs in the last onSessionOpen snapshot");
  tentative_ = &registry->AddGauge("hyperaccel_bridge_tentative_allocations",
                                   "Tasks tentatively allocated in the current session");
  topologies_ =
      &registry->AddGauge("hyperaccel_bridge_topology_cache_entries", "Decoded topology annotations cached");
  topology_bytes_ = &registry->AddGauge("hyperaccel_bridge_topology_cache_bytes",
                                        "Bytes held by cached topology annotations (--topology-cache-bytes)");
}

Reply Bridge::Handle(Verb verb, const JsonBuffer& body) {
  const auto start = std::chrono::steady_clock::now();
  Reply reply;
  switch (verb) {
    case Verb::kOnSessionOpen: reply = OnSessionOpen(body); break;
    case Verb::kOnSessionClose: reply = OnSessionClose(body); break;
    case Verb::kPredicate: reply = Predicate(body); break;
    case Verb::kPrioritize: reply = Prioritize(body); break;
    case Verb::kAllocate: reply = TaskEvent(body, true); break;
    case Verb::kDeallocate: reply = TaskEvent(body, false); break;
    case Verb::kPreemptable:
    case Verb::kReclaimable: reply = Evict(body, verb); break;
    case Verb::kJobEnqueueable:
    case Verb::kJobReady:
    case Verb::kQueueOverused: reply = Neutral(body, verb); break;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (reply.status != 200) {
    HA_LOG(kWarn, "rejected malformed request")
        .kv("verb", VerbName(verb))
        .kv("bytes", body.size())
        .kv("error", reply.error);
  }
  if (requests_) {
    requests_->Inc({VerbName(verb), std::to_string(reply.status)});
    latency_->Observe({VerbName(verb)}, seconds);
    if (reply.status != 200) errors_->Inc({VerbName(verb), "malformed"});
  }
  return reply;
}

void Bridge::CountRejected(Verb verb, int http_status, std::string_view kind) {
  if (!requests_) return;
  requests_->Inc({VerbName(verb), std::to_string(http_status)});
  errors_->Inc({VerbName(verb), std::string(kind)});
}

size_t Bridge::ReleaseIdleMemory(std::chrono::steady_clock::time_point unused_since) {
  const size_t freed = parsers_.Release(unused_since);
  if (freed > 0) malloc_trim(0);
  return freed;
}

void Bridge::UpdateGauges() {
  if (!session_nodes_) return;
  const StateStats s = state_.Stats();
  session_nodes_->Set(static_cast<double>(s.snapshot_nodes));
  session_jobs_->Set(static_cast<double>(s.snapshot_jobs));
  tentative_->Set(static_cast<double>(s.tentative));
  topologies_->Set(static_cast<double>(s.topologies));
  topology_bytes_->Set(static_cast<double>(s.topology_bytes));
}

Reply Bridge::OnSessionOpen(const JsonBuffer& body) {
  auto snapshot = ParseSnapshot(body, parse_);
  if (!snapshot.ok()) return Malformed(snapshot.status());
  const size_t nodes = snapshot->nodes.size();
  const size_t jobs = snapshot->jobs.size();
  state_.OpenSession(std::move(snapshot.value()));
  // The parsed snapshot (hundreds of thousands of small strings for a big cluster) was just freed;
  // hand its pages back rather than keep them for the heap's next growth.
  malloc_trim(0);
  UpdateGauges();
  HA_LOG(kDebug, "session opened").kv("nodes", nodes).kv("jobs", jobs).kv("bytes", body.size());
  return Ok("{}");
}

Reply Bridge::OnSessionClose(const JsonBuffer& body) {
  if (body.size() > 0) {
    if (Status s = ParseSessionClose(body, &parsers_); !s.ok()) return Malformed(s);
  }
  state_.CloseSession();
  UpdateGauges();
  return Ok("{}");
}

double Bridge::Now() const {
  if (options_.now) return options_.now();
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Bridge::WarnBadDomainWait(const Task& task) {
  {
    std::lock_guard<std::mutex> lock(warned_mu_);
    if (warned_jobs_.size() >= 4096) warned_jobs_.clear();
    if (!warned_jobs_.insert(task.job.empty() ? task.uid : task.job).second) return;
  }
  HA_LOG(kWarn, "ignoring an unreadable link-domain wait annotation (want seconds or \"30m\", \"1h\")")
      .kv("annotation", kAnnotationLinkDomainWait)
      .kv("value", task.bad_domain_wait)
      .kv("task", task.ns + "/" + task.name)
      .kv("job", task.job);
}

Reply Bridge::Predicate(const JsonBuffer& body) {
  auto args = ParsePredicate(body, parse_);
  if (!args.ok()) return Malformed(args.status());
  const TaskNeed need = state_.NeedOf(args->task);
  const NodeCards cards = state_.CardsFromBody(args->node);
  PredicateDecision d = DecidePredicate(need, cards, options_.resource);
  if (!args->task.bad_domain_wait.empty()) WarnBadDomainWait(args->task);
  DomainHold hold;
  if (d.code == kPass) {
    const double now = Now();
    if (state_.DomainHoldOf(args->task, need, cards, options_.link_domain_wait_s, now, &hold)) {
      d = DecideDomainHold(hold);
      if (d.code != kPass) {
        state_.NoteHeld(args->task, need, hold, now);
        if (domain_holds_) domain_holds_->Inc({});
      }
    }
  }
  if (predicate_codes_) predicate_codes_->Inc({std::to_string(d.code)});
  if (d.code != kPass && log::Enabled(log::Level::kDebug)) {
    HA_LOG(kDebug, "predicate")
        .kv("task", args->task.uid)
        .kv("node", cards.name)
        .kv("code", d.code)
        .kv("reason", d.reason);
  }
  return Ok(EncodePredicateResponse(d.code, d.reason));
}

Reply Bridge::Prioritize(const JsonBuffer& body) {
  ParseOptions with_tasks = parse_;
  with_tasks.node_tasks = true;
  auto args = ParsePrioritize(body, with_tasks);
  if (!args.ok()) return Malformed(args.status());
  const TaskNeed need = state_.NeedOf(args->task);
  std::vector<NodeCards> cards;
  cards.reserve(args->nodes.size());
  for (const auto& n : args->nodes) cards.push_back(state_.CardsFromBody(n));
  const GangView gang = need.cards > 0 ? state_.GangOf(args->task, args->nodes) : GangView{};
  const bool single = gang.domains.empty() && gang.racks.empty() && gang.idcs.empty() && gang.remaining <= 1;
  if (need.cards > 0 && single) state_.AddDomainLoad(&cards);
  return Ok(EncodePrioritizeResponse(DecidePrioritize(need, cards, gang, options_.weight)));
}

Reply Bridge::TaskEvent(const JsonBuffer& body, bool allocate) {
  auto args = ParseTaskEvent(body, parse_);
  if (!args.ok()) return Malformed(args.status());
  if (allocate) {
    state_.Allocate(args->task, state_.NeedOf(args->task));
  } else {
    state_.Deallocate(args->task);
  }
  UpdateGauges();
  return Ok(EncodeEventResponse());
}

Reply Bridge::Evict(const JsonBuffer& body, Verb verb) {
  auto args = ParseEvict(body, parse_);
  if (!args.ok()) return Malformed(args.status());
  const TaskNeed need = state_.NeedOf(args->evictor);
  // Evictees are grouped by node (Volcano sends one node's victims per call).
  std::map<std::string, std::vector<size_t>> by_node;
  for (size_t i = 0; i < args->evictees.size(); ++i) by_node[args->evictees[i].node_name].push_back(i);
  int status = kVoteAbstain;
  std::vector<std::string_view> victims;
  std::string reasons;
  for (const auto& [node, indexes] : by_node) {
    NodeCards cards;
    VictimDecision d;
    if (need.cards <= 0) {
      d.reason = "evictor requests no cards";
    } else if (!state_.CardsOfKnownNode(node, &cards)) {
      d.reason = "node " + node + " not seen in this session";
    } else {
      std::vector<Candidate> candidates;
      for (size_t i : indexes) candidates.push_back({args->evictees[i].cards, args->evictees[i].priority});
      d = DecideVictims(need, cards, candidates);
    }
    if (d.status == kVotePermit) {
      status = kVotePermit;
      for (size_t c : d.chosen) victims.push_back(args->evictees[indexes[c]].raw);
    } else if (d.status == kVoteReject && status == kVoteAbstain) {
      status = kVoteReject;
    }
    if (!reasons.empty()) reasons += "; ";
    reasons += d.reason;
  }
  HA_LOG(kDebug, VerbName(verb))
      .kv("evictor", args->evictor.uid)
      .kv("status", status)
      .kv("victims", victims.size())
      .kv("reason", reasons);
  return Ok(EncodeEvictResponse(status, victims));
}

Reply Bridge::Neutral(const JsonBuffer& body, Verb verb) {
  const char* key = verb == Verb::kQueueOverused ? "queue" : "job";
  if (Status s = ParseEnvelope(body, key, &parsers_); !s.ok()) return Malformed(s);
  switch (verb) {
    case Verb::kJobEnqueueable: return Ok("{\"status\":1}");
    case Verb::kJobReady: return Ok("{\"status\":true}");
    default: return Ok("{\"overused\":false}");
  }
}

}  // namespace hyperaccel::bridge
