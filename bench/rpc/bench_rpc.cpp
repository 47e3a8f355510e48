// Unary round trip over a unix socket, the gRPC C++ client on both sides of the comparison:
//   Nghttp2Server  — hyperaccel::rpc::Server (h2_server.h), handler inline on its one thread;
//   GrpcAsyncServer — gRPC C++'s async API with one completion-queue thread (what the device
//                     plugin served with before), through the generic service (ByteBuffer).
// Same payload for both: ~200-byte request, ~60-byte answer (a GetPreferredAllocation's size).
// Each iteration is timed; p50/p99/max are reported as counters (bench/latency_counters.h).
#include <benchmark/benchmark.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../latency_counters.h"
#include "hyperaccel/rpc/h2_server.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kMethod = "/v1beta1.DevicePlugin/GetPreferredAllocation";
const std::string kRequest(200, 'q');
const std::string kResponse(60, 'a');

std::string SocketPath(const char* name) {
  return "/tmp/bench-rpc-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

grpc::ByteBuffer ToBuffer(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

// CPU time of the whole process (every thread), in microseconds.
double ProcessCpuUs() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// The client loop both benchmarks share: one channel, one call at a time.
void RunClient(benchmark::State& state, const std::string& socket) {
  auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  const grpc::internal::RpcMethod method(kMethod, grpc::internal::RpcMethod::NORMAL_RPC, channel);
  const grpc::ByteBuffer request = ToBuffer(kRequest);
  std::vector<double> us;
  us.reserve(1 << 16);
  for (int i = 0; i < 50; ++i) {  // warm-up: connection, HPACK tables, allocator
    grpc::ClientContext ctx;
    grpc::ByteBuffer out;
    (void)grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(channel.get(), method, &ctx,
                                                                                request, &out);
  }
  const double cpu0 = ProcessCpuUs();
  for (auto _ : state) {
    const auto t0 = Clock::now();
    grpc::ClientContext ctx;
    grpc::ByteBuffer out;
    const grpc::Status s = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel.get(), method, &ctx, request, &out);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!s.ok() || out.Length() != kResponse.size()) {
      state.SkipWithError(("call failed: " + s.error_message()).c_str());
      break;
    }
  }
  // Client and server share the process: the difference between the two benchmarks is the
  // servers' CPU (the client is the same).
  if (!us.empty())
    state.counters["proc_cpu_us_per_call"] = (ProcessCpuUs() - cpu0) / static_cast<double>(us.size());
  hyperaccel::bench::ReportLatency(state, std::move(us));
}

void BM_Unary_Nghttp2Server(benchmark::State& state) {
  const std::string socket = SocketPath("h2");
  ::unlink(socket.c_str());
  hyperaccel::rpc::Server server;
  server.AddUnary(kMethod, [](std::string_view, std::string* response) {
    *response = kResponse;
    return hyperaccel::rpc::GrpcStatus{};
  });
  if (auto s = server.Start(socket); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  RunClient(state, socket);
  server.Shutdown(Clock::now() + std::chrono::seconds(1));
  ::unlink(socket.c_str());
}

// gRPC's async server, one thread draining one completion queue; each call is a generic stream
// (Read the request, WriteAndFinish the answer), as gRPC's own generic async examples do.
class GrpcAsyncServer {
 public:
  explicit GrpcAsyncServer(const std::string& socket) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
    builder.RegisterAsyncGenericService(&service_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    if (server_ == nullptr) return;
    thread_ = std::thread([this] { Serve(); });
  }
  ~GrpcAsyncServer() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    cq_->Shutdown();
    thread_.join();
  }
  GrpcAsyncServer(const GrpcAsyncServer&) = delete;
  GrpcAsyncServer& operator=(const GrpcAsyncServer&) = delete;
  bool ok() const { return server_ != nullptr; }

 private:
  struct Call {
    explicit Call(GrpcAsyncServer* s) : stream(&ctx) {
      s->service_.RequestCall(&ctx, &stream, s->cq_.get(), s->cq_.get(), this);
    }
    grpc::GenericServerContext ctx;
    grpc::GenericServerAsyncReaderWriter stream;
    grpc::ByteBuffer request;
    enum { kNew, kRead, kDone } state = kNew;
  };

  void Serve() {
    new Call(this);
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      if (!ok) {  // shutting down, or the client went away
        delete call;
        continue;
      }
      switch (call->state) {
        case Call::kNew:
          new Call(this);
          call->state = Call::kRead;
          call->stream.Read(&call->request, call);
          break;
        case Call::kRead:
          call->state = Call::kDone;
          call->stream.WriteAndFinish(ToBuffer(kResponse), grpc::WriteOptions(), grpc::Status::OK, call);
          break;
        case Call::kDone: delete call; break;
      }
    }
  }

  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::thread thread_;
};

void BM_Unary_GrpcAsyncServer(benchmark::State& state) {
  const std::string socket = SocketPath("grpc");
  ::unlink(socket.c_str());
  {
    GrpcAsyncServer server(socket);
    if (!server.ok()) {
      state.SkipWithError("gRPC server did not start");
      return;
    }
    RunClient(state, socket);
  }
  ::unlink(socket.c_str());
}

BENCHMARK(BM_Unary_Nghttp2Server)->Unit(benchmark::kMicrosecond)->Iterations(20000)->UseRealTime();
BENCHMARK(BM_Unary_GrpcAsyncServer)->Unit(benchmark::kMicrosecond)->Iterations(20000)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
