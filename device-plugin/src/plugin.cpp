#include "hyperaccel/device_plugin/plugin.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "hyperaccel/common/dir_watcher.h"
#include "hyperaccel/common/files.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/rpc/grpc_unary.h"
#include "hyperaccel/rpc/h2_server.h"
#include "instance_lock.h"
#include "plugin_metrics.h"
#include "service.h"

namespace hyperaccel::device_plugin {
namespace {

using Clock = std::chrono::steady_clock;
using files::FileId;
using files::StatFile;

// How long an instance that handed its socket over keeps answering after the kubelet moved to its
// successor (HandOver).
constexpr std::chrono::milliseconds kHandOverGrace{200};

std::string JoinPath(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

// Checks that `path` is free or a socket (stale, or the one of an instance that handed the socket
// over to us): it is replaced atomically by rename(2). Refuses to replace anything else. Called only
// while holding the socket's lock.
Status CheckReplaceable(const std::string& path) {
  FileId id = StatFile(path);
  if (id.exists && !id.is_socket)
    return FailedPrecondition(path + " exists and is not a socket; refusing to replace it");
  return Status::Ok();
}

// A fresh name in the socket's directory to bind to before renaming over the socket path. gRPC
// unlinks the path it listened on when the server goes away; binding elsewhere and renaming means
// an old server never removes the socket of the instance that took over, and clients never see
// the path missing.
std::string BindPath(const std::string& socket_path) {
  static std::atomic<uint64_t> counter{0};
  return (std::filesystem::path(socket_path).parent_path() /
          (".hyperaccel-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) +
           ".sock"))
      .string();
}

}  // namespace

struct Plugin::Impl {
  // One resource: its socket, server and registration. Fields are written by the control thread
  // under `mu`; other threads only read them under `mu`.
  struct Endpoint {
    std::string resource;
    std::string socket_path;
    std::shared_ptr<const ResourceView> view;
    std::unique_ptr<DevicePluginService> service;
    std::unique_ptr<rpc::Server> server;
    FileId own_id;
    FileId kubelet_id;                   // kubelet.sock at the last successful Register
    std::unique_ptr<InstanceLock> lock;  // control thread only (and Stop, after it ended)
    bool standby = false;                // another instance owns the socket; we wait
    bool serving = false;
    bool registered = false;
    int registrations = 0;
    Clock::time_point registered_at;
    Clock::time_point next_attempt;
    std::chrono::milliseconds backoff{0};
    std::string last_error;
    // Touched from the serving thread.
    std::atomic<uint64_t> generation{0};
    std::atomic<bool> stream_lost{false};
    std::atomic<int> open_streams{0};
  };

  Impl(PluginOptions o, DeviceSource* s, metrics::Registry* r)
      : options(std::move(o)),
        source(s),
        own_registry(r ? nullptr : std::make_unique<metrics::Registry>()),
        metrics(r ? *r : *own_registry),
        table(MakeNamer(options.naming, options.resource_name, options.per_shell_domain,
                        SysfsShellTimestamp(options.sysfs_root))),
        kubelet_socket(JoinPath(options.kubelet_dir, kKubeletSocketName)) {}

