// The v1beta1.DevicePlugin service for one resource, served by hyperaccel::rpc (gRPC's wire
// protocol on nghttp2, one serving thread): that thread reads each unary call, answers it inline and
// writes the answer with one wake-up and no gRPC runtime (docs/footprint.md has the cost per call
// against gRPC's servers). ListAndWatch streams are written from whichever thread publishes a new
// list; no thread blocks per stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deviceplugin_v1beta1_lite.pb.h"
#include "hyperaccel/device_plugin/plugin.h"
#include "hyperaccel/rpc/h2_server.h"
#include "plugin_metrics.h"

namespace hyperaccel::device_plugin {

// The plugin speaks v1beta1 with the lite copies of its messages (the package is not on the wire).
namespace v1beta1 = ::hyperaccel::lite::v1beta1;

// The methods' request paths.
inline constexpr const char* kMethodOptions = "/v1beta1.DevicePlugin/GetDevicePluginOptions";
inline constexpr const char* kMethodListAndWatch = "/v1beta1.DevicePlugin/ListAndWatch";
inline constexpr const char* kMethodPreferred = "/v1beta1.DevicePlugin/GetPreferredAllocation";
inline constexpr const char* kMethodAllocate = "/v1beta1.DevicePlugin/Allocate";
inline constexpr const char* kMethodPreStart = "/v1beta1.DevicePlugin/PreStartContainer";
inline constexpr const char* kMethodRegister = "/v1beta1.Registration/Register";

class DevicePluginService {
 public:
  // `on_streams(generation, open, ended)` runs (on the serving thread, with no service lock held)
  // when a ListAndWatch stream opens or ends; `generation` is the registration generation that
  // was current when that stream opened, `open` the streams still open.
  using StreamsChanged = std::function<void(uint64_t generation, int open, bool ended)>;
  DevicePluginService(std::string resource, const PluginOptions& options, PluginMetrics* metrics,
                      StreamsChanged on_streams);
  ~DevicePluginService();  // waits for running PreStart hooks
  DevicePluginService(const DevicePluginService&) = delete;
  DevicePluginService& operator=(const DevicePluginService&) = delete;

  // Registers the five methods on `server` (before its Start()). The service must outlive the
  // server's Shutdown().
  void AddTo(rpc::Server& server);

  v1beta1::DevicePluginOptions Options() const;
  // Makes `view` current and sends it on every open stream.
  void Publish(std::shared_ptr<const ResourceView> view);
  std::shared_ptr<const ResourceView> View() const;
  // The registration generation new streams are tagged with.
  void SetGeneration(uint64_t generation) { generation_.store(generation); }
  // Finishes every open stream and refuses new ones (before the server stops).
  void CloseStreams();
  int open_streams() const;
  // Waits for running PreStart hooks (after the server stopped).
  void JoinHooks();

  // The calls' answers.
  rpc::GrpcStatus GetPreferredAllocation(const v1beta1::PreferredAllocationRequest& req,
                                         v1beta1::PreferredAllocationResponse* resp);
  rpc::GrpcStatus Allocate(const v1beta1::AllocateRequest& req, v1beta1::AllocateResponse* resp);
  // Checks the IDs, then runs the hook on a thread of its own and answers `responder` from there;
  // answers at once when there is no hook or an ID is unknown.
  void PreStartContainer(const v1beta1::PreStartContainerRequest& req,
                         std::shared_ptr<rpc::UnaryResponder> responder);

 private:
  struct Snapshot {
    std::shared_ptr<const ResourceView> view;
    std::shared_ptr<const std::string> message;  // the serialized ListAndWatchResponse
  };
  struct Stream {
    std::shared_ptr<rpc::ServerStream> stream;
    uint64_t generation = 0;
    uint64_t sent_version = 0;
    bool sent = false;
  };
  Snapshot Current() const;
  void OpenStream(const std::shared_ptr<rpc::ServerStream>& stream);
  void StreamDone(uint64_t id);
  // Queues the current list on `s` unless it was the last one sent. Under streams_mu_, so that
  // lists reach each stream in the order they were published.
  void SendCurrent(Stream& s);

  const std::string resource_;
  const PluginOptions& options_;
  PluginMetrics* metrics_;
  StreamsChanged on_streams_;
  std::atomic<uint64_t> generation_{0};

  mutable std::mutex snap_mu_;  // leaf lock
  Snapshot snapshot_;

  mutable std::mutex streams_mu_;
  std::map<uint64_t, Stream> streams_;  // open streams by id
  uint64_t next_stream_id_ = 0;
  bool closed_ = false;

  std::mutex hooks_mu_;
  std::vector<std::thread> hooks_;
};

// Converts a view into the kubelet's device list (topology only for a known NUMA node).
v1beta1::ListAndWatchResponse ToListAndWatch(const ResourceView& view);

// True when a shell command uses its positional parameters ($@, $*, $1..$9, ${@}, ...).
bool ReferencesArguments(const std::string& command);

// Runs `command` through /bin/sh with `ids` as its positional parameters, killing it after
// `timeout`. A command that does not use them (see ReferencesArguments) gets "$@" appended, so
// `reset-card` and `reset-card "$@"` both receive every ID exactly once.
Status RunHook(const std::string& command, const std::vector<std::string>& ids,
               std::chrono::milliseconds timeout);

}  // namespace hyperaccel::device_plugin
