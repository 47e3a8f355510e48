#include "hyperaccel/dra_driver/node_server.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "dra_health_v1alpha1_lite.pb.h"
#include "dra_v1_lite.pb.h"
#include "dra_v1beta1_lite.pb.h"
#include "hyperaccel/common/dir_watcher.h"
#include "hyperaccel/common/files.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/rpc/h2_server.h"
#include "hyperaccel/rpc/proto_methods.h"
#include "pluginregistration_lite.pb.h"

namespace hyperaccel::dra {

// The kubelet's APIs, in the lite runtime's classes (the renamed package is not on the wire: the
// method paths below are the original ones).
namespace v1alpha1 = ::hyperaccel::lite::v1alpha1;
namespace pluginregistration = ::hyperaccel::lite::pluginregistration;
namespace dv1 = ::hyperaccel::lite::k8s::io::kubelet::pkg::apis::dra::v1;
namespace dv1beta1 = ::hyperaccel::lite::k8s::io::kubelet::pkg::apis::dra::v1beta1;

namespace {

constexpr const char* kPrepareV1 = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources";
constexpr const char* kUnprepareV1 = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources";
constexpr const char* kPrepareV1beta1 = "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodePrepareResources";
constexpr const char* kUnprepareV1beta1 =
    "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodeUnprepareResources";
constexpr const char* kWatchHealth = "/v1alpha1.DRAResourceHealth/NodeWatchResources";
constexpr const char* kGetInfo = "/pluginregistration.Registration/GetInfo";
constexpr const char* kNotifyStatus = "/pluginregistration.Registration/NotifyRegistrationStatus";
// Prepare/Unprepare calls waiting for a worker beyond this are refused (RESOURCE_EXHAUSTED; the
// kubelet retries).
constexpr size_t kMaxQueuedCalls = 64;

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr mode_t kDirMode = 0750;

using files::FileId;
using files::StatFile;

enum class SocketState { kAbsent, kStale, kLive, kNotSocket };

// Whether a process accepts connections on the unix socket `path`.
SocketState ProbeSocket(const std::string& path) {
  FileId id = StatFile(path);
  if (!id.exists) return SocketState::kAbsent;
  if (!id.is_socket) return SocketState::kNotSocket;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return SocketState::kLive;  // cannot tell: do not touch
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return SocketState::kLive;
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(fd);
  if (rc == 0) return SocketState::kLive;
  // ECONNREFUSED: a socket file nobody listens on. EAGAIN: a full backlog, someone listens.
  return err == ECONNREFUSED ? SocketState::kStale : SocketState::kLive;
}

// Makes `socket_path` free for a new listener: removes a stale socket, refuses a live one or a
// file that is not a socket.
Status ClearSocketPath(const std::string& socket_path) {
  switch (ProbeSocket(socket_path)) {
    case SocketState::kAbsent: return Status::Ok();
    case SocketState::kNotSocket:
      return FailedPrecondition(socket_path + " exists and is not a socket; refusing to replace it");
    case SocketState::kLive:
      return FailedPrecondition("another process serves " + socket_path + " (one driver instance per node)");
    case SocketState::kStale:
      if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
        return Unavailable("cannot remove the stale socket " + socket_path + ": " + ErrnoMessage(errno));
      }
      HA_LOG(kInfo, "removed a stale socket").kv("socket", socket_path);
      return Status::Ok();
  }
  return Status::Ok();
}

// Creates `dir` and missing parents with mode 0750 (only the directories it creates).
Status MakeDirs(const fs::path& dir) {
  if (dir.empty()) return Status::Ok();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return FailedPrecondition(dir.string() + " is not a directory");
    return Status::Ok();
  }
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    if (Status s = MakeDirs(dir.parent_path()); !s.ok()) return s;
  }
  if (::mkdir(dir.c_str(), kDirMode) != 0 && errno != EEXIST) {
    return Unavailable("cannot create " + dir.string() + ": " + ErrnoMessage(errno));
  }
  // mkdir applies the umask; the mode is part of the contract with the kubelet's host.
  ::chmod(dir.c_str(), kDirMode);
  return Status::Ok();
}