  ~Impl() {
    if (cancel_fd >= 0) ::close(cancel_fd);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  PluginOptions options;
  DeviceSource* source;
  std::unique_ptr<metrics::Registry> own_registry;
  PluginMetrics metrics;

  std::mutex inventory_mu;  // serializes OnInventory
  DeviceTable table;
  std::string last_cdi;
  std::set<std::string> cdi_ids;
  std::map<std::string, bool> last_health;  // id -> healthy, for transition logs

  const std::string kubelet_socket;

  mutable std::mutex mu;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints;
  bool have_inventory = false;
  bool started = false;
  bool stopped = false;
  Clock::time_point start_time;

  std::mutex wake_mu;
  std::condition_variable wake_cv;
  bool wake = false;
  bool fs_event = false;
  bool stop = false;
  // Readable once Stop() began: cancels a Register call in progress (and any later one).
  const int cancel_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

  mutable std::mutex state_mu;
  mutable std::condition_variable state_cv;
  uint64_t state_version = 0;

  std::unique_ptr<DirWatcher> watcher;
  std::thread control;

  void Wake(bool from_fs) {
    {
      std::lock_guard lock(wake_mu);
      wake = true;
      fs_event = fs_event || from_fs;
    }
    wake_cv.notify_all();
  }

  void StateChanged() {
    {
      std::lock_guard lock(state_mu);
      ++state_version;
    }
    state_cv.notify_all();
  }

  // Called with `mu` held.
  Endpoint& EndpointFor(const std::string& resource) {
    auto& e = endpoints[resource];
    if (!e) {
      e = std::make_unique<Endpoint>();
      e->resource = resource;
      e->socket_path =
          JoinPath(options.kubelet_dir, SocketNameFor(options.naming, resource, options.socket_name));
      auto empty = std::make_shared<ResourceView>();
      empty->resource_name = resource;
      e->view = empty;
    }
    return *e;
  }

  void OnInventory(const hw::Inventory& inventory) {
    std::lock_guard inv_lock(inventory_mu);
    table.Observe(inventory);
    if (options.allocate.cdi) WriteCdi();
    std::set<std::string> changed;
    auto views = table.Build(cdi_ids, &changed);
    bool first = false;
    {
      std::lock_guard lock(mu);
      first = !have_inventory;
      have_inventory = true;
      for (auto& [name, view] : views) {
        Endpoint& e = EndpointFor(name);
        e.view = view;
        if (e.service && (changed.count(name) || first)) e.service->Publish(view);
      }
    }
    metrics.card_healthy.Clear();
    for (auto& [name, view] : views) {
      for (const DeviceEntry& d : view->devices) {
        metrics.card_healthy.Set({name, d.card.id, d.card.serial}, d.healthy ? 1 : 0);
        auto it = last_health.find(d.card.id);
        if (it == last_health.end() || it->second != d.healthy) {
          auto line = HA_LOG(kInfo, d.healthy ? "card healthy" : "card unhealthy");
          line.kv("resource", name).kv("device", d.card.id).kv("serial", d.card.serial);
          if (!d.healthy) line.kv("reason", d.reason);
        }
        last_health[d.card.id] = d.healthy;
      }
    }
    if (first) {
      HA_LOG(kInfo, "first inventory")
          .kv("cards", inventory.cards.size())
          .kv("healthy", inventory.HealthyCount())
          .kv("resources", views.size());
    }
    Wake(false);
    StateChanged();
  }

  // Writes the CDI spec when its content changed. Called with inventory_mu held.
  void WriteCdi() {
    std::vector<hw::Card> cards = table.AllCards();
    std::string content = RenderCdiSpec(cards, options.allocate);
    if (content == last_cdi) return;
    const std::string path = CdiSpecPath(options.allocate);
    Status st = WriteFileAtomic(path, content);
    metrics.cdi_writes.Inc({st.ok() ? "ok" : "error"});
    if (!st.ok()) {
      HA_LOG(kError, "cannot write the CDI spec; Allocate refuses cards it does not cover")
          .kv("error", st.message());
      return;
    }
    last_cdi = content;
    cdi_ids.clear();
    for (const hw::Card& c : cards) cdi_ids.insert(c.id);
    HA_LOG(kInfo, "CDI spec written").kv("path", path).kv("devices", cards.size());
  }

  // ---- control thread ------------------------------------------------------------------------

  Status Serve(Endpoint& e) {
    if (Status st = CheckReplaceable(e.socket_path); !st.ok()) return st;
    auto service = std::make_unique<DevicePluginService>(
        e.resource, options, &metrics, [this, ep = &e](uint64_t gen, int open, bool ended) {
          ep->open_streams.store(open);
          if (ended && open == 0 && gen == ep->generation.load()) {
            ep->stream_lost.store(true);
            Wake(false);
          }
          StateChanged();
        });
    {
      std::lock_guard lock(mu);
      service->Publish(e.view);
      e.service = std::move(service);
    }
    rpc::ServerOptions server_options;
    server_options.thread_name = "plugin-grpc";  // for operators' `top -H` and the benchmarks
    auto server = std::make_unique<rpc::Server>(server_options);
    e.service->AddTo(*server);
    const std::string bind_path = BindPath(e.socket_path);
    const auto t0 = Clock::now();
    if (Status st = server->Start(bind_path); !st.ok()) {
      return Unavailable("cannot listen on " + bind_path + ": " + st.message());
    }
    if (::rename(bind_path.c_str(), e.socket_path.c_str()) != 0) {
      const std::string why = ErrnoMessage(errno);
      server->Shutdown(std::chrono::steady_clock::now());
      ::unlink(bind_path.c_str());
      return Unavailable("cannot move " + bind_path + " to " + e.socket_path + ": " + why);
    }
    FileId own = StatFile(e.socket_path);
    const auto t1 = Clock::now();

    // The kubelet dials us back inside Register: make sure we answer first, on a connection of our
    // own (each call of GrpcUnaryCall opens one, so it cannot reach an instance that handed over).
    rpc::GrpcCallOptions call;
    call.timeout = std::chrono::seconds(5);
    call.user_agent = "hyperaccel-device-plugin";
    auto probe =
        rpc::GrpcUnaryCall(e.socket_path, kMethodOptions, v1beta1::Empty().SerializeAsString(), call);
    v1beta1::DevicePluginOptions reply;
    if (probe.ok() && !reply.ParseFromString(*probe)) probe = Internal("cannot parse the options it sent");
    if (!probe.ok()) {
      server->Shutdown(std::chrono::steady_clock::now());
      return Unavailable("our own socket " + e.socket_path + " does not answer: " + probe.status().message());
    }
    std::lock_guard lock(mu);
    e.server = std::move(server);
    e.own_id = own;
    e.serving = true;
    HA_LOG(kInfo, "serving")
        .kv("resource", e.resource)
        .kv("socket", e.socket_path)
        .kv("start_us", std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count())
        .kv("self_check_us",
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t1).count());
    return Status::Ok();
  }

