#include "hyperaccel/kubelet_sim/kubelet_sim.h"

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "deviceplugin_v1beta1.grpc.pb.h"
#include "podresources_v1.grpc.pb.h"

namespace hyperaccel::kubelet_sim {
namespace {

using Clock = std::chrono::steady_clock;

Status FromGrpc(const grpc::Status& st, const std::string& what) {
  if (st.ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  switch (st.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: code = StatusCode::kInvalidArgument; break;
    case grpc::StatusCode::NOT_FOUND: code = StatusCode::kNotFound; break;
    case grpc::StatusCode::UNAVAILABLE: code = StatusCode::kUnavailable; break;
    case grpc::StatusCode::FAILED_PRECONDITION: code = StatusCode::kFailedPrecondition; break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: code = StatusCode::kDeadlineExceeded; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = StatusCode::kResourceExhausted; break;
    default: break;
  }
  return Status(code, what + ": " + st.error_message());
}

bool IsSocket(const std::filesystem::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

struct KubeletSim::Impl final : public v1beta1::Registration::Service {
  struct PluginState {
    PluginInfo info;
    std::shared_ptr<v1beta1::DevicePlugin::Stub> stub;
    std::vector<Device> devices;
    std::shared_ptr<grpc::ClientContext> stream_ctx;
    uint64_t stream_gen = 0;
  };
  struct Allocation {
    std::string pod, pod_namespace, container, resource;
    std::vector<std::string> ids;
  };

  class PodResources final : public v1::PodResourcesLister::Service {
   public:
    explicit PodResources(Impl* impl) : impl_(impl) {}
    grpc::Status List(grpc::ServerContext* ctx, const v1::ListPodResourcesRequest*,
                      v1::ListPodResourcesResponse* resp) override {
      std::optional<PodResourcesFault> fault;
      {
        std::lock_guard lock(impl_->mu);
        fault = impl_->pr_fault;
      }
      if (fault) {
        const auto until = std::chrono::steady_clock::now() + fault->delay;
        while (std::chrono::steady_clock::now() < until) {
          if (ctx->IsCancelled()) return {grpc::StatusCode::CANCELLED, "client gave up"};
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (fault->grpc_code != 0) return {static_cast<grpc::StatusCode>(fault->grpc_code), fault->message};
      }
      std::lock_guard lock(impl_->mu);
      std::map<std::pair<std::string, std::string>, v1::PodResources*> pods;
      for (const Allocation& a : impl_->allocations) {
        auto& pod = pods[{a.pod_namespace, a.pod}];
        if (!pod) {
          pod = resp->add_pod_resources();
          pod->set_name(a.pod);
          pod->set_namespace_(a.pod_namespace);
        }
        v1::ContainerResources* c = nullptr;
        for (auto& existing : *pod->mutable_containers()) {
          if (existing.name() == a.container) c = &existing;
        }
        if (!c) {
          c = pod->add_containers();
          c->set_name(a.container);
        }
        auto* d = c->add_devices();
        d->set_resource_name(a.resource);
        for (const auto& id : a.ids) d->add_device_ids(id);
      }
      return grpc::Status::OK;
    }
    grpc::Status GetAllocatableResources(grpc::ServerContext*, const v1::AllocatableResourcesRequest*,
                                         v1::AllocatableResourcesResponse* resp) override {
      std::lock_guard lock(impl_->mu);
      for (const auto& [name, p] : impl_->plugins) {
        auto* d = resp->add_devices();
        d->set_resource_name(name);
        for (const Device& dev : p.devices) {
          if (dev.healthy) d->add_device_ids(dev.id);
        }
      }
      return grpc::Status::OK;
    }

   private:
    Impl* impl_;
  };

  explicit Impl(Options o) : options(std::move(o)), pod_resources(this) {}

  Options options;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<std::string> events;
  std::map<std::string, PluginState> plugins;
  std::vector<Allocation> allocations;
  std::vector<std::thread> stream_threads;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<grpc::Server> pr_server;
  std::optional<PodResourcesFault> pr_fault;
  PodResources pod_resources;
  bool running = false;

  std::string KubeletSocket() const { return (std::filesystem::path(options.dir) / "kubelet.sock").string(); }

  void Event(const std::string& e) {
    {
      std::lock_guard lock(mu);
      events.push_back(e);
    }
    cv.notify_all();
  }

  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* req, v1beta1::Empty*) override {
    const std::string& res = req->resource_name();
    Event("Register " + res);
    if (req->version() != "v1beta1") {
      return {grpc::StatusCode::INVALID_ARGUMENT, "unsupported device plugin API version " + req->version()};
    }
    if (res.find('/') == std::string::npos || res.find("kubernetes.io/") != std::string::npos) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "invalid extended resource name " + res};
    }
    if (req->endpoint().empty() || req->endpoint().find('/') != std::string::npos) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "endpoint must be a socket file name, got " + req->endpoint()};
    }
    const std::string path = (std::filesystem::path(options.dir) / req->endpoint()).string();
    // A connection of its own per registration, like the kubelet (Go gRPC shares none): with
    // gRPC's global subchannel pool a new registration on the same path could reuse the
    // connection to the plugin instance that just handed the socket over.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args);
    auto stub = std::shared_ptr<v1beta1::DevicePlugin::Stub>(v1beta1::DevicePlugin::NewStub(channel));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options.dial_timeout);
    ctx.set_wait_for_ready(true);
    v1beta1::DevicePluginOptions plugin_options;
    grpc::Status st = stub->GetDevicePluginOptions(&ctx, v1beta1::Empty(), &plugin_options);
    if (!st.ok()) {
      return {grpc::StatusCode::UNAVAILABLE,
              "cannot reach device plugin at " + path + ": " + st.error_message()};
    }
    Event("GetDevicePluginOptions " + res);
    auto stream_ctx = std::make_shared<grpc::ClientContext>();
    uint64_t gen = 0;
    {
      std::lock_guard lock(mu);
      PluginState& p = plugins[res];
      if (p.stream_ctx) p.stream_ctx->TryCancel();  // the newest registration replaces the old one
      p.info.resource = res;
      p.info.endpoint = req->endpoint();
      p.info.options = plugin_options;
      p.info.registrations++;
      p.stub = stub;
      p.stream_ctx = stream_ctx;
      gen = ++p.stream_gen;
      events.push_back("Registered " + res);
      stream_threads.emplace_back([this, res, stub, stream_ctx, gen] { Stream(res, stub, stream_ctx, gen); });
    }
    cv.notify_all();
    return grpc::Status::OK;
  }

  // The stream thread's lambda owns the stub and context for as long as this runs.
  void Stream(const std::string& res, const std::shared_ptr<v1beta1::DevicePlugin::Stub>& stub,
              const std::shared_ptr<grpc::ClientContext>& ctx, uint64_t gen) {
    Event("ListAndWatch " + res);
    auto reader = stub->ListAndWatch(ctx.get(), v1beta1::Empty());
    v1beta1::ListAndWatchResponse resp;
    while (reader->Read(&resp)) {
      std::vector<Device> devices;
      for (const auto& d : resp.devices()) {
        Device dev;
        dev.id = d.id();
        dev.healthy = d.health() == "Healthy";
        for (const auto& n : d.topology().nodes()) dev.numa_nodes.push_back(n.id());
        devices.push_back(std::move(dev));
      }
      {
        std::lock_guard lock(mu);
        PluginState& p = plugins[res];
        p.info.list_updates++;
        if (p.stream_gen == gen) {
          p.devices = std::move(devices);
          p.info.stream_open = true;
        }
        events.push_back("Update " + res);
      }
      cv.notify_all();
    }
    reader->Finish();
    {
      std::lock_guard lock(mu);
      PluginState& p = plugins[res];
      if (p.stream_gen == gen) {
        p.info.stream_open = false;
        for (Device& d : p.devices) d.healthy = false;  // the kubelet marks everything unhealthy
      }
      events.push_back("StreamEnded " + res);
    }
    cv.notify_all();
  }

  // Calls fn(stub) for a registered resource; NotFound otherwise.
  template <typename Fn>
  auto WithStub(const std::string& resource, Fn fn)
      -> decltype(fn(std::declval<v1beta1::DevicePlugin::Stub&>())) {
    std::shared_ptr<v1beta1::DevicePlugin::Stub> stub;
    {
      std::lock_guard lock(mu);
      auto it = plugins.find(resource);
      if (it != plugins.end()) stub = it->second.stub;
    }
    if (!stub) return NotFound("resource " + resource + " not registered");
    return fn(*stub);
  }

  void CancelStreams() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu);
      for (auto& [name, p] : plugins) {
        if (p.stream_ctx) p.stream_ctx->TryCancel();
      }
      threads.swap(stream_threads);
    }
    for (auto& t : threads) t.join();
  }
};

