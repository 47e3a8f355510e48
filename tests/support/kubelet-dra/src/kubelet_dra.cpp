#include "hyperaccel/kubelet_dra/kubelet_dra.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "dra_health_v1alpha1.grpc.pb.h"
#include "dra_v1.grpc.pb.h"
#include "dra_v1beta1.grpc.pb.h"
#include "pluginregistration.grpc.pb.h"

namespace hyperaccel::kubelet_dra {
namespace {

namespace fs = std::filesystem;
namespace dv1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace dv1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;

struct FileStamp {
  bool socket = false;
  dev_t dev = 0;
  ino_t ino = 0;
  int64_t mtime_ns = 0;  // the kubelet tells a re-created socket by its timestamp
  bool operator==(const FileStamp& o) const {
    return socket == o.socket && dev == o.dev && ino == o.ino && mtime_ns == o.mtime_ns;
  }
};

FileStamp Stamp(const std::string& path) {
  struct stat st {};
  FileStamp s;
  if (::lstat(path.c_str(), &st) != 0) return s;
  s.socket = S_ISSOCK(st.st_mode);
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

// Short reconnect backoff: a plugin restarting on the same path must be reachable at once (the
// kubelet's own connections use gRPC defaults; what is measured here is the plugin).
std::shared_ptr<grpc::Channel> Dial(const std::string& path) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args);
}

template <class Request>
void FillClaims(const std::vector<Claim>& claims, Request* req) {
  for (const Claim& c : claims) {
    auto* out = req->add_claims();
    out->set_namespace_(c.ns);
    out->set_name(c.name);
    out->set_uid(c.uid);
  }
}

template <class Response>
void ReadPrepare(const Response& resp, CallResult* out) {
  for (const auto& [uid, entry] : resp.claims()) {
    ClaimAnswer a;
    a.error = entry.error();
    for (const auto& d : entry.devices()) {
      Device dev;
      dev.request_names.assign(d.request_names().begin(), d.request_names().end());
      dev.pool_name = d.pool_name();
      dev.device_name = d.device_name();
      dev.cdi_device_ids.assign(d.cdi_device_ids().begin(), d.cdi_device_ids().end());
      a.devices.push_back(std::move(dev));
    }
    out->claims[uid] = std::move(a);
  }
}

template <class Response>
void ReadUnprepare(const Response& resp, CallResult* out) {
  for (const auto& [uid, entry] : resp.claims()) out->claims[uid].error = entry.error();
}

}  // namespace

// ---- health stream ---------------------------------------------------------------------------

struct HealthStream::State {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<HealthEntry>> messages;
  std::optional<grpc::Status> ended;
  grpc::ClientContext ctx;
  std::shared_ptr<grpc::Channel> channel;
};

HealthStream::~HealthStream() {
  Cancel();
  if (reader_.joinable()) reader_.join();
}

void HealthStream::Cancel() { state_->ctx.TryCancel(); }

std::vector<std::vector<HealthEntry>> HealthStream::WaitMessages(size_t count,
                                                                 std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_for(lock, timeout, [&] { return state_->messages.size() >= count || state_->ended; });
  return state_->messages;
}

std::optional<grpc::Status> HealthStream::WaitEnded(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_for(lock, timeout, [&] { return state_->ended.has_value(); });
  return state_->ended;
}

// ---- fake kubelet ----------------------------------------------------------------------------

struct FakeKubelet::Impl {
  explicit Impl(Options o) : options(std::move(o)) {}
  Options options;

  struct Plugin {
    Registration reg;
    FileStamp stamp;
    std::shared_ptr<grpc::Channel> channel;  // to the endpoint
  };

  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<Registration> history;
  std::map<std::string, Plugin> by_driver;         // current registrations
  std::map<std::string, FileStamp> handled;        // socket path -> stamp last registered (or rejected)
  std::map<std::string, Clock::time_point> retry;  // sockets whose GetInfo failed: next attempt
  int stop_pipe[2] = {-1, -1};
  std::thread watcher;
  bool started = false;