bool ValidDnsSubdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : s) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c == '.') {
      if (prev == '.' || prev == '-' || label == 0) return false;
      label = 0;
    } else if (c == '-') {
      if (prev == '.') return false;
      ++label;
    } else if (alnum) {
      ++label;
    } else {
      return false;
    }
    if (label > 63) return false;
    prev = c;
  }
  return prev != '.' && prev != '-';
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string Truncate(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// Threads for the kubelet calls that may block (claim preparation writes a checkpoint and CDI specs
// with fsync): the serving thread hands them over and stays free. Threads are started as calls
// need them, up to `max`, and stay until Stop(), which drops calls not yet started.
class Workers {
 public:
  Workers(int max, std::string name) : max_(max), name_(std::move(name)) {}
  ~Workers() { Stop(); }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  // False (and `job` dropped) when stopped or when kMaxQueuedCalls calls already wait.
  bool Post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      if (stop_ || queue_.size() >= kMaxQueuedCalls) return false;
      queue_.push_back(std::move(job));
      if (idle_ == 0 && static_cast<int>(threads_.size()) < max_) threads_.emplace_back([this] { Run(); });
    }
    cv_.notify_one();
    return true;
  }

  void Stop() {
    std::deque<std::function<void()>> dropped;
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      dropped.swap(queue_);
      threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) t.join();
  }

 private:
  void Run() {
    pthread_setname_np(pthread_self(), name_.c_str());
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        ++idle_;
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        --idle_;
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  const int max_;
  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  int idle_ = 0;
  bool stop_ = false;
};

struct Metrics {
  explicit Metrics(metrics::Registry& r)
      : registrations(r.AddCounter("hyperaccel_dra_registrations_total",
                                   "Registration results the kubelet reported (NotifyRegistrationStatus)",
                                   {"result"})),
        registered(
            r.AddGauge("hyperaccel_dra_registered", "1 while the kubelet reports the plugin registered")),
        socket_recreations(r.AddCounter("hyperaccel_dra_socket_recreations_total",
                                        "Sockets served again after something removed them", {"socket"})),
        requests(r.AddCounter("hyperaccel_dra_kubelet_requests_total",
                              "NodePrepareResources/NodeUnprepareResources calls, by API version",
                              {"method", "version"})),
        claims(r.AddCounter("hyperaccel_dra_kubelet_claims_total",
                            "Claims in NodePrepareResources/NodeUnprepareResources calls, by result",
                            {"method", "result"})),
        seconds(r.AddHistogram("hyperaccel_dra_kubelet_request_duration_seconds",
                               "Time to answer a NodePrepareResources/NodeUnprepareResources call",
                               {"method"}, metrics::Histogram::LatencyBuckets())),
        health_streams(r.AddGauge("hyperaccel_dra_health_streams", "Open NodeWatchResources streams")),
        health_updates(
            r.AddCounter("hyperaccel_dra_health_updates_total", "Device lists sent on NodeWatchResources")) {}
  metrics::Counter& registrations;
  metrics::Gauge& registered;
  metrics::Counter& socket_recreations;
  metrics::Counter& requests;
  metrics::Counter& claims;
  metrics::Histogram& seconds;
  metrics::Gauge& health_streams;
  metrics::Counter& health_updates;
};

}  // namespace

Status ValidateNodeServerOptions(const NodeServerOptions& o) {
  if (!ValidDnsSubdomain(o.driver_name)) {
    return InvalidArgument("driver name \"" + o.driver_name + "\" is not a DNS subdomain");
  }
  if (o.kubelet_dir.empty() || o.kubelet_dir.front() != '/') {
    return InvalidArgument("kubelet directory \"" + o.kubelet_dir + "\" is not an absolute path");
  }
  // sockaddr_un.sun_path holds 107 characters and a NUL.
  const size_t longest = std::max(
      (fs::path(o.kubelet_dir) / "plugins" / o.driver_name / "dra.sock").string().size(),
      (fs::path(o.kubelet_dir) / "plugins_registry" / (o.driver_name + "-reg.sock")).string().size());
  if (longest >= sizeof(sockaddr_un{}.sun_path)) {
    return InvalidArgument("kubelet directory \"" + o.kubelet_dir + "\" makes socket paths longer than " +
                           std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " characters");
  }
  if (o.health_resend.count() <= 0 || o.health_poll.count() <= 0 || o.poll_interval.count() <= 0) {
    return InvalidArgument("health_resend, health_poll and poll_interval must be positive");
  }
  if (o.max_threads < 2) return InvalidArgument("max_threads must be at least 2");
  return Status::Ok();
}