KubeletSim::KubeletSim(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  // gRPC stays initialised for the rest of the process. Otherwise destroying the last server runs
  // grpc_shutdown(), which in gRPC 1.51 joins its executor thread and can wait out that thread's
  // poll timeout (~10 s after a large response) in a test's teardown.
  static std::once_flag init;
  std::call_once(init, [] { grpc_init(); });
}

KubeletSim::~KubeletSim() { Stop(); }

Status KubeletSim::Start() {
  Impl& d = *impl_;
  std::error_code ec;
  std::filesystem::create_directories(d.options.dir, ec);
  if (ec) return Unavailable("cannot create " + d.options.dir + ": " + ec.message());
  std::filesystem::remove(d.KubeletSocket(), ec);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + d.KubeletSocket(), grpc::InsecureServerCredentials());
  builder.RegisterService(&d);
  d.server = builder.BuildAndStart();
  if (!d.server) return Unavailable("cannot listen on " + d.KubeletSocket());
  if (auto s = StartPodResources(); !s.ok()) return s;
  std::lock_guard lock(d.mu);
  d.running = true;
  return Status::Ok();
}

Status KubeletSim::StartPodResources() {
  Impl& d = *impl_;
  if (d.options.pod_resources_socket.empty() || d.pr_server) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(d.options.pod_resources_socket).parent_path(),
                                      ec);
  std::filesystem::remove(d.options.pod_resources_socket, ec);
  grpc::ServerBuilder pr;
  pr.AddListeningPort("unix:" + d.options.pod_resources_socket, grpc::InsecureServerCredentials());
  pr.RegisterService(&d.pod_resources);
  d.pr_server = pr.BuildAndStart();
  if (!d.pr_server) return Unavailable("cannot listen on " + d.options.pod_resources_socket);
  return Status::Ok();
}

