// The ResourceSlice publisher: keeps the API server's slices of this node's pool equal to what
// BuildSlices says, with the fewest writes.
//
// - Server features are detected once (and again after a failed sync): /version picks the counter
//   layout (1.34 combined, 1.35+ split). Partitionable devices and device taints are either forced
//   by the options or, in "auto", tried and verified on the first write: an API server with the
//   feature gate off drops the gated fields on write, and the publisher then falls back (cards
//   only, with a log line and the node label; or unhealthy cards withdrawn instead of tainted).
// - Every sync reads the Node (its UID for the owner reference; a missing Node means nothing is
//   written) and lists the pool's slices by field selector, then: nothing differs -> no write; one
//   slice differs and the set of slices is the same -> that slice is replaced in place at the same
//   generation; anything else -> every slice is written at generation + 1, then slices of older
//   generations are deleted (with resourceVersion preconditions). A failed sync leaves what is
//   there (nothing is wiped); the next sync converges.
// - Not thread-safe: one Publisher is driven by one thread; WatchSlices runs in another thread on
//   its own Client.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/dra_driver/slices.h"
#include "hyperaccel/kube/client.h"
#include "hyperaccel/kube/resource.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::dra {

// The node label that says whether arcs are published ("true") or only cards ("false").
inline constexpr char kArcsLabel[] = "hyperaccel.ai/dra.arcs";

enum class Tristate { kAuto, kOn, kOff };
// "auto" | "true" | "false" (also on/off, yes/no).
Result<Tristate> ParseTristate(const std::string& value, const std::string& flag);

struct PublisherOptions {
  std::string node_name;
  std::vector<int> arc_sizes{2, 4, 8};
  placement::ArcAlignment alignment = placement::ArcAlignment::kAligned;
  Tristate partitionable = Tristate::kAuto;
  Tristate device_taints = Tristate::kAuto;
};

// Writes done by the publisher, for tests and /metrics.
struct PublishStats {
  uint64_t syncs = 0;
  uint64_t noop_syncs = 0;
  uint64_t creates = 0;
  uint64_t updates = 0;
  uint64_t deletes = 0;
  uint64_t label_patches = 0;
  uint64_t Writes() const { return creates + updates + deletes + label_patches; }
};

class Publisher {
 public:
  Publisher(kube::Client* client, PublisherOptions options, metrics::Registry* registry = nullptr);

  // Reconciles the pool with `inventory` (see above).
  Status Sync(const hw::Inventory& inventory);

  // Detected (or forced) server features; valid after the first successful Sync.
  const ServerFeatures& features() const { return features_; }
  // The options the slices are built with (node, arc sizes, alignment, detected features), so the
  // kubelet side maps device names to the same cards; valid after the first successful Sync.
  SliceOptions slice_options() const;
  const kube::ServerVersion& server_version() const { return version_; }
  const PublishStats& stats() const { return stats_; }
  // The slices written (or found equal) by the last successful Sync.
  const std::vector<Json>& published() const { return published_; }

  // Watches this node's slices of this driver and calls `on_change` for every event that the
  // publisher did not cause itself (a slice deleted or edited behind its back, the Node's slices
  // garbage-collected). Runs until `stop`; reconnects with backoff. Use a Client of its own.
  static void WatchSlices(kube::Client* client, const std::string& node_name, const std::atomic<bool>* stop,
                          const std::function<bool(const std::string& resource_version)>& is_own_write,
                          const std::function<void()>& on_change);

  // True when `resource_version` came back from one of this publisher's writes. Thread-safe.
  bool IsOwnWrite(const std::string& resource_version) const;

 private:
  Status Detect();
  Status SyncOnce(const hw::Inventory& inventory, bool* retry);
  void NoteWrite(const Json& response);
  // Checks a write response for dropped gated fields; returns true when features changed.
  bool CheckDropped(const Json& sent, const Json& response);

  kube::Client* client_;
  PublisherOptions options_;
  bool detected_ = false;
  kube::ServerVersion version_;
  ServerFeatures features_;
  PublishStats stats_;
  std::vector<Json> published_;
  mutable std::mutex own_mu_;
  std::set<std::string> own_writes_;
  metrics::Counter* writes_metric_ = nullptr;
  metrics::Gauge* devices_metric_ = nullptr;
};

}  // namespace hyperaccel::dra
