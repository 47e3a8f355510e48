#include "service.h"

#include <poll.h>
#include <pthread.h>
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

// One unary call, from the request gRPC matched to it to its answer; deletes itself once the
// answer is sent (or when no call came: shutdown). Runs on the serving thread, except an answer
// given later from another thread (PreStartContainer's hook).
template <class Request, class Response>
class UnaryCall : public DevicePluginService::Tag {
 public:
  explicit UnaryCall(DevicePluginService* service) : service_(service), responder_(&ctx_) {}
  virtual ~UnaryCall() = default;
  UnaryCall(const UnaryCall&) = delete;
  UnaryCall& operator=(const UnaryCall&) = delete;

  void Proceed(bool ok) override {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    RequestAnother();
    Answer();
  }

 protected:
  virtual void RequestAnother() = 0;
  // Answers with Finish(), at once or later.
  virtual void Answer() = 0;

  void Finish(const grpc::Status& status) {
    answered_ = true;
    if (status.ok()) {
      responder_.Finish(response_, status, this);
    } else {
      responder_.FinishWithError(status, this);
    }
  }

  DevicePluginService* service_;
  grpc::ServerContext ctx_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> responder_;
  bool answered_ = false;
};

using AsyncService = v1beta1::DevicePlugin::AsyncService;

class OptionsCall final : public UnaryCall<v1beta1::Empty, v1beta1::DevicePluginOptions> {
 public:
  using UnaryCall::UnaryCall;
  void Request(AsyncService* async, grpc::ServerCompletionQueue* cq) {
    async->RequestGetDevicePluginOptions(&ctx_, &request_, &responder_, cq, cq, this);
  }

 private:
  void RequestAnother() override { service_->RequestNext<OptionsCall>(); }
  void Answer() override {
    response_ = service_->Options();
    Finish(grpc::Status::OK);
  }
};

class PreferredCall final
    : public UnaryCall<v1beta1::PreferredAllocationRequest, v1beta1::PreferredAllocationResponse> {
 public:
  using UnaryCall::UnaryCall;
  void Request(AsyncService* async, grpc::ServerCompletionQueue* cq) {
    async->RequestGetPreferredAllocation(&ctx_, &request_, &responder_, cq, cq, this);
  }

 private:
  void RequestAnother() override { service_->RequestNext<PreferredCall>(); }
  void Answer() override { Finish(service_->GetPreferredAllocation(request_, &response_)); }
};

class AllocateCall final : public UnaryCall<v1beta1::AllocateRequest, v1beta1::AllocateResponse> {
 public:
  using UnaryCall::UnaryCall;
  void Request(AsyncService* async, grpc::ServerCompletionQueue* cq) {
    async->RequestAllocate(&ctx_, &request_, &responder_, cq, cq, this);
  }

 private:
  void RequestAnother() override { service_->RequestNext<AllocateCall>(); }
  void Answer() override { Finish(service_->Allocate(request_, &response_)); }
};

class PreStartCall final
    : public UnaryCall<v1beta1::PreStartContainerRequest, v1beta1::PreStartContainerResponse> {
 public:
  using UnaryCall::UnaryCall;
  void Request(AsyncService* async, grpc::ServerCompletionQueue* cq) {
    async->RequestPreStartContainer(&ctx_, &request_, &responder_, cq, cq, this);
  }

 private:
  void RequestAnother() override { service_->RequestNext<PreStartCall>(); }
  void Answer() override {
    grpc::Status status;
    if (!service_->PreStartContainer(request_, &status, [this](const grpc::Status& s) { Finish(s); })) {
      Finish(status);
    }
  }
};

// One ListAndWatch stream. Requested before the kubelet opens it (the service holds it as
// next_stream_), then owned by the service's map until gRPC is done with it: its end was seen
// (done_) and no write or finish is in flight.
class DevicePluginService::Stream final : public std::enable_shared_from_this<Stream> {
 public:
  explicit Stream(DevicePluginService* service) : service_(service), writer_(&ctx_) {}

  void Request(AsyncService* async, grpc::ServerCompletionQueue* cq) {
    ctx_.AsyncNotifyWhenDone(&done_);
    async->RequestListAndWatch(&ctx_, &request_, &writer_, cq, cq, &opened_);
  }

