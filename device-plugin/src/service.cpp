#include "service.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "hyperaccel/common/log.h"
#include "hyperaccel/common/status.h"

extern char** environ;

namespace hyperaccel::device_plugin {
namespace {

grpc::Status ToGrpc(const Status& st) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (st.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kDeadlineExceeded: code = grpc::StatusCode::DEADLINE_EXCEEDED; break;
    case StatusCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case StatusCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case StatusCode::kConflict: code = grpc::StatusCode::ABORTED; break;
    case StatusCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
  }
  return {code, st.message()};
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string JoinIds(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) {
    if (!out.empty()) out += ',';
    out += id;
  }
  return out;
}

}  // namespace

v1beta1::ListAndWatchResponse ToListAndWatch(const ResourceView& view) {
  v1beta1::ListAndWatchResponse out;
  for (const DeviceEntry& e : view.devices) {
    v1beta1::Device* d = out.add_devices();
    d->set_id(e.card.id);
    d->set_health(e.healthy ? "Healthy" : "Unhealthy");
    if (e.card.numa_node && *e.card.numa_node >= 0)
      d->mutable_topology()->add_nodes()->set_id(*e.card.numa_node);
  }
  return out;
}

// One ListAndWatch stream. Owned by the service's set; gRPC holds a raw pointer until OnDone.
class DevicePluginService::Stream final : public grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse> {
 public:
  Stream(DevicePluginService* service, uint64_t generation) : service_(service), generation_(generation) {}

  // Sends the current list when it differs from the last one sent and no write is in flight.
  void Wake() {
    std::shared_ptr<const v1beta1::ListAndWatchResponse> message;
    {
      std::lock_guard lock(mu_);
      if (finished_ || writing_) return;
      Snapshot snap = service_->Current();
      if (sent_ && snap.view->version == sent_version_) return;
      sent_ = true;
      sent_version_ = snap.view->version;
      inflight_ = snap.message;
      writing_ = true;
      message = inflight_;
    }
    service_->metrics_->updates.Inc({service_->resource_});
    StartWrite(message.get());
  }

  void RequestFinish(const grpc::Status& status) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      if (writing_) {
        finish_pending_ = true;
        pending_ = status;
        return;
      }
      finished_ = true;
    }
    Finish(status);  // may run OnDone inline: nothing after this line touches members
  }

  void OnWriteDone(bool ok) override {
    grpc::Status finish;
    bool do_finish = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!finished_ && (!ok || finish_pending_)) {
        finished_ = true;
        do_finish = true;
        finish = ok ? pending_ : grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken");
      }
    }
    if (do_finish) {
      Finish(finish);
      return;
    }
    Wake();
  }

  void OnCancel() override { RequestFinish(grpc::Status::CANCELLED); }
  uint64_t generation() const { return generation_; }

  void OnDone() override {
    DevicePluginService* service = service_;
    uint64_t generation = generation_;
    service->StreamDone(this, generation);  // may destroy *this
  }

 private:
  DevicePluginService* service_;
  const uint64_t generation_;
  std::mutex mu_;
  bool writing_ = false;
  bool finished_ = false;
  bool finish_pending_ = false;
  grpc::Status pending_;
  bool sent_ = false;
  uint64_t sent_version_ = 0;
  std::shared_ptr<const v1beta1::ListAndWatchResponse> inflight_;
};

DevicePluginService::DevicePluginService(std::string resource, const PluginOptions& options,
                                         PluginMetrics* metrics, StreamsChanged on_streams)
    : resource_(std::move(resource)),
      options_(options),
      metrics_(metrics),
      on_streams_(std::move(on_streams)) {
  auto empty = std::make_shared<ResourceView>();
  empty->resource_name = resource_;
  snapshot_.view = empty;
  snapshot_.message = std::make_shared<v1beta1::ListAndWatchResponse>();
}

DevicePluginService::~DevicePluginService() { JoinHooks(); }

v1beta1::DevicePluginOptions DevicePluginService::Options() const {
  v1beta1::DevicePluginOptions o;
  o.set_pre_start_required(!options_.prestart_command.empty());
  o.set_get_preferred_allocation_available(options_.preferred_allocation);
  return o;
}

DevicePluginService::Snapshot DevicePluginService::Current() const {
  std::lock_guard lock(snap_mu_);
  return snapshot_;
}

std::shared_ptr<const ResourceView> DevicePluginService::View() const { return Current().view; }

void DevicePluginService::Publish(std::shared_ptr<const ResourceView> view) {
  auto message = std::make_shared<v1beta1::ListAndWatchResponse>(ToListAndWatch(*view));
  {
    std::lock_guard lock(snap_mu_);
    snapshot_.view = std::move(view);
    snapshot_.message = std::move(message);
  }
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(streams_mu_);
    for (auto& [raw, s] : streams_) streams.push_back(s);
  }
  for (auto& s : streams) s->Wake();
}