struct NodeServer::Impl {
  Impl(NodeServerOptions o, ClaimPreparer& p, HealthSource& h, metrics::Registry* r)
      : options(std::move(o)),
        preparer(p),
        health(h),
        own_registry(r ? nullptr : std::make_unique<metrics::Registry>()),
        m(r ? *r : *own_registry),
        plugin_dir((fs::path(options.kubelet_dir) / "plugins" / options.driver_name).string()),
        registry_dir((fs::path(options.kubelet_dir) / "plugins_registry").string()),
        dra_socket((fs::path(plugin_dir) / "dra.sock").string()),
        reg_socket((fs::path(registry_dir) / (options.driver_name + "-reg.sock")).string()) {}

  const NodeServerOptions options;
  ClaimPreparer& preparer;
  HealthSource& health;
  std::unique_ptr<metrics::Registry> own_registry;
  Metrics m;
  const std::string plugin_dir;
  const std::string registry_dir;
  const std::string dra_socket;
  const std::string reg_socket;

  // ---- request handling (worker threads) -------------------------------------------------------

  template <class Request, class Response>
  rpc::GrpcStatus Prepare(const char* version, const Request& req, Response* resp) {
    static constexpr Rpc kRpc{"prepare", "NodePrepareResources", "claim not prepared"};
    return Handle(
        kRpc, version, req, resp,
        [this](const std::vector<ClaimRef>& claims) { return preparer.Prepare(claims); },
        [](const ClaimPrepareResult& result, auto* entry) {
          if (!result.error.empty()) {
            entry->set_error(result.error);
            return;
          }
          for (const PreparedDevice& d : result.devices) {
            auto* dev = entry->add_devices();
            for (const auto& r : d.request_names) dev->add_request_names(r);
            dev->set_pool_name(d.pool_name);
            dev->set_device_name(d.device_name);
            for (const auto& id : d.cdi_device_ids) dev->add_cdi_device_ids(id);
          }
        });
  }

  template <class Request, class Response>
  rpc::GrpcStatus Unprepare(const char* version, const Request& req, Response* resp) {
    static constexpr Rpc kRpc{"unprepare", "NodeUnprepareResources", "claim not unprepared"};
    return Handle(
        kRpc, version, req, resp,
        [this](const std::vector<ClaimRef>& claims) { return preparer.Unprepare(claims); },
        [](const std::string& error, auto* entry) { entry->set_error(error); });
  }

  // Names of one kubelet call in metrics and logs.
  struct Rpc {
    const char* method;   // the "method" label
    const char* name;     // the gRPC method, in the debug line
    const char* failure;  // the warning for a claim that failed
  };

