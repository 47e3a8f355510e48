// A kubelet simulator for tests, benchmarks and the end-to-end demo. It behaves like the kubelet's
// device manager on real unix sockets:
//   - serves v1beta1.Registration on <dir>/kubelet.sock; inside Register it dials the plugin's
//     socket and calls GetDevicePluginOptions before answering (as the kubelet does);
//   - right after a successful Register it opens ListAndWatch and keeps the latest device list;
//     when the stream ends every device of that resource turns Unhealthy (kubelet behaviour);
//   - admits containers one at a time: GetPreferredAllocation (when the plugin advertises it) over
//     the healthy, free devices, then Allocate with one container request;
//   - Restart() behaves like a kubelet restart: streams are dropped, every socket in <dir> is
//     deleted and kubelet.sock is created again;
//   - serves pod-resources v1 List on its own socket, reporting what it allocated.
//
//   KubeletSim sim({.dir = "/tmp/x/device-plugins", .pod_resources_socket = "/tmp/x/pr.sock"});
//   sim.Start();
//   sim.WaitForDevices("hyperaccel.ai/fpga", [](auto& d) { return d.size() == 8; }, 5s);
//   auto got = sim.AdmitContainer({.pod = "p", .container = "c", .resource = "hyperaccel.ai/fpga", .count =
//   2});
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deviceplugin_v1beta1.pb.h"
#include "hyperaccel/common/status.h"

namespace hyperaccel::kubelet_sim {

struct Options {
  std::string dir;                                // device-plugin directory (created when missing)
  std::string pod_resources_socket;               // empty = no pod-resources server
  std::chrono::milliseconds dial_timeout{10000};  // kubelet -> plugin dial inside Register
};

// One device as the kubelet last heard of it.
struct Device {
  std::string id;
  bool healthy = false;
  std::vector<int64_t> numa_nodes;
};

struct PluginInfo {
  std::string resource;
  std::string endpoint;                  // socket file name
  v1beta1::DevicePluginOptions options;  // from GetDevicePluginOptions
  int registrations = 0;
  bool stream_open = false;
  int list_updates = 0;  // ListAndWatch messages received (all streams)
};

struct AdmitRequest {
  std::string pod;
  std::string pod_namespace = "default";
  std::string container;
  std::string resource;
  int count = 1;
  std::vector<std::string> must_include;
};

struct Admission {
  std::vector<std::string> preferred;  // what GetPreferredAllocation answered (empty when not asked)
  std::vector<std::string> devices;    // what was allocated
  v1beta1::ContainerAllocateResponse response;
};

// What the pod-resources server does instead of answering normally (tests of its clients).
struct PodResourcesFault {
  std::chrono::milliseconds delay{0};  // wait this long, or until the client gives up, first
  int grpc_code = 0;                   // then fail with this gRPC status code (0: answer normally)
  std::string message;
};

class KubeletSim {
 public:
  explicit KubeletSim(Options options);
  ~KubeletSim();
  KubeletSim(const KubeletSim&) = delete;
  KubeletSim& operator=(const KubeletSim&) = delete;

  // Creates the directory and starts serving kubelet.sock (and pod resources).
  Status Start();
  // Stops serving, drops every plugin stream and removes kubelet.sock.
  void Stop();
  // A kubelet restart: Stop(), delete every socket in the directory, Start(). Allocations are
  // kept (the kubelet keeps them in its checkpoint).
  Status Restart();

  std::string kubelet_socket() const;

  // Handshake log, in order: "Register <resource>", "GetDevicePluginOptions <resource>",
  // "Registered <resource>", "ListAndWatch <resource>", "Update <resource>", "StreamEnded <resource>".
  std::vector<std::string> Events() const;

  std::optional<PluginInfo> Plugin(const std::string& resource) const;
  // Latest device list of a resource (empty when unknown).
  std::vector<Device> Devices(const std::string& resource) const;
  // Waits until `registrations` reaches `count` for the resource.
  bool WaitForRegistrations(const std::string& resource, int count, std::chrono::milliseconds timeout) const;
  // Waits until a list satisfying `pred` has arrived (checked against the latest list).
  bool WaitForDevices(const std::string& resource,
                      const std::function<bool(const std::vector<Device>&)>& pred,
                      std::chrono::milliseconds timeout) const;
  // Waits until the resource's stream is open (true) or closed (false).
  bool WaitForStream(const std::string& resource, bool open, std::chrono::milliseconds timeout) const;

  // Admits one container like the kubelet: picks from healthy devices not allocated to another
  // pod, asks GetPreferredAllocation when advertised, tops up from its own order when the answer
  // is short, then calls Allocate. Records the allocation for pod-resources.
  Result<Admission> AdmitContainer(const AdmitRequest& request);
  // Raw RPCs against a registered plugin.
  Result<v1beta1::AllocateResponse> Allocate(const std::string& resource,
                                             const std::vector<std::string>& ids);
  Result<std::vector<std::string>> GetPreferredAllocation(const std::string& resource,
                                                          const std::vector<std::string>& available,
                                                          const std::vector<std::string>& must_include,
                                                          int size);
  Status PreStartContainer(const std::string& resource, const std::vector<std::string>& ids);
  // Device IDs of `resource` held by admitted containers.
  std::vector<std::string> AllocatedIds(const std::string& resource) const;
  // Records an allocation as if a container had been admitted (no plugin involved): fills the
  // pod-resources answer, e.g. with thousands of pods.
  void RecordAllocation(const std::string& pod, const std::string& pod_namespace,
                        const std::string& container, const std::string& resource,
                        const std::vector<std::string>& ids);
  // Makes every later pod-resources List misbehave as `fault` says (std::nullopt: answer normally).
  void SetPodResourcesFault(std::optional<PodResourcesFault> fault);
  // Stops the pod-resources server and removes its socket (the kubelet went away) / starts it again
  // on the same path (Start() does too). The device-plugin side is not touched.
  void StopPodResources();
  Status StartPodResources();
  // Forgets the pod's allocations (the pod ended).
  void RemovePod(const std::string& pod, const std::string& pod_namespace = "default");
  // Cancels the resource's ListAndWatch stream from the kubelet side (as a kubelet that drops a
  // plugin would).
  void DropStream(const std::string& resource);

 private:
  // Stops the gRPC servers and ends every plugin stream (shared by Stop and Restart).
  void StopServing();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyperaccel::kubelet_sim