void DevicePluginService::CloseStreams() {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(streams_mu_);
    closed_ = true;
    for (auto& [raw, s] : streams_) streams.push_back(s);
  }
  for (auto& s : streams)
    s->RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "device plugin restarting"));
}

void DevicePluginService::Reopen() {
  std::lock_guard lock(streams_mu_);
  closed_ = false;
}

int DevicePluginService::open_streams() const {
  std::lock_guard lock(streams_mu_);
  return static_cast<int>(streams_.size());
}

void DevicePluginService::StreamDone(Stream* stream, uint64_t generation) {
  std::shared_ptr<Stream> keep;  // released last, after the lock
  int open = 0;
  {
    std::lock_guard lock(streams_mu_);
    auto it = streams_.find(stream);
    if (it != streams_.end()) {
      keep = std::move(it->second);
      streams_.erase(it);
    }
    open = static_cast<int>(streams_.size());
  }
  metrics_->streams.Set({resource_}, open);
  HA_LOG(kInfo, "ListAndWatch stream ended").kv("resource", resource_).kv("open_streams", open);
  if (on_streams_) on_streams_(generation, open, true);
}

grpc::ServerUnaryReactor* DevicePluginService::GetDevicePluginOptions(grpc::CallbackServerContext* ctx,
                                                                      const v1beta1::Empty* /*req*/,
                                                                      v1beta1::DevicePluginOptions* resp) {
  *resp = Options();
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse>* DevicePluginService::ListAndWatch(
    grpc::CallbackServerContext* /*ctx*/, const v1beta1::Empty* /*req*/) {
  auto stream = std::make_shared<Stream>(this, generation_.load());
  bool refuse = false;
  int open = 0;
  {
    std::lock_guard lock(streams_mu_);
    refuse = closed_;
    streams_[stream.get()] = stream;
    open = static_cast<int>(streams_.size());
  }
  if (refuse) {
    stream->RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "device plugin restarting"));
    return stream.get();
  }
  metrics_->streams.Set({resource_}, open);
  HA_LOG(kInfo, "ListAndWatch stream opened").kv("resource", resource_).kv("open_streams", open);
  stream->Wake();
  if (on_streams_) on_streams_(stream->generation(), open, false);
  return stream.get();
}