  // What both calls do around the preparer: claims without a complete identity get an error
  // without reaching it, every valid claim gets `call`'s result (through `fill`) or an error when
  // it has none, and each claim and the call's duration are counted.
  template <class Request, class Response, class Call, class Fill>
  rpc::GrpcStatus Handle(const Rpc& rpc, const char* version, const Request& req, Response* resp, Call call,
                         Fill fill) {
    const auto t0 = Clock::now();
    m.requests.Inc({rpc.method, version});
    std::vector<ClaimRef> valid;
    std::map<std::string, std::string> invalid;
    Split(req, &valid, &invalid);
    decltype(call(valid)) results;
    if (!valid.empty()) results = call(valid);
    auto& out = *resp->mutable_claims();
    for (const auto& [uid, why] : invalid) out[uid].set_error(why);
    for (const ClaimRef& c : valid) {
      auto& entry = out[c.uid];
      auto it = results.find(c.uid);
      if (it == results.end()) {
        entry.set_error("the driver returned no result for claim " + c.ns + "/" + c.name);
      } else {
        fill(it->second, &entry);
      }
    }
    int failed = 0;
    for (const auto& [uid, entry] : out) {
      const bool ok = entry.error().empty();
      m.claims.Inc({rpc.method, ok ? "ok" : "error"});
      if (!ok) {
        ++failed;
        HA_LOG(kWarn, rpc.failure).kv("claim_uid", uid).kv("error", entry.error());
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    m.seconds.Observe({rpc.method}, secs);
    HA_LOG(kDebug, rpc.name)
        .kv("version", version)
        .kv("claims", out.size())
        .kv("failed", failed)
        .kv("ms", secs * 1e3);
    return {};
  }

  // Separates claims with complete identities (deduplicated by UID) from the rest, which get an
  // error under their UID.
  template <class Request>
  static void Split(const Request& req, std::vector<ClaimRef>* valid,
                    std::map<std::string, std::string>* invalid) {
    std::map<std::string, size_t> seen;
    for (const auto& c : req.claims()) {
      std::string missing;
      if (c.uid().empty()) missing = "uid";
      if (c.namespace_().empty()) missing += missing.empty() ? "namespace" : ", namespace";
      if (c.name().empty()) missing += missing.empty() ? "name" : ", name";
      if (!missing.empty()) {
        (*invalid)[c.uid()] = "claim " + c.namespace_() + "/" + c.name() + " has no " + missing;
        continue;
      }
      auto it = seen.find(c.uid());
      if (it != seen.end()) {
        const ClaimRef& first = (*valid)[it->second];
        if (first.ns != c.namespace_() || first.name != c.name()) {
          (*invalid)[c.uid()] = "claim UID " + c.uid() + " is given for both " + first.ns + "/" + first.name +
                                " and " + c.namespace_() + "/" + c.name();
        }
        continue;
      }
      seen[c.uid()] = valid->size();
      valid->push_back(ClaimRef{c.namespace_(), c.name(), c.uid()});
    }
    // A UID reported invalid is not prepared at all, even where one of its entries was complete.
    if (!invalid->empty()) {
      std::erase_if(*valid, [&](const ClaimRef& r) { return invalid->count(r.uid) > 0; });
    }
  }

  // ---- health streams -----------------------------------------------------------------------

  // The full device list, serialized; `generation` (may be null) gets the source's generation.
  std::string HealthMessage(uint64_t* generation) {
    uint64_t seen = 0;
    std::vector<DeviceHealth> devices = health.Snapshot(&seen);
    if (generation != nullptr) *generation = seen;
    v1alpha1::NodeWatchResourcesResponse msg;
    for (const DeviceHealth& d : devices) {
      auto* out = msg.add_devices();
      out->mutable_device()->set_pool_name(d.pool_name);
      out->mutable_device()->set_device_name(d.device_name);
      out->set_health(d.status == DeviceHealthStatus::kHealthy     ? v1alpha1::HEALTHY
                      : d.status == DeviceHealthStatus::kUnhealthy ? v1alpha1::UNHEALTHY
                                                                   : v1alpha1::UNKNOWN);
      out->set_last_updated_time(d.last_updated_unix);
      out->set_health_check_timeout_seconds(options.health_timeout.count());
      out->set_message(Truncate(d.message, kHealthMessageMax));
    }
    return msg.SerializeAsString();
  }

  // Writes `message` on every open stream. Under health_mu: lists reach each stream in order.
  void SendHealthLocked(const std::string& message,
                        const std::shared_ptr<rpc::ServerStream>& only = nullptr) {
    for (auto& [id, stream] : health_streams) {
      if (only && stream != only) continue;
      if (stream->Write(message, /*replace_unsent=*/true)) m.health_updates.Inc();
    }
  }

  // NodeWatchResources (serving thread): the full list now, then from the health thread.
  void OpenHealthStream(const std::shared_ptr<rpc::ServerStream>& stream) {
    int open = 0;
    {
      std::lock_guard lock(mu);
      if (stopping) {
        stream->Finish({rpc::GrpcCode::kUnavailable, "the driver is stopping"});
        return;
      }
      open = ++open_streams;
      m.health_streams.Set(open_streams);
    }
    uint64_t id = 0;
    {
      std::lock_guard lock(health_mu);
      id = next_health_stream++;
      health_streams[id] = stream;
      uint64_t sent = 0;
      SendHealthLocked(HealthMessage(&sent), stream);
      // The thread that writes the streams runs once the first one opened (without streams, a stop
      // does not wait up to health_poll for it); it sends whatever changes after this list.
      if (!health_stop && !health_thread.joinable()) {
        health_thread = std::thread([this, sent] { WatchHealth(sent); });
      }
    }
    HA_LOG(kInfo, "health stream opened").kv("open_streams", open);
    stream->OnDone([this, id](bool cancelled) {
      {
        std::lock_guard lock(health_mu);
        health_streams.erase(id);
      }
      int left = 0;
      {
        std::lock_guard lock(mu);
        left = --open_streams;
        m.health_streams.Set(open_streams);
      }
      HA_LOG(kInfo, "health stream closed").kv("open_streams", left).kv("cancelled", cancelled);
    });
  }

  // The health thread: sends the list on every change after `generation` (the list the first
  // stream got) and at least every health_resend.
  void WatchHealth(uint64_t generation) {
    pthread_setname_np(pthread_self(), "dra-health");
    auto last_send = Clock::now();
    for (;;) {
      {
        std::lock_guard lock(health_mu);
        if (health_stop) return;
      }
      const auto until_resend = std::chrono::duration_cast<std::chrono::milliseconds>(
          last_send + options.health_resend - Clock::now());
      const auto wait = std::max(std::chrono::milliseconds(1), std::min(options.health_poll, until_resend));
      const uint64_t now_gen = health.WaitForChange(generation, wait);
      if (now_gen == generation && Clock::now() < last_send + options.health_resend) continue;
      std::lock_guard lock(health_mu);
      if (health_stop) return;
      SendHealthLocked(HealthMessage(&generation));
      last_send = Clock::now();
    }
  }

  // Health streams may open (the thread starts with the first one).
  void StartHealth() {
    std::lock_guard lock(health_mu);
    health_stop = false;
  }

  // Ends open streams with `status` (when the driver stops) and joins the health thread, if one
  // started, which notices within health_poll.
  void StopHealth(const rpc::GrpcStatus* status) {
    std::vector<std::shared_ptr<rpc::ServerStream>> streams;
    std::thread thread;
    {
      std::lock_guard lock(health_mu);
      health_stop = true;
      for (auto& [id, stream] : health_streams) streams.push_back(stream);
      thread = std::move(health_thread);
    }
    if (status != nullptr) {
      for (auto& stream : streams) stream->Finish(*status);
    }
    if (thread.joinable()) thread.join();
  }

  // ---- registration (serving thread) -----------------------------------------------------------

  void FillInfo(pluginregistration::PluginInfo* info) const {
    info->set_type("DRAPlugin");
    info->set_name(options.driver_name);
    info->set_endpoint(dra_socket);
    info->add_supported_versions(kServiceV1);
    info->add_supported_versions(kServiceV1beta1);
  }

  void OnRegistrationStatus(const pluginregistration::RegistrationStatus& s) {
    {
      std::lock_guard lock(mu);
      registered = s.plugin_registered();
      if (registered) {
        ++registrations;
        last_error.clear();
      } else {
        ++registration_errors;
        last_error = s.error().empty() ? "the kubelet rejected the registration" : s.error();
      }
    }
    state_cv.notify_all();
    m.registered.Set(s.plugin_registered() ? 1 : 0);
    m.registrations.Inc({s.plugin_registered() ? "ok" : "error"});
    if (s.plugin_registered()) {
      HA_LOG(kInfo, "registered with the kubelet")
          .kv("driver", options.driver_name)
          .kv("endpoint", dra_socket);
    } else {
      HA_LOG(kError, "the kubelet rejected the registration")
          .kv("driver", options.driver_name)
          .kv("error", s.error());
    }
  }

  // ---- servers (control thread, Start, Stop) ----------------------------------------------------

  Status ServeDra();
  Status ServeRegistration();
  void StopRegistration();
  void StopDra(std::chrono::milliseconds grace);
  // Runs Reconcile on its thread whenever the registry directory changes, and every poll interval.
  std::unique_ptr<DirWatcher> MakeWatcher();
  void Reconcile();

  // Registers the DRA socket's methods on `server`: Prepare/Unprepare (v1, v1beta1) run on `workers`.
  void AddDraMethods(rpc::Server& server, Workers& workers);
  void AddRegistrationMethods(rpc::Server& server);

  // Servers and workers: written by Start/Stop and the control thread (never concurrently).
  std::unique_ptr<rpc::Server> dra_server;
  std::unique_ptr<Workers> dra_workers;
  std::unique_ptr<rpc::Server> reg_server;
  FileId dra_id;
  FileId reg_id;

  mutable std::mutex mu;
  mutable std::condition_variable state_cv;
  bool started = false;
  bool stopped = false;
  bool stopping = false;
  bool serving = false;
  bool registered = false;
  int registrations = 0;
  int registration_errors = 0;
  int socket_recreations = 0;
  int open_streams = 0;
  std::string last_error;

  std::unique_ptr<DirWatcher> watcher;

  // Health streams: open ones by id, written on the serving thread and by the health thread.
  std::mutex health_mu;
  std::map<uint64_t, std::shared_ptr<rpc::ServerStream>> health_streams;
  uint64_t next_health_stream = 0;
  bool health_stop = false;
  std::thread health_thread;
};

namespace {

// A method whose handler parses `Request`, answers with `call` on `workers` and serializes
// `Response`; RESOURCE_EXHAUSTED when the workers are stopped or too many calls wait.
template <class Request, class Response, class Call>
rpc::Server::DeferredUnary OnWorkers(Workers& workers, Call call) {
  return rpc::ProtoDeferred<Request>([&workers, call](const Request& parsed,
                                                      const std::shared_ptr<rpc::UnaryResponder>& responder) {
    auto req = std::make_shared<Request>(parsed);
    auto job = [call, req, responder] {
      if (responder->Cancelled()) return;
      Response resp;
      rpc::GrpcStatus st = call(*req, &resp);
      responder->Finish(std::move(st), resp.SerializeAsString());
    };
    if (!workers.Post(job)) {
      responder->Finish({rpc::GrpcCode::kResourceExhausted, "too many kubelet calls in progress; retry"}, {});
    }
  });
}

}  // namespace

void NodeServer::Impl::AddDraMethods(rpc::Server& server, Workers& workers) {
  server.AddDeferredUnary(
      kPrepareV1, OnWorkers<dv1::NodePrepareResourcesRequest, dv1::NodePrepareResourcesResponse>(
                      workers, [this](const auto& req, auto* resp) { return Prepare("v1", req, resp); }));
  server.AddDeferredUnary(
      kUnprepareV1, OnWorkers<dv1::NodeUnprepareResourcesRequest, dv1::NodeUnprepareResourcesResponse>(
                        workers, [this](const auto& req, auto* resp) { return Unprepare("v1", req, resp); }));
  server.AddDeferredUnary(
      kPrepareV1beta1,
      OnWorkers<dv1beta1::NodePrepareResourcesRequest, dv1beta1::NodePrepareResourcesResponse>(
          workers, [this](const auto& req, auto* resp) { return Prepare("v1beta1", req, resp); }));
  server.AddDeferredUnary(
      kUnprepareV1beta1,
      OnWorkers<dv1beta1::NodeUnprepareResourcesRequest, dv1beta1::NodeUnprepareResourcesResponse>(
          workers, [this](const auto& req, auto* resp) { return Unprepare("v1beta1", req, resp); }));
  server.AddServerStreaming(
      kWatchHealth, rpc::ProtoStreaming<v1alpha1::NodeWatchResourcesRequest>(
                        [this](const auto& /*req*/, const std::shared_ptr<rpc::ServerStream>& stream) {
                          OpenHealthStream(stream);
                        }));
}

void NodeServer::Impl::AddRegistrationMethods(rpc::Server& server) {
  server.AddUnary(kGetInfo, rpc::ProtoUnary<pluginregistration::InfoRequest, pluginregistration::PluginInfo>(
                                [this](const auto& /*req*/, auto* info) {
                                  FillInfo(info);
                                  return rpc::GrpcStatus{};
                                }));
  server.AddUnary(
      kNotifyStatus,
      rpc::ProtoUnary<pluginregistration::RegistrationStatus, pluginregistration::RegistrationStatusResponse>(
          [this](const auto& status, auto* /*resp*/) {
            OnRegistrationStatus(status);
            return rpc::GrpcStatus{};
          }));
}

Status NodeServer::Impl::ServeDra() {
  if (Status st = MakeDirs(plugin_dir); !st.ok()) return st;
  if (Status st = ClearSocketPath(dra_socket); !st.ok()) return st;
  rpc::ServerOptions so;
  so.thread_name = "dra-grpc";
  auto server = std::make_unique<rpc::Server>(so);
  // One thread serves the socket; Prepare/Unprepare may block, so they get the others.
  auto workers = std::make_unique<Workers>(options.max_threads - 1, "dra-prepare");
  AddDraMethods(*server, *workers);
  if (Status st = server->Start(dra_socket); !st.ok()) {
    return Unavailable("cannot listen on " + dra_socket + ": " + st.message());
  }
  dra_server = std::move(server);
  dra_workers = std::move(workers);
  dra_id = StatFile(dra_socket);
  StartHealth();
  {
    std::lock_guard lock(mu);
    serving = true;
  }
  HA_LOG(kInfo, "serving the DRA API").kv("socket", dra_socket).kv("versions", "v1,v1beta1,health v1alpha1");
  return Status::Ok();
}

Status NodeServer::Impl::ServeRegistration() {
  if (Status st = MakeDirs(registry_dir); !st.ok()) return st;
  if (Status st = ClearSocketPath(reg_socket); !st.ok()) return st;
  rpc::ServerOptions so;
  so.thread_name = "dra-registrar";
  auto server = std::make_unique<rpc::Server>(so);
  AddRegistrationMethods(*server);
  if (Status st = server->Start(reg_socket); !st.ok()) {
    return Unavailable("cannot listen on " + reg_socket + ": " + st.message());
  }
  reg_server = std::move(server);
  reg_id = StatFile(reg_socket);
  HA_LOG(kInfo, "registration socket created").kv("socket", reg_socket);
  return Status::Ok();
}

void NodeServer::Impl::StopRegistration() {
  if (!reg_server) return;
  reg_server->Shutdown(Clock::now() + std::chrono::milliseconds(500));
  reg_server.reset();
  // Never remove a socket that is not ours.
  if (StatFile(reg_socket).Same(reg_id)) ::unlink(reg_socket.c_str());
  reg_id = FileId{};
  {
    std::lock_guard lock(mu);
    registered = false;
  }
  m.registered.Set(0);
  state_cv.notify_all();
}

void NodeServer::Impl::StopDra(std::chrono::milliseconds grace) {
  if (!dra_server) return;
  // Health streams end now: with UNAVAILABLE when the driver stops, cancelled by the server's
  // shutdown when it is only restarted. In-flight Prepare/Unprepare calls may finish within `grace`.
  bool driver_stopping = false;
  {
    std::lock_guard lock(mu);
    driver_stopping = stopping;
  }
  const rpc::GrpcStatus stopping_status{rpc::GrpcCode::kUnavailable, "the driver is stopping"};
  StopHealth(driver_stopping ? &stopping_status : nullptr);
  dra_server->Shutdown(Clock::now() + grace);
  dra_server.reset();
  // Calls still queued were cancelled with the server; a call running in the preparer finishes.
  dra_workers.reset();
  if (StatFile(dra_socket).Same(dra_id)) ::unlink(dra_socket.c_str());
  dra_id = FileId{};
  std::lock_guard lock(mu);
  serving = false;
}

void NodeServer::Impl::Reconcile() {
  const bool dra_gone = dra_server && !StatFile(dra_socket).Same(dra_id);
  const bool reg_gone = !reg_server || !StatFile(reg_socket).Same(reg_id);
  if (!dra_gone && !reg_gone) return;
  if (dra_gone || !dra_server) {
    HA_LOG(kWarn, "the DRA socket was removed; serving it again").kv("socket", dra_socket);
    // The kubelet must register the new endpoint: the registration socket is made again after it.
    StopRegistration();
    StopDra(std::chrono::milliseconds(0));
    if (Status st = ServeDra(); !st.ok()) {
      HA_LOG(kError, "cannot serve the DRA socket").kv("error", st.message());
      std::lock_guard lock(mu);
      last_error = st.message();
      return;
    }
    m.socket_recreations.Inc({"dra"});
  } else {
    HA_LOG(kWarn, "the registration socket was removed; creating it again").kv("socket", reg_socket);
    StopRegistration();
  }
  if (Status st = ServeRegistration(); !st.ok()) {
    HA_LOG(kError, "cannot create the registration socket").kv("error", st.message());
    std::lock_guard lock(mu);
    last_error = st.message();
    return;
  }
  m.socket_recreations.Inc({"registration"});
  std::lock_guard lock(mu);
  ++socket_recreations;
}

std::unique_ptr<DirWatcher> NodeServer::Impl::MakeWatcher() {
  DirWatcherOptions w;
  w.dir = registry_dir;
  w.interval = options.poll_interval;
  w.periodic = true;      // the DRA socket lives elsewhere: only polling sees it go
  w.notify_first = true;  // a socket may have gone before the watch was in place
  // The directory itself may be gone (some kubelet setups wipe it): make it, then watch it.
  w.before_watch = [this, last = std::string()]() mutable {
    const Status st = MakeDirs(registry_dir);
    if (!st.ok() && st.message() != last) {
      HA_LOG(kWarn, "cannot create the registry directory").kv("error", st.message());
    }
    last = st.ok() ? std::string() : st.message();
  };
  return std::make_unique<DirWatcher>(std::move(w), [this] { Reconcile(); });
}

NodeServer::NodeServer(NodeServerOptions options, ClaimPreparer& preparer, HealthSource& health,
                       metrics::Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), preparer, health, registry)) {}

