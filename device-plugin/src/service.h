// The v1beta1.DevicePlugin service for one resource, on gRPC's asynchronous API with one thread:
// that thread polls the socket and answers each unary call inline, so a call is read, handled and
// answered without waking another thread (the callback API hands every call between its two
// polling threads; bench/README.md has the counts). ListAndWatch streams are written from
// whichever thread publishes a new list; no thread blocks per stream.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deviceplugin_v1beta1.grpc.pb.h"
#include "hyperaccel/device_plugin/plugin.h"
#include "plugin_metrics.h"

namespace hyperaccel::device_plugin {

class DevicePluginService {
 public:
  // `on_streams(generation, open, ended)` runs (on the serving thread, with no service lock held)
  // when a ListAndWatch stream opens or ends; `generation` is the registration generation that
  // was current when that stream opened, `open` the streams still open.
  using StreamsChanged = std::function<void(uint64_t generation, int open, bool ended)>;
  DevicePluginService(std::string resource, const PluginOptions& options, PluginMetrics* metrics,
                      StreamsChanged on_streams);
  ~DevicePluginService();
  DevicePluginService(const DevicePluginService&) = delete;
  DevicePluginService& operator=(const DevicePluginService&) = delete;

  // Registers the service and its completion queue with `builder`; call before BuildAndStart().
  void AddTo(grpc::ServerBuilder& builder);
  // Starts the serving thread once `server` (built from that builder) has started.
  void Start(grpc::Server* server);
  // Shuts `server` down (calls still running get until `deadline`), then the queue and the
  // serving thread. Also right after a failed BuildAndStart() (server null).
  void Shutdown(grpc::Server* server, std::chrono::system_clock::time_point deadline);

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

  // The calls' answers (public for the call objects in service.cpp).
  grpc::Status GetPreferredAllocation(const v1beta1::PreferredAllocationRequest& req,
                                      v1beta1::PreferredAllocationResponse* resp);
  grpc::Status Allocate(const v1beta1::AllocateRequest& req, v1beta1::AllocateResponse* resp);
  // Checks the IDs, then runs the hook on a thread of its own and calls `done` from there.
  // Returns false with `*status` set when it answered at once.
  bool PreStartContainer(const v1beta1::PreStartContainerRequest& req, grpc::Status* status,
                         std::function<void(grpc::Status)> done);

  // A completion-queue tag: the object a completion belongs to.
  class Tag {
   public:
    virtual void Proceed(bool ok) = 0;

   protected:
    ~Tag() = default;
  };

  // Asks gRPC for the next call of one unary method (at start, then as each call arrives);
  // nothing once Shutdown() began.
  template <class Call>
  void RequestNext() {
    std::lock_guard lock(request_mu_);
    if (stopping_) return;
    (new Call(this))->Request(&async_, cq_.get());
  }

 private:
  class Stream;
  friend class Stream;
  struct Snapshot {
    std::shared_ptr<const ResourceView> view;
    std::shared_ptr<const v1beta1::ListAndWatchResponse> message;
  };
  Snapshot Current() const;
  void Serve();
  void RequestNextStream();
  void StreamStarted(const std::shared_ptr<Stream>& stream);
  void StreamDone(Stream* stream);

  const std::string resource_;
  const PluginOptions& options_;
  PluginMetrics* metrics_;
  StreamsChanged on_streams_;
  std::atomic<uint64_t> generation_{0};
  v1beta1::DevicePlugin::AsyncService async_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;

  // Held while a call is requested, so that no call is requested once Shutdown() began.
  std::mutex request_mu_;
  bool stopping_ = false;

  mutable std::mutex snap_mu_;  // leaf lock
  Snapshot snapshot_;

  mutable std::mutex streams_mu_;
  // Open streams; the shared_ptr keeps a stream alive while the service calls into it.
  std::map<Stream*, std::shared_ptr<Stream>> streams_;
  std::shared_ptr<Stream> next_stream_;  // the one requested, not yet opened by the kubelet
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
