// The v1beta1.DevicePlugin service for one resource (gRPC callback API: ListAndWatch streams are
// reactors woken by Publish(), no thread blocks per stream).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "deviceplugin_v1beta1.grpc.pb.h"
#include "hyperaccel/device_plugin/plugin.h"
#include "plugin_metrics.h"

namespace hyperaccel::device_plugin {

class DevicePluginService final : public v1beta1::DevicePlugin::CallbackService {
 public:
  // `on_streams(generation, open, ended)` runs (on a gRPC thread, with no service lock held) when a
  // ListAndWatch stream opens or ends; `generation` is the registration generation that was
  // current when that stream opened, `open` the streams still open.
  using StreamsChanged = std::function<void(uint64_t generation, int open, bool ended)>;
  DevicePluginService(std::string resource, const PluginOptions& options, PluginMetrics* metrics,
                      StreamsChanged on_streams);
  ~DevicePluginService() override;

  v1beta1::DevicePluginOptions Options() const;
  // Makes `view` current and sends it on every open stream.
  void Publish(std::shared_ptr<const ResourceView> view);
  std::shared_ptr<const ResourceView> View() const;
  // The registration generation new streams are tagged with.
  void SetGeneration(uint64_t generation) { generation_.store(generation); }
  // Finishes every open stream and refuses new ones until Reopen() (server restart, shutdown).
  void CloseStreams();
  void Reopen();
  int open_streams() const;
  // Waits for running PreStart hooks (after the server stopped).
  void JoinHooks();

  grpc::ServerUnaryReactor* GetDevicePluginOptions(grpc::CallbackServerContext* ctx,
                                                   const v1beta1::Empty* req,
                                                   v1beta1::DevicePluginOptions* resp) override;
  grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse>* ListAndWatch(grpc::CallbackServerContext* ctx,
                                                                        const v1beta1::Empty* req) override;
  grpc::ServerUnaryReactor* GetPreferredAllocation(grpc::CallbackServerContext* ctx,
                                                   const v1beta1::PreferredAllocationRequest* req,
                                                   v1beta1::PreferredAllocationResponse* resp) override;
  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* ctx, const v1beta1::AllocateRequest* req,
                                     v1beta1::AllocateResponse* resp) override;
  grpc::ServerUnaryReactor* PreStartContainer(grpc::CallbackServerContext* ctx,
                                              const v1beta1::PreStartContainerRequest* req,
                                              v1beta1::PreStartContainerResponse* resp) override;

 private:
  class Stream;
  friend class Stream;
  struct Snapshot {
    std::shared_ptr<const ResourceView> view;
    std::shared_ptr<const v1beta1::ListAndWatchResponse> message;
  };
  Snapshot Current() const;
  void StreamDone(Stream* stream, uint64_t generation);

  const std::string resource_;
  const PluginOptions& options_;
  PluginMetrics* metrics_;
  StreamsChanged on_streams_;
  std::atomic<uint64_t> generation_{0};

  mutable std::mutex snap_mu_;  // leaf lock
  Snapshot snapshot_;

  mutable std::mutex streams_mu_;
  // Open streams; the shared_ptr keeps a stream alive while the service calls into it.
  std::map<Stream*, std::shared_ptr<Stream>> streams_;
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
