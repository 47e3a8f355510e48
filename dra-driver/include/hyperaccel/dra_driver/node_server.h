// The kubelet side of hyperaccel-dra-driver on the wire: the DRA gRPC API (DRAPlugin v1 and
// v1beta1, DRAResourceHealth v1alpha1, served by hyperaccel::rpc: gRPC's wire protocol on nghttp2) on
// <kubelet-dir>/plugins/<driver>/dra.sock and the plugin-registration server on
// <kubelet-dir>/plugins_registry/<driver>-reg.sock, which the kubelet discovers with inotify (reference
// dra.md §2). Requests are translated to a ClaimPreparer and a HealthSource (node_service.h); everything else
// (API lookups, CDI, checkpoint) lives there.
//
// Lifecycle: Start() serves the DRA socket first, then creates the registration socket (the kubelet
// dials the endpoint as soon as it sees the registration socket). A control thread watches the
// registry directory and re-creates the registration socket (and the directory) when something
// deletes it, and serves the DRA socket again if it disappears. Stop() removes the registration
// socket first, lets in-flight calls finish (up to `stop_grace`), ends open health streams, then
// removes the DRA socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/dra_driver/node_service.h"
#include "hyperaccel/dra_driver/slices.h"  // kDriverName

namespace hyperaccel::dra {

inline constexpr const char* kDefaultKubeletDir = "/var/lib/kubelet";
// Services advertised to the kubelet, preferred first (the kubelet takes the first it knows).
inline constexpr const char* kServiceV1 = "v1.DRAPlugin";
inline constexpr const char* kServiceV1beta1 = "v1beta1.DRAPlugin";
// Health messages longer than this are cut (the kubelet's limit).
inline constexpr size_t kHealthMessageMax = 1024;

struct NodeServerOptions {
  std::string kubelet_dir = kDefaultKubeletDir;
  std::string driver_name = kDriverName;
  // NodeWatchResources sends the full list on every change and at least this often.
  std::chrono::milliseconds health_resend{30000};
  // Sent as health_check_timeout_seconds: how long the kubelet may trust an entry.
  std::chrono::seconds health_timeout{60};
  // Longest wait inside HealthSource::WaitForChange: bounds how long Stop() waits for the thread
  // that writes the health streams.
  std::chrono::milliseconds health_poll{200};
  // The control thread re-checks both sockets at least this often (inotify makes it immediate).
  std::chrono::milliseconds poll_interval{1000};
  // Stop() waits this long for in-flight Prepare/Unprepare calls before cancelling them.
  std::chrono::milliseconds stop_grace{10000};
  // Upper bound of threads serving the DRA socket: one reads and answers the socket, the others
  // (started as calls need them) run Prepare/Unprepare, which may block on disk. Up to 64 calls
  // wait for a free one; a call beyond gets RESOURCE_EXHAUSTED and the kubelet retries.
  int max_threads = 16;
};

// Checks driver name (a DNS subdomain) and paths. Errors name the option.
Status ValidateNodeServerOptions(const NodeServerOptions& options);

struct NodeServerStatus {
  bool serving = false;     // DRA socket up
  bool registered = false;  // the kubelet's last NotifyRegistrationStatus said registered
  int registrations = 0;    // successful NotifyRegistrationStatus calls received
  int registration_errors = 0;
  int socket_recreations = 0;  // registration socket re-created after it vanished
  int open_health_streams = 0;
  std::string last_error;  // last registration error the kubelet reported, or a serve error
};

class NodeServer {
 public:
  // `preparer` and `health` must outlive the server. `registry` may be null (metrics kept private).
  NodeServer(NodeServerOptions options, ClaimPreparer& preparer, HealthSource& health,
             metrics::Registry* registry = nullptr);
  ~NodeServer();
  NodeServer(const NodeServer&) = delete;
  NodeServer& operator=(const NodeServer&) = delete;

  // Creates the directories, serves the DRA socket, then the registration socket, and starts the
  // control thread. Fails (nothing left running) when another process listens on either socket, a
  // path is taken by something that is not a socket, or a socket cannot be created.
  Status Start();
  // Graceful stop; idempotent.
  void Stop();

  // OK while serving and registered with the kubelet.
  Status Health() const;
  NodeServerStatus GetStatus() const;
  // Waits until the kubelet has confirmed at least `count` registrations.
  bool WaitRegistered(int count, std::chrono::milliseconds timeout) const;

  const std::string& dra_socket() const;
  const std::string& registration_socket() const;

  struct Impl;  // opaque; public only so the method helpers in node_server.cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyperaccel::dra