void KubeletSim::StopPodResources() {
  Impl& d = *impl_;
  if (!d.pr_server) return;
  d.pr_server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  d.pr_server->Wait();
  d.pr_server.reset();
  std::error_code ec;
  std::filesystem::remove(d.options.pod_resources_socket, ec);
}

void KubeletSim::RecordAllocation(const std::string& pod, const std::string& pod_namespace,
                                  const std::string& container, const std::string& resource,
                                  const std::vector<std::string>& ids) {
  std::lock_guard lock(impl_->mu);
  impl_->allocations.push_back({pod, pod_namespace, container, resource, ids});
}

void KubeletSim::SetPodResourcesFault(std::optional<PodResourcesFault> fault) {
  std::lock_guard lock(impl_->mu);
  impl_->pr_fault = std::move(fault);
}

void KubeletSim::StopServing() {
  Impl& d = *impl_;
  if (d.server) {
    d.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    d.server->Wait();
    d.server.reset();
  }
  d.CancelStreams();
}

void KubeletSim::Stop() {
  Impl& d = *impl_;
  StopServing();
  std::error_code ec;
  std::filesystem::remove(d.KubeletSocket(), ec);
  std::lock_guard lock(d.mu);
  d.running = false;
}

Status KubeletSim::Restart() {
  Impl& d = *impl_;
  StopServing();
  // Like the kubelet at start-up: every socket in the directory goes, other files stay.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(d.options.dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (IsSocket(it->path())) std::filesystem::remove(it->path(), ec);
  }
  {
    std::lock_guard lock(d.mu);
    for (auto& [name, p] : d.plugins) {
      p.info.stream_open = false;
      for (Device& dev : p.devices) dev.healthy = false;
    }
  }
  return Start();
}