  // The kubelet's RegisterPlugin for a DRA plugin: GetInfo, validate, pick the service, dial, notify.
  void Register(const std::string& socket, Clock::time_point seen_at) {
    const FileStamp stamp = Stamp(socket);
    if (!stamp.socket) return;
    Registration r;
    r.socket = socket;
    r.seen_at = seen_at;
    auto reg_channel = Dial(socket);
    auto stub = pluginregistration::Registration::NewStub(reg_channel);
    pluginregistration::PluginInfo info;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + options.dial_timeout);
      ctx.set_wait_for_ready(true);
      grpc::Status st = stub->GetInfo(&ctx, pluginregistration::InfoRequest(), &info);
      if (!st.ok()) {
        // The kubelet's reconciler tries again on its next pass.
        std::lock_guard lock(mu);
        retry[socket] = Clock::now() + std::chrono::milliseconds(100);
        return;
      }
    }
    r.type = info.type();
    r.name = info.name();
    r.endpoint = info.endpoint();
    r.advertised.assign(info.supported_versions().begin(), info.supported_versions().end());
    std::string error;
    if (r.type != "DRAPlugin") {
      error = "no handler registered for plugin type: " + r.type;
    } else if (r.name.empty()) {
      error = "empty driver name";
    } else if (r.endpoint.empty() || r.endpoint.front() != '/') {
      error = "endpoint \"" + r.endpoint + "\" is not an absolute path";
    } else if (r.advertised.empty()) {
      error = "empty list of supported versions";
    } else {
      for (const std::string& v : r.advertised) {
        if (std::find(options.known_services.begin(), options.known_services.end(), v) !=
            options.known_services.end()) {
          r.service = v;
          break;
        }
      }
      if (r.service.empty())
        error = "none of the versions supported by the plugin are supported by the kubelet";
    }
    std::shared_ptr<grpc::Channel> channel;
    if (error.empty()) {
      channel = Dial(r.endpoint);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() + options.dial_timeout)) {
        error = "cannot connect to the endpoint " + r.endpoint;
      }
    }
    r.ok = error.empty();
    r.error = error;
    {
      std::lock_guard lock(mu);
      handled[socket] = stamp;
      retry.erase(socket);
    }
    pluginregistration::RegistrationStatus status;
    status.set_plugin_registered(r.ok);
    status.set_error(error);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options.dial_timeout);
    pluginregistration::RegistrationStatusResponse ignored;
    const grpc::Status notified = stub->NotifyRegistrationStatus(&ctx, status, &ignored);
    r.done_at = Clock::now();
    if (!notified.ok()) {
      // The kubelet logs this and keeps its decision; recorded so tests see it.
      r.error += (r.error.empty() ? "" : "; ") + std::string("NotifyRegistrationStatus failed: ") +
                 notified.error_message();
    }
    {
      std::lock_guard lock(mu);
      if (r.ok) by_driver[r.name] = Plugin{r, stamp, channel};
      history.push_back(r);
    }
    cv.notify_all();
  }

  void Deregister(const std::string& socket) {
    std::lock_guard lock(mu);
    handled.erase(socket);
    retry.erase(socket);
    std::erase_if(by_driver, [&](const auto& kv) { return kv.second.reg.socket == socket; });
  }

  // A pass over the directory: new or re-created sockets are registered, vanished ones forgotten.
  void Scan(const std::set<std::string>& created = {}) {
    std::set<std::string> present;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(options.registry_dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name.front() == '.') continue;
      const std::string path = entry.path().string();
      const FileStamp stamp = Stamp(path);
      if (!stamp.socket) continue;
      present.insert(path);
      bool due = false;
      {
        std::lock_guard lock(mu);
        auto h = handled.find(path);
        auto r = retry.find(path);
        if (r != retry.end()) {
          due = Clock::now() >= r->second;
        } else {
          // A CREATE event always counts: a re-created socket may reuse the inode.
          due = h == handled.end() || !(h->second == stamp) || created.count(name) > 0;
        }
      }
      if (due) Register(path, Clock::now());
    }
    std::vector<std::string> gone;
    {
      std::lock_guard lock(mu);
      for (const auto& [path, stamp] : handled) {
        if (!present.count(path)) gone.push_back(path);
      }
      for (const auto& [path, when] : retry) {
        if (!present.count(path)) gone.push_back(path);
      }
    }
    for (const auto& path : gone) Deregister(path);
  }

  void Loop() {
    constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF;
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0) ::inotify_add_watch(fd, options.registry_dir.c_str(), kMask);
    Scan();  // sockets that were there before the watch
    while (true) {
      bool retry_pending = false;
      {
        std::lock_guard lock(mu);
        retry_pending = !retry.empty();
      }
      pollfd fds[2] = {{stop_pipe[0], POLLIN, 0}, {fd, POLLIN, 0}};
      const int n = ::poll(fds, fd >= 0 ? 2 : 1, retry_pending ? 50 : (fd >= 0 ? 1000 : 100));
      if (n < 0 && errno != EINTR) break;
      if (fds[0].revents != 0) break;
      std::set<std::string> created;
      if (fd >= 0 && fds[1].revents != 0) {
        alignas(inotify_event) char buf[4096];
        bool lost = false;
        while (true) {
          const ssize_t len = ::read(fd, buf, sizeof buf);
          if (len <= 0) break;
          for (ssize_t off = 0; off < len;) {
            inotify_event ev{};
            std::memcpy(&ev, buf + off, sizeof ev);
            if (ev.mask & (IN_IGNORED | IN_DELETE_SELF)) lost = true;
            if ((ev.mask & (IN_CREATE | IN_MOVED_TO)) && ev.len > 0) {
              created.insert(std::string(buf + off + sizeof(inotify_event)));
            }
            off += static_cast<ssize_t>(sizeof(inotify_event) + ev.len);
          }
        }
        if (lost) {
          // The registry directory went away: make it again as the kubelet would on start.
          ::close(fd);
          std::error_code ec;
          fs::create_directories(options.registry_dir, ec);
          fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
          if (fd >= 0) ::inotify_add_watch(fd, options.registry_dir.c_str(), kMask);
        }
      }
      Scan(created);
    }
    if (fd >= 0) ::close(fd);
  }

  std::optional<Plugin> Find(const std::string& driver) const {
    std::lock_guard lock(mu);
    auto it = by_driver.find(driver);
    if (it == by_driver.end()) return std::nullopt;
    return it->second;
  }

  template <class Fn>
  CallResult Call(const std::string& driver, Fn fn) {
    CallResult out;
    auto p = Find(driver);
    if (!p) {
      out.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "driver " + driver + " is not registered");
      return out;
    }
    out.service = p->reg.service;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    fn(*p, ctx, out);
    return out;
  }
};