grpc::ServerUnaryReactor* DevicePluginService::GetPreferredAllocation(
    grpc::CallbackServerContext* ctx, const v1beta1::PreferredAllocationRequest* req,
    v1beta1::PreferredAllocationResponse* resp) {
  auto start = std::chrono::steady_clock::now();
  auto view = View();
  grpc::Status status = grpc::Status::OK;
  for (const auto& creq : req->container_requests()) {
    std::vector<std::string> available(creq.available_deviceids().begin(), creq.available_deviceids().end());
    std::vector<std::string> must(creq.must_include_deviceids().begin(), creq.must_include_deviceids().end());
    std::string fallback;
    auto chosen = PreferredAllocation(*view, available, must, creq.allocation_size(), &fallback);
    if (!chosen.ok()) {
      HA_LOG(kWarn, "GetPreferredAllocation failed")
          .kv("resource", resource_)
          .kv("error", chosen.status().message());
      status = ToGrpc(chosen.status());
      break;
    }
    if (!fallback.empty()) {
      metrics_->preferred_fallbacks.Inc({resource_});
      HA_LOG(kWarn, "GetPreferredAllocation fell back to the kubelet's order")
          .kv("resource", resource_)
          .kv("reason", fallback);
    }
    auto* out = resp->add_container_responses();
    for (std::string& id : chosen.value()) out->add_deviceids(std::move(id));
  }
  metrics_->preferred_seconds.Observe({resource_}, SecondsSince(start));
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* DevicePluginService::Allocate(grpc::CallbackServerContext* ctx,
                                                        const v1beta1::AllocateRequest* req,
                                                        v1beta1::AllocateResponse* resp) {
  auto start = std::chrono::steady_clock::now();
  auto view = View();
  grpc::Status status = grpc::Status::OK;
  if (req->container_requests().empty()) {
    status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Allocate: no container requests");
  }
  for (const auto& creq : req->container_requests()) {
    std::vector<std::string> ids(creq.devices_ids().begin(), creq.devices_ids().end());
    auto alloc = BuildAllocation(*view, ids, options_.allocate);
    if (!alloc.ok()) {
      metrics_->allocations.Inc({resource_, "error"});
      HA_LOG(kWarn, "Allocate refused")
          .kv("resource", resource_)
          .kv("devices", JoinIds(creq.devices_ids()))
          .kv("error", alloc.status().message());
      status = ToGrpc(alloc.status());
      resp->clear_container_responses();
      break;
    }
    metrics_->allocations.Inc({resource_, "ok"});
    auto* out = resp->add_container_responses();
    for (const auto& [k, v] : alloc->envs) (*out->mutable_envs())[k] = v;
    for (const auto& m : alloc->mounts) {
      auto* pm = out->add_mounts();
      pm->set_container_path(m.container_path);
      pm->set_host_path(m.host_path);
      pm->set_read_only(m.read_only);
    }
    for (const auto& d : alloc->devices) {
      auto* pd = out->add_devices();
      pd->set_container_path(d.container_path);
      pd->set_host_path(d.host_path);
      pd->set_permissions(d.permissions);
    }
    for (const auto& name : alloc->cdi_devices) out->add_cdi_devices()->set_name(name);
    HA_LOG(kInfo, "allocated").kv("resource", resource_).kv("devices", alloc->envs[kEnvVisibleDevices]);
  }
  metrics_->allocate_seconds.Observe({resource_}, SecondsSince(start));
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* DevicePluginService::PreStartContainer(
    grpc::CallbackServerContext* ctx, const v1beta1::PreStartContainerRequest* req,
    v1beta1::PreStartContainerResponse* /*resp*/) {
  auto* reactor = ctx->DefaultReactor();
  if (options_.prestart_command.empty()) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::vector<std::string> ids(req->devices_ids().begin(), req->devices_ids().end());
  auto view = View();
  for (const std::string& id : ids) {
    if (view->Find(id) == nullptr) {
      metrics_->prestart.Inc({resource_, "error"});
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "PreStartContainer: unknown device ID '" + id + "'"));
      return reactor;
    }
  }
  // The hook may take seconds: run it off the gRPC threads and finish from there.
  std::lock_guard lock(hooks_mu_);
  hooks_.emplace_back([this, reactor, ids = std::move(ids)] {
    Status st = RunHook(options_.prestart_command, ids, options_.prestart_timeout);
    metrics_->prestart.Inc({resource_, st.ok() ? "ok" : "error"});
    if (!st.ok())
      HA_LOG(kWarn, "PreStartContainer hook failed").kv("resource", resource_).kv("error", st.message());
    reactor->Finish(ToGrpc(st));
  });
  return reactor;
}

void DevicePluginService::JoinHooks() {
  std::vector<std::thread> hooks;
  {
    std::lock_guard lock(hooks_mu_);
    hooks.swap(hooks_);
  }
  for (auto& t : hooks) {
    if (t.joinable()) t.join();
  }
}

bool ReferencesArguments(const std::string& command) {
  for (size_t i = command.find('$'); i != std::string::npos; i = command.find('$', i + 1)) {
    size_t next = i + 1;
    if (next < command.size() && command[next] == '{') ++next;
    if (next >= command.size()) break;
    const char c = command[next];
    if (c == '@' || c == '*' || (c >= '1' && c <= '9')) return true;
  }
  return false;
}

Status RunHook(const std::string& command, const std::vector<std::string>& ids,
               std::chrono::milliseconds timeout) {
  // The IDs are the shell's positional parameters. A command that uses them itself ("$@", $1)
  // gets them once, where it put them; any other command gets them appended as arguments.
  const std::string script = ReferencesArguments(command) ? command : command + " \"$@\"";
  std::vector<std::string> args = {"/bin/sh", "-c", script, "hyperaccel-prestart"};
  args.insert(args.end(), ids.begin(), ids.end());
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/bin/sh", nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Internal("PreStartContainer hook: cannot start /bin/sh: " + ErrnoMessage(rc));

  auto deadline = std::chrono::steady_clock::now() + timeout;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int wstatus = 0;
  while (true) {
    pid_t done = ::waitpid(pid, &wstatus, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      if (pidfd >= 0) ::close(pidfd);
      return Internal("PreStartContainer hook: waitpid: " + ErrnoMessage(errno));
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &wstatus, 0);
      if (pidfd >= 0) ::close(pidfd);
      return Status(StatusCode::kDeadlineExceeded, "PreStartContainer hook did not finish within " +
                                                       std::to_string(timeout.count()) + " ms");
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    } else {
      ::usleep(10000);  // no pidfd (old kernel): short sleeps until the child exits
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return Status::Ok();
  std::string how = WIFEXITED(wstatus) ? "exit code " + std::to_string(WEXITSTATUS(wstatus))
                                       : "signal " + std::to_string(WTERMSIG(wstatus));
  return FailedPrecondition("PreStartContainer hook '" + command + "' failed (" + how + ")");
}

}  // namespace hyperaccel::device_plugin