std::string KubeletSim::kubelet_socket() const { return impl_->KubeletSocket(); }

std::vector<std::string> KubeletSim::Events() const {
  std::lock_guard lock(impl_->mu);
  return impl_->events;
}

std::optional<PluginInfo> KubeletSim::Plugin(const std::string& resource) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->plugins.find(resource);
  if (it == impl_->plugins.end()) return std::nullopt;
  return it->second.info;
}

std::vector<Device> KubeletSim::Devices(const std::string& resource) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->plugins.find(resource);
  return it == impl_->plugins.end() ? std::vector<Device>{} : it->second.devices;
}

bool KubeletSim::WaitForRegistrations(const std::string& resource, int count,
                                      std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] {
    auto it = impl_->plugins.find(resource);
    return it != impl_->plugins.end() && it->second.info.registrations >= count;
  });
}

bool KubeletSim::WaitForDevices(const std::string& resource,
                                const std::function<bool(const std::vector<Device>&)>& pred,
                                std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] {
    auto it = impl_->plugins.find(resource);
    return it != impl_->plugins.end() && it->second.info.stream_open && pred(it->second.devices);
  });
}

bool KubeletSim::WaitForStream(const std::string& resource, bool open,
                               std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] {
    auto it = impl_->plugins.find(resource);
    bool is_open = it != impl_->plugins.end() && it->second.info.stream_open;
    return is_open == open;
  });
}

Result<Admission> KubeletSim::AdmitContainer(const AdmitRequest& request) {
  Impl& d = *impl_;
  std::vector<std::string> available;
  bool ask_preferred = false;
  {
    std::lock_guard lock(d.mu);
    auto it = d.plugins.find(request.resource);
    if (it == d.plugins.end() || !it->second.stub)
      return NotFound("resource " + request.resource + " not registered");
    std::set<std::string> taken;
    for (const auto& a : d.allocations) {
      if (a.resource == request.resource) taken.insert(a.ids.begin(), a.ids.end());
    }
    for (const Device& dev : it->second.devices) {
      if (dev.healthy && !taken.count(dev.id)) available.push_back(dev.id);
    }
    // Like the kubelet: devices already chosen for this container are candidates too.
    for (const auto& id : request.must_include) {
      if (std::find(available.begin(), available.end(), id) == available.end()) available.push_back(id);
    }
    ask_preferred = it->second.info.options.get_preferred_allocation_available();
  }
  if (static_cast<int>(available.size()) < request.count) {
    return ResourceExhausted("not enough healthy free " + request.resource + ": want " +
                             std::to_string(request.count) + ", have " + std::to_string(available.size()));
  }
  Admission out;
  std::vector<std::string> chosen;
  if (ask_preferred) {
    auto preferred = GetPreferredAllocation(request.resource, available, request.must_include, request.count);
    if (!preferred.ok()) return preferred.status();
    out.preferred = *preferred;
    for (const auto& id : *preferred) {
      if (std::find(available.begin(), available.end(), id) != available.end() &&
          std::find(chosen.begin(), chosen.end(), id) == chosen.end() &&
          static_cast<int>(chosen.size()) < request.count) {
        chosen.push_back(id);
      }
    }
  }
  for (const auto& id : request.must_include) {
    if (std::find(chosen.begin(), chosen.end(), id) == chosen.end()) chosen.push_back(id);
  }
  for (const auto& id : available) {
    if (static_cast<int>(chosen.size()) >= request.count) break;
    if (std::find(chosen.begin(), chosen.end(), id) == chosen.end()) chosen.push_back(id);
  }
  auto resp = Allocate(request.resource, chosen);
  if (!resp.ok()) return resp.status();
  if (resp->container_responses_size() != 1)
    return Internal("Allocate answered " + std::to_string(resp->container_responses_size()) +
                    " container responses");
  out.devices = chosen;
  out.response = resp->container_responses(0);
  std::lock_guard lock(d.mu);
  d.allocations.push_back({request.pod, request.pod_namespace, request.container, request.resource, chosen});
  return out;
}