FakeKubelet::FakeKubelet(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

FakeKubelet::~FakeKubelet() { Stop(); }

Status FakeKubelet::Start() {
  Impl& d = *impl_;
  if (d.started) return FailedPrecondition("already started");
  std::error_code ec;
  fs::create_directories(d.options.registry_dir, ec);
  if (ec) return Unavailable("cannot create " + d.options.registry_dir + ": " + ec.message());
  if (::pipe2(d.stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return Unavailable("pipe: " + ErrnoMessage(errno));
  d.started = true;
  d.watcher = std::thread([&d] { d.Loop(); });
  return Status::Ok();
}

void FakeKubelet::Stop() {
  Impl& d = *impl_;
  if (!d.started) return;
  d.started = false;
  char b = 1;
  [[maybe_unused]] const ssize_t n = ::write(d.stop_pipe[1], &b, 1);
  if (d.watcher.joinable()) d.watcher.join();
  for (int& fd : d.stop_pipe) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

std::vector<Registration> FakeKubelet::Registrations() const {
  std::lock_guard lock(impl_->mu);
  return impl_->history;
}

std::optional<Registration> FakeKubelet::WaitRegistered(const std::string& driver, size_t count,
                                                        std::chrono::milliseconds timeout) const {
  const Impl& d = *impl_;
  std::unique_lock lock(d.mu);
  std::optional<Registration> latest;
  d.cv.wait_for(lock, timeout, [&] {
    size_t n = 0;
    for (const Registration& r : d.history) {
      if (r.ok && r.name == driver) {
        ++n;
        latest = r;
      }
    }
    return n >= count;
  });
  size_t n = 0;
  for (const Registration& r : d.history) n += r.ok && r.name == driver ? 1 : 0;
  if (n < count) return std::nullopt;
  return latest;
}

std::optional<Registration> FakeKubelet::Current(const std::string& driver) const {
  auto p = impl_->Find(driver);
  if (!p) return std::nullopt;
  return p->reg;
}

CallResult FakeKubelet::Prepare(const std::string& driver, const std::vector<Claim>& claims) {
  return impl_->Call(driver, [&](const Impl::Plugin& p, grpc::ClientContext& ctx, CallResult& out) {
    if (p.reg.service == "v1.DRAPlugin") {
      dv1::NodePrepareResourcesRequest req;
      FillClaims(claims, &req);
      dv1::NodePrepareResourcesResponse resp;
      out.status = dv1::DRAPlugin::NewStub(p.channel)->NodePrepareResources(&ctx, req, &resp);
      ReadPrepare(resp, &out);
    } else {
      dv1beta1::NodePrepareResourcesRequest req;
      FillClaims(claims, &req);
      dv1beta1::NodePrepareResourcesResponse resp;
      out.status = dv1beta1::DRAPlugin::NewStub(p.channel)->NodePrepareResources(&ctx, req, &resp);
      ReadPrepare(resp, &out);
    }
  });
}

CallResult FakeKubelet::Unprepare(const std::string& driver, const std::vector<Claim>& claims) {
  return impl_->Call(driver, [&](const Impl::Plugin& p, grpc::ClientContext& ctx, CallResult& out) {
    if (p.reg.service == "v1.DRAPlugin") {
      dv1::NodeUnprepareResourcesRequest req;
      FillClaims(claims, &req);
      dv1::NodeUnprepareResourcesResponse resp;
      out.status = dv1::DRAPlugin::NewStub(p.channel)->NodeUnprepareResources(&ctx, req, &resp);
      ReadUnprepare(resp, &out);
    } else {
      dv1beta1::NodeUnprepareResourcesRequest req;
      FillClaims(claims, &req);
      dv1beta1::NodeUnprepareResourcesResponse resp;
      out.status = dv1beta1::DRAPlugin::NewStub(p.channel)->NodeUnprepareResources(&ctx, req, &resp);
      ReadUnprepare(resp, &out);
    }
  });
}

std::unique_ptr<HealthStream> FakeKubelet::WatchHealth(const std::string& driver) {
  auto p = impl_->Find(driver);
  std::unique_ptr<HealthStream> stream(new HealthStream());
  stream->state_ = std::make_shared<HealthStream::State>();
  auto state = stream->state_;
  if (!p) {
    state->ended = grpc::Status(grpc::StatusCode::UNAVAILABLE, "driver " + driver + " is not registered");
    return stream;
  }
  state->channel = p->channel;
  stream->reader_ = std::thread([state] {
    auto stub = v1alpha1::DRAResourceHealth::NewStub(state->channel);
    auto reader = stub->NodeWatchResources(&state->ctx, v1alpha1::NodeWatchResourcesRequest());
    v1alpha1::NodeWatchResourcesResponse msg;
    while (reader->Read(&msg)) {
      std::vector<HealthEntry> list;
      for (const auto& d : msg.devices()) {
        HealthEntry e;
        e.pool_name = d.device().pool_name();
        e.device_name = d.device().device_name();
        e.health = d.health();
        e.last_updated = d.last_updated_time();
        e.timeout_seconds = d.health_check_timeout_seconds();
        e.message = d.message();
        list.push_back(std::move(e));
      }
      {
        std::lock_guard lock(state->mu);
        state->messages.push_back(std::move(list));
      }
      state->cv.notify_all();
    }
    grpc::Status st = reader->Finish();
    {
      std::lock_guard lock(state->mu);
      state->ended = st;
    }
    state->cv.notify_all();
  });
  return stream;
}

}  // namespace hyperaccel::kubelet_dra