  // Sends the current list when it differs from the last one sent and no write is in flight.
  void Wake() {
    std::shared_ptr<const v1beta1::ListAndWatchResponse> message;
    {
      std::lock_guard lock(mu_);
      if (finished_ || in_flight_) return;
      Snapshot snap = service_->Current();
      if (sent_ && snap.view->version == sent_version_) return;
      sent_ = true;
      sent_version_ = snap.view->version;
      inflight_ = snap.message;
      in_flight_ = true;
      message = inflight_;
    }
    service_->metrics_->updates.Inc({service_->resource_});
    writer_.Write(*message, &op_);
  }

  void RequestFinish(const grpc::Status& status) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      if (in_flight_) {
        finish_pending_ = true;
        pending_ = status;
        return;
      }
      finished_ = true;
      in_flight_ = true;
      finishing_ = true;
    }
    writer_.Finish(status, &op_);
  }

  uint64_t generation() const { return generation_; }
  void set_generation(uint64_t g) { generation_ = g; }

 private:
  // A member tag that calls back into the stream.
  class Event final : public Tag {
   public:
    Event(Stream* stream, void (Stream::*on)(bool)) : stream_(stream), on_(on) {}
    void Proceed(bool ok) override { (stream_->*on_)(ok); }

   private:
    Stream* stream_;
    void (Stream::*on_)(bool);
  };

  void OnOpened(bool ok) {
    if (!ok) {  // no call came (shutdown): no other tag of this stream is pending
      service_->StreamDone(this);
      return;
    }
    service_->StreamStarted(shared_from_this());
  }

  void OnOpDone(bool ok) {
    grpc::Status finish;
    bool do_finish = false;
    {
      std::lock_guard lock(mu_);
      in_flight_ = false;
      if (finishing_) {
        finishing_ = false;
      } else if (!finished_ && (!ok || finish_pending_)) {
        finished_ = true;
        in_flight_ = true;
        finishing_ = true;
        do_finish = true;
        finish = ok ? pending_ : grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken");
      }
    }
    if (do_finish) {
      writer_.Finish(finish, &op_);
      return;
    }
    Wake();
    MaybeDone();  // may destroy *this
  }

  void OnDone(bool /*ok*/) {
    {
      std::lock_guard lock(mu_);
      done_seen_ = true;
      finished_ = true;  // finished or cancelled: nothing more is written
    }
    MaybeDone();  // may destroy *this
  }

  void MaybeDone() {
    {
      std::lock_guard lock(mu_);
      if (!done_seen_ || in_flight_ || released_) return;
      released_ = true;
    }
    service_->StreamDone(this);
  }

  DevicePluginService* service_;
  grpc::ServerContext ctx_;
  v1beta1::Empty request_;
  grpc::ServerAsyncWriter<v1beta1::ListAndWatchResponse> writer_;
  Event opened_{this, &Stream::OnOpened};
  Event op_{this, &Stream::OnOpDone};  // the write or finish in flight
  Event done_{this, &Stream::OnDone};
  uint64_t generation_ = 0;

  std::mutex mu_;
  bool in_flight_ = false;  // a write or the finish
  bool finishing_ = false;  // the op in flight is the finish
  bool finished_ = false;   // no more writes
  bool finish_pending_ = false;
  bool done_seen_ = false;
  bool released_ = false;
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

DevicePluginService::~DevicePluginService() {
  Shutdown(nullptr, std::chrono::system_clock::now());
  JoinHooks();
}

void DevicePluginService::AddTo(grpc::ServerBuilder& builder) {
  builder.RegisterService(&async_);
  cq_ = builder.AddCompletionQueue();
}

void DevicePluginService::Start(grpc::Server* /*server*/) {
  RequestNext<OptionsCall>();
  RequestNext<PreferredCall>();
  RequestNext<AllocateCall>();
  RequestNext<PreStartCall>();
  RequestNextStream();
  thread_ = std::thread([this] { Serve(); });
}

void DevicePluginService::Serve() {
  // Named for the per-thread counters of the benchmarks and for operators' `top -H`.
  pthread_setname_np(pthread_self(), "plugin-grpc");
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
}