Result<v1beta1::AllocateResponse> KubeletSim::Allocate(const std::string& resource,
                                                       const std::vector<std::string>& ids) {
  return impl_->WithStub(resource,
                         [&](v1beta1::DevicePlugin::Stub& stub) -> Result<v1beta1::AllocateResponse> {
                           v1beta1::AllocateRequest req;
                           auto* c = req.add_container_requests();
                           for (const auto& id : ids) c->add_devices_ids(id);
                           v1beta1::AllocateResponse resp;
                           grpc::ClientContext ctx;  // the kubelet sets no deadline here
                           grpc::Status st = stub.Allocate(&ctx, req, &resp);
                           if (!st.ok()) return FromGrpc(st, "Allocate");
                           return resp;
                         });
}

Result<std::vector<std::string>> KubeletSim::GetPreferredAllocation(
    const std::string& resource, const std::vector<std::string>& available,
    const std::vector<std::string>& must_include, int size) {
  return impl_->WithStub(resource,
                         [&](v1beta1::DevicePlugin::Stub& stub) -> Result<std::vector<std::string>> {
                           v1beta1::PreferredAllocationRequest req;
                           auto* c = req.add_container_requests();
                           for (const auto& id : available) c->add_available_deviceids(id);
                           for (const auto& id : must_include) c->add_must_include_deviceids(id);
                           c->set_allocation_size(size);
                           v1beta1::PreferredAllocationResponse resp;
                           grpc::ClientContext ctx;
                           grpc::Status st = stub.GetPreferredAllocation(&ctx, req, &resp);
                           if (!st.ok()) return FromGrpc(st, "GetPreferredAllocation");
                           if (resp.container_responses_size() != 1)
                             return Internal("GetPreferredAllocation: expected one container response");
                           const auto& ids = resp.container_responses(0).deviceids();
                           return std::vector<std::string>(ids.begin(), ids.end());
                         });
}

Status KubeletSim::PreStartContainer(const std::string& resource, const std::vector<std::string>& ids) {
  auto r = impl_->WithStub(resource, [&](v1beta1::DevicePlugin::Stub& stub) -> Result<bool> {
    v1beta1::PreStartContainerRequest req;
    for (const auto& id : ids) req.add_devices_ids(id);
    v1beta1::PreStartContainerResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));  // the kubelet's limit
    grpc::Status st = stub.PreStartContainer(&ctx, req, &resp);
    if (!st.ok()) return FromGrpc(st, "PreStartContainer");
    return true;
  });
  return r.status();
}

std::vector<std::string> KubeletSim::AllocatedIds(const std::string& resource) const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& a : impl_->allocations) {
    if (a.resource == resource) out.insert(out.end(), a.ids.begin(), a.ids.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void KubeletSim::RemovePod(const std::string& pod, const std::string& pod_namespace) {
  std::lock_guard lock(impl_->mu);
  std::erase_if(impl_->allocations,
                [&](const Impl::Allocation& a) { return a.pod == pod && a.pod_namespace == pod_namespace; });
}

void KubeletSim::DropStream(const std::string& resource) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->plugins.find(resource);
  if (it != impl_->plugins.end() && it->second.stream_ctx) it->second.stream_ctx->TryCancel();
}

}  // namespace hyperaccel::kubelet_sim