NodeServer::~NodeServer() { Stop(); }

Status NodeServer::Start() {
  Impl& d = *impl_;
  if (Status st = ValidateNodeServerOptions(d.options); !st.ok()) return st;
  {
    std::lock_guard lock(d.mu);
    if (d.started) return FailedPrecondition("node server already started");
    d.started = true;
  }
  // The DRA socket first: the kubelet dials the endpoint as soon as it sees the registration socket.
  if (Status st = d.ServeDra(); !st.ok()) {
    std::lock_guard lock(d.mu);
    d.stopped = true;
    return st;
  }
  if (Status st = d.ServeRegistration(); !st.ok()) {
    d.StopDra(std::chrono::milliseconds(0));
    std::lock_guard lock(d.mu);
    d.stopped = true;
    return st;
  }
  d.watcher = d.MakeWatcher();
  if (Status st = d.watcher->Start(); !st.ok()) {
    d.StopRegistration();
    d.StopDra(std::chrono::milliseconds(0));
    std::lock_guard lock(d.mu);
    d.stopped = true;
    return st;
  }
  return Status::Ok();
}

void NodeServer::Stop() {
  Impl& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (!d.started || d.stopped) return;
    d.stopped = true;
  }
  if (d.watcher) d.watcher->Stop();
  // Registration socket first: the kubelet stops routing new claims to us before the DRA socket goes.
  d.StopRegistration();
  {
    std::lock_guard lock(d.mu);
    d.stopping = true;
  }
  d.StopDra(d.options.stop_grace);
  HA_LOG(kInfo, "kubelet plugin stopped").kv("driver", d.options.driver_name);
}

Status NodeServer::Health() const {
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  if (!d.serving)
    return Unavailable("not serving " + d.dra_socket + (d.last_error.empty() ? "" : ": " + d.last_error));
  if (!d.registered) {
    return Unavailable("not registered with the kubelet" + (d.last_error.empty() ? "" : ": " + d.last_error));
  }
  return Status::Ok();
}

NodeServerStatus NodeServer::GetStatus() const {
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  NodeServerStatus s;
  s.serving = d.serving;
  s.registered = d.registered;
  s.registrations = d.registrations;
  s.registration_errors = d.registration_errors;
  s.socket_recreations = d.socket_recreations;
  s.open_health_streams = d.open_streams;
  s.last_error = d.last_error;
  return s;
}

bool NodeServer::WaitRegistered(int count, std::chrono::milliseconds timeout) const {
  const Impl& d = *impl_;
  std::unique_lock lock(d.mu);
  return d.state_cv.wait_for(lock, timeout, [&] { return d.registered && d.registrations >= count; });
}

const std::string& NodeServer::dra_socket() const { return impl_->dra_socket; }
const std::string& NodeServer::registration_socket() const { return impl_->reg_socket; }

}  // namespace hyperaccel::dra