  void StopServing(Endpoint& e, bool remove_socket) {
    std::unique_ptr<rpc::Server> server;
    std::unique_ptr<DevicePluginService> service;
    {
      std::lock_guard lock(mu);
      server = std::move(e.server);
      service = std::move(e.service);
      e.serving = false;
      e.registered = false;
    }
    metrics.registered.Set({e.resource}, 0);
    if (service) service->CloseStreams();
    // Calls in progress get until the deadline; the serving thread is joined before the service
    // it serves goes.
    if (server) server->Shutdown(std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
    server.reset();
    if (service) service->JoinHooks();
    e.open_streams.store(0);
    if (remove_socket) {
      FileId now = StatFile(e.socket_path);
      if (now.exists && now == e.own_id) ::unlink(e.socket_path.c_str());
    }
    StateChanged();
  }

  Status RegisterOnce(Endpoint& e) {
    v1beta1::RegisterRequest req;
    req.set_version(kApiVersion);
    req.set_endpoint(std::filesystem::path(e.socket_path).filename().string());
    req.set_resource_name(e.resource);
    {
      std::lock_guard lock(mu);
      if (!e.service) return Unavailable("not serving");
      *req.mutable_options() = e.service->Options();
      e.service->SetGeneration(e.generation.load() + 1);
    }
    e.generation.fetch_add(1);
    rpc::GrpcCallOptions call;
    call.timeout = options.register_timeout;
    call.user_agent = "hyperaccel-device-plugin";
    call.cancel_fd = cancel_fd;
    {
      std::lock_guard lock(wake_mu);
      if (stop) return Unavailable("stopping");
    }
    auto reply = rpc::GrpcUnaryCall(kubelet_socket, kMethodRegister, req.SerializeAsString(), call);
    if (!reply.ok()) return Unavailable("Register with " + kubelet_socket + ": " + reply.status().message());
    return Status::Ok();
  }

  // One pass over every endpoint; returns when the next pass is due at the latest.
  Clock::time_point Reconcile() {
    auto now = Clock::now();
    auto next = now + options.poll_interval;
    std::vector<Endpoint*> list;
    bool may_register = false;
    {
      std::lock_guard lock(mu);
      for (auto& [name, e] : endpoints) list.push_back(e.get());
      may_register = have_inventory || now - start_time >= options.first_inventory_wait;
      if (!may_register) next = std::min(next, start_time + options.first_inventory_wait);
    }
    const FileId kubelet = StatFile(kubelet_socket);
    for (Endpoint* ep : list) {
      Endpoint& e = *ep;
      if (!EnsureOwnership(e, now, &next)) continue;
      if (e.serving && !(StatFile(e.socket_path) == e.own_id)) {
        HA_LOG(kWarn, "our socket was removed; serving again").kv("socket", e.socket_path);
        StopServing(e, false);
      }
      if (!e.serving) {
        if (now < e.next_attempt) {
          next = std::min(next, e.next_attempt);
          continue;
        }
        if (Status st = Serve(e); !st.ok()) {
          Backoff(e, st.message(), "serve");
          next = std::min(next, e.next_attempt);
          continue;
        }
        e.backoff = std::chrono::milliseconds(0);
      }

      std::string why;
      if (!e.registered) {
        why = e.registrations == 0 ? "start" : "not registered";
      } else if (!kubelet.exists) {
        why = "kubelet.sock gone";
      } else if (!(kubelet == e.kubelet_id)) {
        why = "kubelet.sock re-created (kubelet restart)";
      } else if (e.stream_lost.load()) {
        why = "ListAndWatch stream ended";
      } else if (e.open_streams.load() == 0 && now - e.registered_at >= options.stream_grace) {
        why = "no ListAndWatch stream since registration";
      }
      if (why.empty() || !may_register) continue;
      if (e.registered) {
        std::lock_guard lock(mu);
        e.registered = false;
        metrics.registered.Set({e.resource}, 0);
        HA_LOG(kInfo, "registering again").kv("resource", e.resource).kv("reason", why);
      }
      if (!kubelet.exists) {
        if (e.last_error != "waiting for kubelet.sock") {
          HA_LOG(kInfo, "waiting for the kubelet").kv("socket", kubelet_socket);
          std::lock_guard lock(mu);
          e.last_error = "waiting for kubelet.sock";
        }
        continue;  // inotify (or the next poll) brings us back when it appears
      }
      if (now < e.next_attempt) {
        next = std::min(next, e.next_attempt);
        continue;
      }
      e.stream_lost.store(false);
      Status st = RegisterOnce(e);
      if (!st.ok()) {
        metrics.registrations.Inc({e.resource, "error"});
        Backoff(e, st.message(), "register");
        next = std::min(next, e.next_attempt);
        continue;
      }
      metrics.registrations.Inc({e.resource, "ok"});
      metrics.registered.Set({e.resource}, 1);
      {
        std::lock_guard lock(mu);
        e.registered = true;
        e.registrations++;
        e.kubelet_id = kubelet;
        e.registered_at = Clock::now();
        e.backoff = std::chrono::milliseconds(0);
        e.last_error.clear();
      }
      HA_LOG(kInfo, "registered")
          .kv("resource", e.resource)
          .kv("endpoint", std::filesystem::path(e.socket_path).filename().string())
          .kv("registrations", e.registrations);
      StateChanged();
      next = std::min(next, e.registered_at + options.stream_grace);
    }
    return next;
  }

  // One instance per socket (see InstanceLock): true when this instance owns the endpoint's
  // socket and may serve it. Otherwise the endpoint waits in standby, touching nothing, and the
  // next check is due within `standby_poll`.
  bool EnsureOwnership(Endpoint& e, Clock::time_point now, Clock::time_point* next) {
    if (!e.lock) e.lock = std::make_unique<InstanceLock>(e.socket_path);
    if (e.lock->held()) {
      if (e.lock->StillOnDisk()) return true;
      // An older kubelet deletes every file of the directory when it starts, our lock file too:
      // lock a fresh one, unless a waiting instance was quicker.
      HA_LOG(kInfo, "lock file deleted; locking it again").kv("lock", e.lock->lock_path());
      e.lock->Release();
    }
    Status st = e.lock->TryAcquire();
    if (st.ok()) {
      if (e.standby) {
        HA_LOG(kInfo, "the other instance is gone; taking over the socket")
            .kv("resource", e.resource)
            .kv("socket", e.socket_path);
        e.lock->ClearStandby();
        std::lock_guard lock(mu);
        e.standby = false;
        e.last_error.clear();
      }
      metrics.standby.Set({e.resource}, 0);
      return true;
    }
    if (e.serving) {
      HA_LOG(kWarn, "another instance took the socket over; standing by")
          .kv("resource", e.resource)
          .kv("socket", e.socket_path);
      StopServing(e, false);
    }
    if (!e.standby) {
      e.lock->MarkStandby();
      HA_LOG(kWarn, "another instance serves this socket; waiting for it to exit (one instance per socket)")
          .kv("resource", e.resource)
          .kv("socket", e.socket_path)
          .kv("lock", e.lock->lock_path())
          .kv("detail", st.message());
      std::lock_guard lock(mu);
      e.standby = true;
      e.last_error = "standby: another instance serves " + e.socket_path;
    }
    metrics.standby.Set({e.resource}, 1);
    StateChanged();
    *next = std::min(*next, now + options.standby_poll);
    return false;
  }

  // Stop() of an instance whose successor waits: let it take the socket while we still answer
  // the kubelet, so no Allocate meets a closed socket. Ends when the kubelet moved to the new
  // instance (the successor holds the lock and our ListAndWatch stream ended) or after
  // `handover_timeout`. The socket path is the successor's from the moment it holds the lock, so
  // it is never removed here (a socket left by a successor that never came is stale, and the
  // next instance removes it under the lock).
  void HandOver(Endpoint& e) {
    HA_LOG(kInfo, "handing the socket over to the waiting instance")
        .kv("resource", e.resource)
        .kv("socket", e.socket_path);
    e.lock->Release();
    const auto deadline = Clock::now() + options.handover_timeout;
    bool moved = false;
    while (Clock::now() < deadline) {
      moved = e.open_streams.load() == 0 && e.lock->HeldByAnother();
      if (moved) break;
      std::unique_lock lock(state_mu);
      state_cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (moved) {
      // A call the kubelet sent on our connection just before it switched to the new instance
      // can still be on its way: keep answering a moment, or it would meet a server shutting down
      // and fail with CANCELLED.
      std::this_thread::sleep_for(kHandOverGrace);
      HA_LOG(kInfo, "handed over").kv("resource", e.resource);
    } else {
      HA_LOG(kWarn, "the waiting instance did not take over in time; stopping anyway")
          .kv("resource", e.resource)
          .kv("timeout_ms", options.handover_timeout.count());
    }
    StopServing(e, false);
  }

  void Backoff(Endpoint& e, const std::string& error, const char* what) {
    e.backoff =
        e.backoff.count() == 0 ? options.backoff_initial : std::min(e.backoff * 2, options.backoff_max);
    e.next_attempt = Clock::now() + e.backoff;
    if (error != e.last_error) {
      HA_LOG(kWarn, std::string(what) + " failed; retrying")
          .kv("resource", e.resource)
          .kv("error", error)
          .kv("retry_ms", e.backoff.count());
    }
    std::lock_guard lock(mu);
    e.last_error = error;
  }

  void ControlLoop() {
    auto next = Clock::now();
    while (true) {
      bool from_fs = false;
      {
        std::unique_lock lock(wake_mu);
        wake_cv.wait_until(lock, next, [&] { return wake || stop; });
        if (stop) return;
        from_fs = fs_event;
        wake = false;
        fs_event = false;
        // Debounce: the kubelet removes sockets and creates kubelet.sock in quick succession.
        while (from_fs && wake_cv.wait_for(lock, options.debounce, [&] { return fs_event || stop; })) {
          if (stop) return;
          fs_event = false;
        }
      }
      next = Reconcile();
    }
  }
};

Plugin::Plugin(PluginOptions options, DeviceSource* source, metrics::Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), source, registry)) {}

Plugin::~Plugin() { Stop(); }

Status Plugin::Start() {
  Impl& d = *impl_;
  if (Status st = ValidateOptions(d.options); !st.ok()) return st;
  {
    std::lock_guard lock(d.mu);
    if (d.started) return FailedPrecondition("plugin already started");
    d.started = true;
    d.start_time = Clock::now();
    if (d.options.naming == NamingMode::kSingle) d.EndpointFor(d.options.resource_name);
  }
  std::error_code ec;
  std::filesystem::create_directories(d.options.kubelet_dir, ec);  // the kubelet may not have made it yet
  if (d.options.allocate.cdi) {
    std::lock_guard inv_lock(d.inventory_mu);
    d.WriteCdi();  // an empty spec now; filled in before any card is advertised
  }
  // Wakes the registration loop when a socket in the device-plugin directory comes or goes
  // (kubelet.sock created, ours deleted); the loop also polls stat(), so this only makes it faster.
  DirWatcherOptions watch;
  watch.dir = d.options.kubelet_dir;
  watch.suffix = ".sock";
  d.watcher = std::make_unique<DirWatcher>(std::move(watch), [&d] { d.Wake(true); });
  if (Status st = d.watcher->Start(); !st.ok()) {
    HA_LOG(kWarn, "no directory watcher; relying on polling").kv("error", st.message());
  }
  d.control = std::thread([&d] { d.ControlLoop(); });
  if (Status st = d.source->Start([&d](const hw::Inventory& inv) { d.OnInventory(inv); }); !st.ok()) {
    Stop();
    return st.WithContext("device source");
  }
  return Status::Ok();
}

void Plugin::Stop() {
  Impl& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (!d.started || d.stopped) return;
    d.stopped = true;
  }
  d.source->Stop();
  {
    std::lock_guard lock(d.wake_mu);
    d.stop = true;
  }
  if (d.cancel_fd >= 0) {
    const uint64_t one = 1;
    (void)!::write(d.cancel_fd, &one, sizeof one);
  }
  d.wake_cv.notify_all();
  if (d.control.joinable()) d.control.join();
  if (d.watcher) d.watcher->Stop();
  std::vector<Impl::Endpoint*> list;
  {
    std::lock_guard lock(d.mu);
    for (auto& [name, e] : d.endpoints) list.push_back(e.get());
  }
  for (auto* e : list) {
    if (e->serving && e->lock && e->lock->held() && e->lock->StandbyWaiting()) {
      d.HandOver(*e);
    } else {
      d.StopServing(*e, true);
    }
    if (e->lock) {
      e->lock->ClearStandby();
      e->lock->Release();
    }
    d.metrics.standby.Set({e->resource}, 0);
  }
  HA_LOG(kInfo, "stopped");
}

Status Plugin::Health() const {
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  if (d.endpoints.empty()) {
    return d.have_inventory ? Status::Ok() : Unavailable("waiting for the first inventory");
  }
  for (const auto& [name, e] : d.endpoints) {
    if (e->standby) continue;  // alive and waiting by design; Ready() says not ready
    if (!e->serving) return Unavailable(name + ": not serving on " + e->socket_path + ": " + e->last_error);
    if (!e->registered) {
      return Unavailable(name + ": not registered with the kubelet" +
                         (e->last_error.empty() ? std::string() : ": " + e->last_error));
    }
    if (e->open_streams.load() == 0) return Unavailable(name + ": the kubelet holds no ListAndWatch stream");
  }
  return Status::Ok();
}

Status Plugin::Ready() const {
  if (Status st = Health(); !st.ok()) return st;
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  for (const auto& [name, e] : d.endpoints) {
    if (e->standby) return Unavailable(name + ": " + e->last_error + "; waiting for it to exit");
  }
  return Status::Ok();
}

std::vector<EndpointStatus> Plugin::Endpoints() const {
  const Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  std::vector<EndpointStatus> out;
  for (const auto& [name, e] : d.endpoints) {
    EndpointStatus s;
    s.resource_name = name;
    s.socket_path = e->socket_path;
    s.serving = e->serving;
    s.standby = e->standby;
    s.registered = e->registered;
    s.open_streams = e->open_streams.load();
    s.registrations = e->registrations;
    s.devices = e->view ? e->view->devices.size() : 0;
    s.healthy = e->view ? e->view->HealthyCount() : 0;
    out.push_back(std::move(s));
  }
  return out;
}

bool Plugin::WaitHealthy(std::chrono::milliseconds timeout) const {
  const Impl& d = *impl_;
  auto deadline = Clock::now() + timeout;
  while (true) {
    uint64_t seen;
    {
      std::lock_guard lock(d.state_mu);
      seen = d.state_version;
    }
    if (Health().ok()) return true;
    std::unique_lock lock(d.state_mu);
    if (!d.state_cv.wait_until(lock, deadline, [&] { return d.state_version != seen; })) return false;
  }
}

}  // namespace hyperaccel::device_plugin