void DevicePluginService::Shutdown(grpc::Server* server, std::chrono::system_clock::time_point deadline) {
  {
    std::lock_guard lock(request_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  // The serving thread keeps answering and releasing calls until the server has shut down.
  if (server != nullptr) server->Shutdown(deadline);
  if (!cq_) return;
  cq_->Shutdown();
  if (thread_.joinable()) {
    thread_.join();
  } else {  // never started: drain here
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
  }
}

void DevicePluginService::RequestNextStream() {
  std::lock_guard request_lock(request_mu_);
  if (stopping_) return;
  auto stream = std::make_shared<Stream>(this);
  {
    std::lock_guard lock(streams_mu_);
    next_stream_ = stream;
  }
  stream->Request(&async_, cq_.get());
}

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

int DevicePluginService::open_streams() const {
  std::lock_guard lock(streams_mu_);
  return static_cast<int>(streams_.size());
}

void DevicePluginService::StreamStarted(const std::shared_ptr<Stream>& stream) {
  stream->set_generation(generation_.load());
  bool refuse = false;
  int open = 0;
  {
    std::lock_guard lock(streams_mu_);
    if (next_stream_ == stream) next_stream_.reset();
    refuse = closed_;
    streams_[stream.get()] = stream;
    open = static_cast<int>(streams_.size());
  }
  RequestNextStream();
  if (refuse) {
    stream->RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "device plugin restarting"));
    return;
  }
  metrics_->streams.Set({resource_}, open);
  HA_LOG(kInfo, "ListAndWatch stream opened").kv("resource", resource_).kv("open_streams", open);
  stream->Wake();
  if (on_streams_) on_streams_(stream->generation(), open, false);
}

void DevicePluginService::StreamDone(Stream* stream) {
  std::shared_ptr<Stream> keep;  // released last, after the lock
  bool opened = false;
  int open = 0;
  {
    std::lock_guard lock(streams_mu_);
    if (next_stream_.get() == stream) {
      keep = std::move(next_stream_);
    } else if (auto it = streams_.find(stream); it != streams_.end()) {
      keep = std::move(it->second);
      streams_.erase(it);
      opened = true;
    }
    open = static_cast<int>(streams_.size());
  }
  if (!opened) return;
  metrics_->streams.Set({resource_}, open);
  HA_LOG(kInfo, "ListAndWatch stream ended").kv("resource", resource_).kv("open_streams", open);
  if (on_streams_) on_streams_(keep->generation(), open, true);
}

grpc::Status DevicePluginService::GetPreferredAllocation(const v1beta1::PreferredAllocationRequest& req,
                                                         v1beta1::PreferredAllocationResponse* resp) {
  auto start = std::chrono::steady_clock::now();
  auto view = View();
  grpc::Status status = grpc::Status::OK;
  for (const auto& creq : req.container_requests()) {
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
  return status;
}

grpc::Status DevicePluginService::Allocate(const v1beta1::AllocateRequest& req,
                                           v1beta1::AllocateResponse* resp) {
  auto start = std::chrono::steady_clock::now();
  auto view = View();
  grpc::Status status = grpc::Status::OK;
  if (req.container_requests().empty()) {
    status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Allocate: no container requests");
  }
  for (const auto& creq : req.container_requests()) {
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
  return status;
}

bool DevicePluginService::PreStartContainer(const v1beta1::PreStartContainerRequest& req,
                                            grpc::Status* status, std::function<void(grpc::Status)> done) {
  if (options_.prestart_command.empty()) {
    *status = grpc::Status::OK;
    return false;
  }
  std::vector<std::string> ids(req.devices_ids().begin(), req.devices_ids().end());
  auto view = View();
  for (const std::string& id : ids) {
    if (view->Find(id) == nullptr) {
      metrics_->prestart.Inc({resource_, "error"});
      *status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             "PreStartContainer: unknown device ID '" + id + "'");
      return false;
    }
  }
  // The hook may take seconds: run it off the serving thread and answer from there.
  std::lock_guard lock(hooks_mu_);
  hooks_.emplace_back([this, done = std::move(done), ids = std::move(ids)] {
    Status st = RunHook(options_.prestart_command, ids, options_.prestart_timeout);
    metrics_->prestart.Inc({resource_, st.ok() ? "ok" : "error"});
    if (!st.ok())
      HA_LOG(kWarn, "PreStartContainer hook failed").kv("resource", resource_).kv("error", st.message());
    done(ToGrpc(st));
  });
  return true;
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
