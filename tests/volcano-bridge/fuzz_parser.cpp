// libFuzzer target for one request parser (chosen at compile time), then the decisions on what
// it parsed, so that any body the parser accepts is also safe for the rest of the bridge.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hyperaccel/bridge/service.h"
#include "hyperaccel/bridge/wire.h"

using hyperaccel::bridge::Bridge;
using hyperaccel::bridge::JsonBuffer;
using hyperaccel::bridge::ParseOptions;
using hyperaccel::bridge::Verb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Bridge* bridge = new Bridge({}, nullptr);
  JsonBuffer body(std::string_view(reinterpret_cast<const char*>(data), size));
  ParseOptions options;
#if defined(BRIDGE_FUZZ_PREDICATE)
  (void)hyperaccel::bridge::ParsePredicate(body, options);
  (void)bridge->Handle(Verb::kPredicate, body);
#elif defined(BRIDGE_FUZZ_PRIORITIZE)
  options.node_tasks = true;
  (void)hyperaccel::bridge::ParsePrioritize(body, options);
  (void)bridge->Handle(Verb::kPrioritize, body);
#elif defined(BRIDGE_FUZZ_EVICT)
  (void)hyperaccel::bridge::ParseEvict(body, options);
  (void)bridge->Handle(Verb::kPreemptable, body);
#elif defined(BRIDGE_FUZZ_TASK_EVENT)
  (void)hyperaccel::bridge::ParseTaskEvent(body, options);
  (void)bridge->Handle(size % 2 ? Verb::kAllocate : Verb::kDeallocate, body);
#elif defined(BRIDGE_FUZZ_SNAPSHOT)
  (void)hyperaccel::bridge::ParseSnapshot(body, options);
  (void)bridge->Handle(Verb::kOnSessionOpen, body);
#else
#error "define one BRIDGE_FUZZ_<parser>"
#endif
  return 0;
}
