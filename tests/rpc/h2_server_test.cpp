// hyperaccel::rpc::Server (h2_server.h) against the REAL gRPC C++ client (the generic blocking
// call and stream reader that generated stubs use, with grpc::ByteBuffer messages) and against our
// own GrpcUnaryCall / GrpcUnaryExchange, on unix sockets in a temp dir.
#include "hyperaccel/rpc/h2_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/sync_stream.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../support/temp_dir.h"
#include "hyperaccel/rpc/grpc_unary.h"

namespace hyperaccel::rpc {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using hyperaccel::testing::TempDir;

constexpr const char* kEcho = "/test.Svc/Echo";
constexpr const char* kFail = "/test.Svc/Fail";
constexpr const char* kLater = "/test.Svc/Later";
constexpr const char* kWatch = "/test.Svc/Watch";

// A generous bound for anything that should happen "at once" on a loaded 2-core machine.
constexpr auto kPatience = 30s;

grpc::ByteBuffer ToBuffer(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Waits until `pred` holds (polled; only for state the test cannot be told about otherwise).
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::nanoseconds limit = kPatience) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Something set once from another thread, waited for with a condition variable.
template <typename T>
class Latch {
 public:
  void Set(T v) {
    std::lock_guard<std::mutex> lock(mu_);
    value_ = std::move(v);
    ++sets_;
    cv_.notify_all();
  }
  std::optional<T> Wait(std::chrono::nanoseconds limit = kPatience) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, limit, [&] { return value_.has_value(); });
    return value_;
  }
  // Waits, then moves the value out (the latch keeps no reference).
  std::optional<T> Take(std::chrono::nanoseconds limit = kPatience) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, limit, [&] { return value_.has_value(); });
    std::optional<T> v = std::move(value_);
    value_.reset();
    return v;
  }
  int sets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sets_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
  int sets_ = 0;
};

// A raw unix-socket connection.
int Connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, path.size());
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when the peer closed `fd` (read returns 0 or a reset) within the patience.
bool PeerCloses(int fd) {
  std::array<char, 4096> buf{};
  const auto end = Clock::now() + kPatience;
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
  return false;
}

// Drives a GrpcUnaryExchange over `fd` with no deadline of its own (the test's patience only), so
// that what the server answers on its own (grpc-timeout) is what the test sees.
Result<std::string> DriveExchange(int fd, GrpcUnaryExchange& ex, bool stop_reading_after_request = false) {
  std::string out;
  std::array<std::uint8_t, 16384> buf{};
  const auto end = Clock::now() + kPatience;
  while (!ex.Done() && Clock::now() < end) {
    ex.Output(out);
    if (!out.empty()) {
      EXPECT_EQ(::send(fd, out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
      out.clear();
      if (stop_reading_after_request) return Internal("stopped reading");
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) {
      ex.InputClosed();
    } else {
      ex.Input(buf.data(), static_cast<std::size_t>(n));
    }
  }
  return ex.Response();
}

class H2ServerTest : public ::testing::Test {
 protected:
  void StartServer() {
    server_ = std::make_unique<Server>(options_);
    server_->AddUnary(kEcho, [](std::string_view req, std::string* resp) {
      resp->assign("echo:");
      resp->append(req);
      return GrpcStatus{};
    });
    server_->AddUnary(kFail, [](std::string_view req, std::string*) {
      return GrpcStatus{GrpcCode::kFailedPrecondition, std::string(req)};
    });
    server_->AddDeferredUnary(kLater, [this](std::string_view req, std::shared_ptr<UnaryResponder> r) {
      later_(req, std::move(r));
    });
    server_->AddServerStreaming(
        kWatch, [this](std::string_view req, std::shared_ptr<ServerStream> s) { watch_(req, std::move(s)); });
    ASSERT_TRUE(server_->Start(socket_).ok());
  }

  void TearDown() override {
    if (server_) server_->Shutdown(Clock::now() + 5s);
  }

  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
  }

  static grpc::Status Unary(const std::shared_ptr<grpc::Channel>& ch, const std::string& method,
                            const std::string& request, std::string* response,
                            std::chrono::nanoseconds deadline = kPatience) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    const grpc::internal::RpcMethod m(method.c_str(), grpc::internal::RpcMethod::NORMAL_RPC, ch);
    grpc::ByteBuffer out;
    grpc::Status s = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        ch.get(), m, &ctx, ToBuffer(request), &out);
    if (s.ok() && response != nullptr) *response = FromBuffer(out);
    return s;
  }

  // A server-streaming call to /Watch with the gRPC client (what a generated stub does).
  static std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> OpenStream(
      const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext* ctx, const std::string& request) {
    const grpc::internal::RpcMethod m(kWatch, grpc::internal::RpcMethod::SERVER_STREAMING, ch);
    return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
        grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(ch.get(), m, ctx, ToBuffer(request)));
  }

  // Every message of a stream, read until the server ends it.
  static std::vector<std::string> ReadAll(grpc::ClientReader<grpc::ByteBuffer>& reader) {
    grpc::ByteBuffer b;
    std::vector<std::string> got;
    while (reader.Read(&b)) got.push_back(FromBuffer(b));
    return got;
  }

  TempDir dir_{"rpc"};
  std::string socket_ = dir_.path() + "/s.sock";
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::function<void(std::string_view, std::shared_ptr<UnaryResponder>)> later_ =
      [](std::string_view, const std::shared_ptr<UnaryResponder>& r) { r->Finish({}, "now"); };
  std::function<void(std::string_view, std::shared_ptr<ServerStream>)> watch_ =
      [](std::string_view, const std::shared_ptr<ServerStream>& s) { s->Finish({}); };
};

// ---------------------------------------------------------------------------------------- unary

TEST_F(H2ServerTest, UnaryRoundTripWithTheGrpcClient) {
  StartServer();
  auto ch = Channel();
  std::string resp;
  const grpc::Status s = Unary(ch, kEcho, std::string("a\0b", 3), &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(resp, std::string("echo:a\0b", 8));
  // An empty request and an empty answer are messages too.
  ASSERT_TRUE(Unary(ch, kEcho, "", &resp).ok());
  EXPECT_EQ(resp, "echo:");
  const ServerCounters c = server_->Counters();
  EXPECT_EQ(c.calls, 2U);
  EXPECT_EQ(c.calls_rejected, 0U);
  EXPECT_EQ(c.connections_accepted, 1U);  // both calls on one connection
}

TEST_F(H2ServerTest, UnaryRoundTripWithOurClient) {
  StartServer();
  auto r = GrpcUnaryCall(socket_, kEcho, "hello", GrpcCallOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "echo:hello");
}

TEST_F(H2ServerTest, ErrorStatusAndMessageRoundTripExactly) {
  StartServer();
  // '%' (the escape itself), non-ASCII UTF-8, newlines, a tab and a trailing space.
  const std::string message = "50% done\nline two\r\n\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\t~ ";
  auto ch = Channel();
  const grpc::Status s = Unary(ch, kFail, message, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), message);

  auto r = GrpcUnaryCall(socket_, kFail, message, GrpcCallOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "grpc-status 9 (FAILED_PRECONDITION): " + message);
}

// gRPC Go clients before 1.55 send the unix socket path as :authority (with '/', which strict
// HTTP/2 servers refuse); newer ones send it percent-encoded, or "localhost". All are served.
TEST_F(H2ServerTest, AnyAuthorityIsAccepted) {
  StartServer();
  for (const char* authority : {"localhost", "/var/lib/kubelet/device-plugins/hyperaccel.sock",
                                "var/lib/kubelet/device-plugins/hyperaccel.sock",
                                "var%2Flib%2Fkubelet%2Fdevice-plugins%2Fhyperaccel.sock", ""}) {
    GrpcCallOptions o;
    o.authority = authority;
    auto r = GrpcUnaryCall(socket_, kEcho, "a", o);
    ASSERT_TRUE(r.ok()) << "authority '" << authority << "': " << r.status().ToString();
    EXPECT_EQ(*r, "echo:a");
  }
}

TEST_F(H2ServerTest, UnknownMethodIsUnimplemented) {
  StartServer();
  const grpc::Status s = Unary(Channel(), "/test.Svc/Nope", "x", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "unknown method /test.Svc/Nope");
  auto r = GrpcUnaryCall(socket_, "/other.Svc/Nope", "", GrpcCallOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "grpc-status 12 (UNIMPLEMENTED): unknown method /other.Svc/Nope");
  EXPECT_EQ(server_->Counters().calls_rejected, 2U);
  EXPECT_EQ(server_->Counters().calls, 0U);
}

TEST_F(H2ServerTest, DeferredUnaryAnsweredFromAnotherThread) {
  Latch<std::shared_ptr<UnaryResponder>> got;
  later_ = [&](std::string_view req, std::shared_ptr<UnaryResponder> r) {
    EXPECT_EQ(req, "q");
    got.Set(std::move(r));
  };
  StartServer();
  std::thread answerer([&] {
    auto r = got.Wait();
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE((*r)->Cancelled());
    (*r)->Finish({}, "answer from another thread");
    (*r)->Finish({GrpcCode::kInternal, "second"}, "ignored");  // later calls do nothing
  });
  std::string resp;
  const grpc::Status s = Unary(Channel(), kLater, "q", &resp);
  answerer.join();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp, "answer from another thread");
}

TEST_F(H2ServerTest, DeferredErrorIsATrailersOnlyAnswer) {
  later_ = [](std::string_view, const std::shared_ptr<UnaryResponder>& r) {
    r->Finish({GrpcCode::kNotFound, "no card 0000:3b:00.1"}, "not sent");
  };
  StartServer();
  const grpc::Status s = Unary(Channel(), kLater, "", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no card 0000:3b:00.1");
}

TEST_F(H2ServerTest, DroppedResponderIsInternal) {
  Latch<std::shared_ptr<UnaryResponder>> got;
  later_ = [&](std::string_view req, std::shared_ptr<UnaryResponder> r) {
    if (req == "keep") got.Set(std::move(r));  // dropped later, on another thread
    // otherwise dropped here, inside the handler
  };
  StartServer();
  auto ch = Channel();
  grpc::Status s = Unary(ch, kLater, "drop", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message(), "no answer");

  std::thread dropper([&] {
    auto r = got.Take();
    ASSERT_TRUE(r.has_value());
    r->reset();  // the last reference
  });
  s = Unary(ch, kLater, "keep", nullptr);
  dropper.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message(), "no answer");
}

// The server itself answers DEADLINE_EXCEEDED when the call's grpc-timeout passes: the exchange is
// driven without a client-side deadline, so only the server can end it.
TEST_F(H2ServerTest, DeferredCallPastItsGrpcTimeoutIsDeadlineExceeded) {
  Latch<std::shared_ptr<UnaryResponder>> got;
  later_ = [&](std::string_view, std::shared_ptr<UnaryResponder> r) { got.Set(std::move(r)); };
  StartServer();
  GrpcCallOptions o;
  o.timeout = 200ms;  // sent as grpc-timeout: 200m
  auto ex = GrpcUnaryExchange::Create(kLater, "", o);
  ASSERT_TRUE(ex.ok());
  const int fd = Connect(socket_);
  ASSERT_GE(fd, 0);
  auto r = DriveExchange(fd, **ex);
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().message(), "grpc-status 4 (DEADLINE_EXCEEDED): deadline exceeded");
  auto responder = got.Wait();
  ASSERT_TRUE(responder.has_value());
  EXPECT_TRUE((*responder)->Cancelled());
  (*responder)->Finish({}, "too late");  // does nothing
}

TEST_F(H2ServerTest, AllGrpcTimeoutUnitsAreAccepted) {
  StartServer();
  // Our client sends milliseconds; the gRPC client picks its own unit from the deadline.
  for (auto d :
       {std::chrono::nanoseconds(2h), std::chrono::nanoseconds(90s), std::chrono::nanoseconds(1500ms)}) {
    std::string resp;
    const grpc::Status s = Unary(Channel(), kLater, "", &resp, d);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp, "now");
  }
}

TEST_F(H2ServerTest, LargeResponseAndLargeRequestCrossFlowControl) {
  const std::string big_response(std::size_t{1} << 20, 'r');
  StartServer();
  auto ch = Channel();
  // 1 MiB answer: /Echo returns "echo:" + request.
  std::string resp;
  grpc::Status s = Unary(ch, kEcho, big_response, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.size(), big_response.size() + 5);
  EXPECT_EQ(resp, "echo:" + big_response);
  // 3 MiB request (over the 1 MiB stream window we advertise); the client's receive limit is 4 MiB.
  std::string big_request(std::size_t{3} << 20, '\0');
  for (std::size_t i = 0; i < big_request.size(); ++i) big_request[i] = static_cast<char>(i * 7 + 3);
  s = Unary(ch, kEcho, big_request, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp, "echo:" + big_request);
  // And with our client.
  auto r = GrpcUnaryCall(socket_, kEcho, big_request, GrpcCallOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "echo:" + big_request);
}

TEST_F(H2ServerTest, RequestOverTheLimitIsResourceExhausted) {
  options_.max_request_bytes = 1000;
  StartServer();
  auto ch = Channel();
  std::string resp;
  ASSERT_TRUE(Unary(ch, kEcho, std::string(1000, 'x'), &resp).ok());  // at the limit: fine
  const grpc::Status s = Unary(ch, kEcho, std::string(1001, 'x'), nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "request message of 1001 bytes exceeds the limit of 1000");
  // Much larger than the limit and the windows: refused from its prefix, the rest is not kept.
  const grpc::Status s2 = Unary(ch, kEcho, std::string(std::size_t{3} << 20, 'x'), nullptr);
  EXPECT_EQ(s2.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The connection still serves.
  ASSERT_TRUE(Unary(ch, kEcho, "ok", &resp).ok());
  EXPECT_EQ(resp, "echo:ok");
  EXPECT_EQ(server_->Counters().calls_rejected, 2U);
}

TEST_F(H2ServerTest, FiftyConcurrentCallsMultiplexOnOneChannel) {
  constexpr int kCalls = 50;
  // Nobody is answered before all 50 are in the server at once: only multiplexing can pass.
  std::mutex mu;
  std::vector<std::pair<std::string, std::shared_ptr<UnaryResponder>>> pending;
  later_ = [&](std::string_view req, std::shared_ptr<UnaryResponder> r) {
    std::lock_guard<std::mutex> lock(mu);
    pending.emplace_back(std::string(req), std::move(r));
    if (pending.size() == kCalls) {
      for (auto& [q, resp] : pending) resp->Finish({}, "answer-" + q);
      pending.clear();
    }
  };
  StartServer();
  auto ch = Channel();
  std::vector<std::thread> threads;
  std::vector<std::string> answers(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  threads.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      statuses[static_cast<std::size_t>(i)] =
          Unary(ch, kLater, std::to_string(i), &answers[static_cast<std::size_t>(i)]);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[static_cast<std::size_t>(i)].ok())
        << i << statuses[static_cast<std::size_t>(i)].error_message();
    EXPECT_EQ(answers[static_cast<std::size_t>(i)], "answer-" + std::to_string(i));
  }
  EXPECT_EQ(server_->Counters().connections_accepted, 1U);
  EXPECT_EQ(server_->Counters().calls, static_cast<std::uint64_t>(kCalls));
}

// ------------------------------------------------------------------------------- server streaming

TEST_F(H2ServerTest, HundredMessagesWrittenFromAnotherThreadArriveInOrder) {
  std::thread writer;
  Latch<bool> done;
  watch_ = [&](std::string_view req, const std::shared_ptr<ServerStream>& s) {
    EXPECT_EQ(req, "from 0");
    s->OnDone([&](bool cancelled) { done.Set(cancelled); });
    writer = std::thread([s] {
      for (int i = 0; i < 100; ++i) EXPECT_TRUE(s->Write("msg " + std::to_string(i)));
      s->Finish({GrpcCode::kAborted, "end of 100%"});
      EXPECT_FALSE(s->Write("after finish"));
    });
  };
  StartServer();
  auto ch = Channel();
  grpc::ClientContext ctx;
  auto reader = OpenStream(ch, &ctx, "from 0");
  const std::vector<std::string> got = ReadAll(*reader);
  const grpc::Status s = reader->Finish();
  writer.join();
  ASSERT_EQ(got.size(), 100U);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], "msg " + std::to_string(i));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(s.error_message(), "end of 100%");
  auto cancelled = done.Wait();
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_FALSE(*cancelled);  // trailers sent
  EXPECT_EQ(done.sets(), 1);
}

TEST_F(H2ServerTest, ReplaceUnsentKeepsOnlyTheLatestQueuedMessage) {
  watch_ = [](std::string_view, const std::shared_ptr<ServerStream>& s) {
    // Nothing is sent while the handler runs: each write replaces the one before.
    EXPECT_TRUE(s->Write("state 1"));
    EXPECT_TRUE(s->Write("state 2", /*replace_unsent=*/true));
    EXPECT_TRUE(s->Write("state 3", /*replace_unsent=*/true));
    EXPECT_TRUE(s->Write("event"));  // not a replacement: queued behind
    s->Finish({});
  };
  StartServer();
  auto ch = Channel();
  grpc::ClientContext ctx;
  auto reader = OpenStream(ch, &ctx, "");
  const std::vector<std::string> got = ReadAll(*reader);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got, (std::vector<std::string>{"state 3", "event"}));
}

TEST_F(H2ServerTest, FinishWithoutMessagesIsTrailersOnly) {
  watch_ = [](std::string_view, const std::shared_ptr<ServerStream>& s) {
    s->Finish({GrpcCode::kUnavailable, "shutting down"});
  };
  StartServer();
  grpc::ClientContext ctx;
  auto reader = OpenStream(Channel(), &ctx, "");
  grpc::ByteBuffer b;
  EXPECT_FALSE(reader->Read(&b));
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "shutting down");
}

TEST_F(H2ServerTest, ClientCancelEndsTheStreamOnceAndWritesFail) {
  Latch<std::shared_ptr<ServerStream>> stream;
  Latch<bool> done;
  watch_ = [&](std::string_view, std::shared_ptr<ServerStream> s) {
    s->OnDone([&](bool cancelled) { done.Set(cancelled); });
    EXPECT_TRUE(s->Write("first"));
    stream.Set(std::move(s));
  };
  StartServer();
  auto ch = Channel();
  grpc::ClientContext ctx;
  auto reader = OpenStream(ch, &ctx, "");
  grpc::ByteBuffer b;
  ASSERT_TRUE(reader->Read(&b));
  EXPECT_EQ(FromBuffer(b), "first");
  ctx.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  auto cancelled = done.Wait();
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_TRUE(*cancelled);
  auto s = stream.Wait();
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE((*s)->Write("after cancel"));
  (*s)->Finish({});  // does nothing
  // OnDone set after the end runs at once, with the same verdict.
  Latch<bool> late;
  (*s)->OnDone([&](bool c) { late.Set(c); });
  EXPECT_EQ(late.Wait(0ns), std::optional<bool>(true));
  EXPECT_EQ(done.sets(), 1);
}

TEST_F(H2ServerTest, ConnectionCloseEndsEveryStreamOfIt) {
  Latch<std::shared_ptr<ServerStream>> stream;
  Latch<bool> done;
  watch_ = [&](std::string_view, std::shared_ptr<ServerStream> s) {
    s->OnDone([&](bool cancelled) { done.Set(cancelled); });
    stream.Set(std::move(s));
  };
  StartServer();
  // Our exchange opens the stream on a raw connection, which the test then closes.
  auto ex = GrpcUnaryExchange::Create(kWatch, "", GrpcCallOptions{});
  ASSERT_TRUE(ex.ok());
  const int fd = Connect(socket_);
  ASSERT_GE(fd, 0);
  (void)DriveExchange(fd, **ex, /*stop_reading_after_request=*/true);
  ASSERT_TRUE(stream.Wait().has_value());
  ::close(fd);
  auto cancelled = done.Wait();
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_TRUE(*cancelled);
  EXPECT_FALSE((*stream.Wait())->Write("to nobody"));
  EXPECT_TRUE(WaitFor([&] { return server_->Counters().connections_open == 0; }));
  EXPECT_EQ(done.sets(), 1);
}

// A client that never reads: the queue bound ends the stream (RST_STREAM ENHANCE_YOUR_CALM, which
// the gRPC client reports as RESOURCE_EXHAUSTED) and Write refuses, so memory stays bounded.
TEST_F(H2ServerTest, ClientThatNeverReadsHitsTheQueueBound) {
  options_.max_queued_bytes_per_connection = std::size_t{1} << 20;
  Latch<int> refused_after;
  Latch<bool> done;
  std::thread writer;
  watch_ = [&](std::string_view, const std::shared_ptr<ServerStream>& s) {
    s->OnDone([&](bool cancelled) { done.Set(cancelled); });
    writer = std::thread([s, &refused_after] {
      const std::string chunk(std::size_t{64} * 1024, 'm');
      for (int i = 0; i < 10000; ++i) {
        if (!s->Write(chunk)) {
          refused_after.Set(i);
          return;
        }
      }
      refused_after.Set(-1);
    });
  };
  StartServer();
  auto ch = Channel();
  grpc::ClientContext ctx;
  auto reader = OpenStream(ch, &ctx, "");
  auto n = refused_after.Wait();
  writer.join();
  ASSERT_TRUE(n.has_value());
  // Refused after at most what the windows, the socket buffers and the bound hold (~20 MiB).
  EXPECT_GE(*n, 1);
  EXPECT_LT(*n, 320);
  grpc::ByteBuffer b;
  while (reader->Read(&b)) {
  }
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  auto cancelled = done.Wait();
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_TRUE(*cancelled);
}

// ------------------------------------------------------------------------------- connections

TEST_F(H2ServerTest, ConnectionsBeyondTheLimitAreClosed) {
  options_.max_connections = 2;
  StartServer();
  const int a = Connect(socket_);
  const int b = Connect(socket_);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_TRUE(WaitFor([&] { return server_->Counters().connections_open == 2; }));
  const int c = Connect(socket_);
  ASSERT_GE(c, 0);
  EXPECT_TRUE(PeerCloses(c));
  EXPECT_EQ(server_->Counters().connections_refused, 1U);
  ::close(c);
  ::close(a);
  ASSERT_TRUE(WaitFor([&] { return server_->Counters().connections_open == 1; }));
  auto r = GrpcUnaryCall(socket_, kEcho, "again", GrpcCallOptions{});  // a place is free again
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ::close(b);
}

TEST_F(H2ServerTest, GarbageAndAHalfPrefaceCloseOnlyTheirConnection) {
  StartServer();
  const int garbage = Connect(socket_);
  ASSERT_GE(garbage, 0);
  static constexpr char kJunk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\x13garbage";
  const std::string junk(kJunk, sizeof kJunk - 1);  // NUL included
  ASSERT_EQ(::send(garbage, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  EXPECT_TRUE(PeerCloses(garbage));
  ::close(garbage);
  EXPECT_GE(server_->Counters().protocol_errors, 1U);

  const int half = Connect(socket_);
  ASSERT_GE(half, 0);
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM";  // the first 20 of its 24 bytes
  ASSERT_EQ(::send(half, preface.data(), preface.size(), MSG_NOSIGNAL), static_cast<ssize_t>(preface.size()));
  // Served beside the half-open connection.
  auto r = GrpcUnaryCall(socket_, kEcho, "still here", GrpcCallOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "echo:still here");
  ::shutdown(half, SHUT_WR);
  EXPECT_TRUE(PeerCloses(half));
  ::close(half);
  EXPECT_TRUE(WaitFor([&] { return server_->Counters().connections_open == 0; }));
  std::string resp;
  ASSERT_TRUE(Unary(Channel(), kEcho, "grpc too", &resp).ok());
}

TEST_F(H2ServerTest, AConnectionThatSendsNoPrefaceIsClosedAfterTheHandshakeTimeout) {
  options_.handshake_timeout = 200ms;
  options_.max_connections = 1;
  StartServer();
  const int silent = Connect(socket_);
  ASSERT_GE(silent, 0);
  const std::string preface = "PRI * HTTP/2.0\r\n";  // part of it, then nothing
  ASSERT_EQ(::send(silent, preface.data(), preface.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(preface.size()));
  const auto start = Clock::now();
  EXPECT_TRUE(PeerCloses(silent));
  EXPECT_GE(Clock::now() - start, 150ms);  // not before its time
  ::close(silent);
  // Its place is free again; a real client's connection outlives the timeout (it sent SETTINGS).
  ASSERT_TRUE(WaitFor([&] { return server_->Counters().connections_open == 0; }));
  auto ch = Channel();
  std::string resp;
  ASSERT_TRUE(Unary(ch, kEcho, "1", &resp).ok());
  std::this_thread::sleep_for(400ms);  // past the timeout: the connection must still be there
  ASSERT_TRUE(Unary(ch, kEcho, "2", &resp).ok());
  EXPECT_EQ(resp, "echo:2");
  EXPECT_EQ(server_->Counters().connections_accepted, 2U);
}

TEST_F(H2ServerTest, StartRefusesAnExistingPathAndATooLongOne) {
  StartServer();
  Server second;
  const Status s = second.Start(socket_);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(s.message(), socket_ + " already exists");
  const Status t = second.Start(dir_.path() + "/" + std::string(120, 'x'));
  EXPECT_EQ(t.code(), StatusCode::kInvalidArgument) << t.ToString();
  // The first server is untouched.
  auto r = GrpcUnaryCall(socket_, kEcho, "", GrpcCallOptions{});
  EXPECT_TRUE(r.ok());
}

TEST_F(H2ServerTest, ShutdownEndsAnOpenStreamAndAPendingCallBeforeTheDeadline) {
  Latch<std::shared_ptr<UnaryResponder>> responder;
  Latch<bool> stream_done;
  Latch<bool> stream_open;
  later_ = [&](std::string_view, std::shared_ptr<UnaryResponder> r) { responder.Set(std::move(r)); };
  watch_ = [&](std::string_view, const std::shared_ptr<ServerStream>& s) {
    s->OnDone([&](bool cancelled) { stream_done.Set(cancelled); });
    EXPECT_TRUE(s->Write("hello"));
    stream_open.Set(true);
  };
  StartServer();
  auto ch = Channel();
  grpc::ClientContext ctx;
  auto reader = OpenStream(ch, &ctx, "");
  grpc::ByteBuffer b;
  ASSERT_TRUE(reader->Read(&b));
  grpc::Status unary_status;
  std::thread caller([&] { unary_status = Unary(ch, kLater, "", nullptr); });
  ASSERT_TRUE(responder.Wait().has_value());

  const auto start = Clock::now();
  server_->Shutdown(start + 300ms);
  const auto took = Clock::now() - start;
  EXPECT_LT(took, 300ms + 10s);  // joined at the deadline, plus slack for a loaded machine
  EXPECT_GE(took, 250ms);        // the open calls were given their grace period
  auto cancelled = stream_done.Wait(0ns);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_TRUE(*cancelled);
  EXPECT_TRUE((*responder.Wait())->Cancelled());
  (*responder.Wait())->Finish({}, "dropped");
  caller.join();
  EXPECT_EQ(unary_status.error_code(), grpc::StatusCode::UNAVAILABLE) << unary_status.error_message();
  while (reader->Read(&b)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
  EXPECT_EQ(server_->Counters().connections_open, 0U);
  server_->Shutdown(Clock::now());  // again: nothing to do
}

TEST_F(H2ServerTest, ShutdownWithoutOpenCallsIsImmediate) {
  StartServer();
  ASSERT_TRUE(GrpcUnaryCall(socket_, kEcho, "", GrpcCallOptions{}).ok());
  const auto start = Clock::now();
  server_->Shutdown(start + 60s);
  EXPECT_LT(Clock::now() - start, 20s);  // well before the deadline: nothing was open
}

TEST(ToGrpcStatusTest, MapsEveryCode) {
  EXPECT_EQ(ToGrpcStatus(Status::Ok()).code, GrpcCode::kOk);
  EXPECT_EQ(ToGrpcStatus(Status(StatusCode::kConflict, "stale")).code, GrpcCode::kAborted);
  EXPECT_EQ(ToGrpcStatus(Status(StatusCode::kConflict, "stale")).message, "stale");
  EXPECT_EQ(ToGrpcStatus(InvalidArgument("x")).code, GrpcCode::kInvalidArgument);
  EXPECT_EQ(ToGrpcStatus(NotFound("x")).code, GrpcCode::kNotFound);
  EXPECT_EQ(ToGrpcStatus(Unavailable("x")).code, GrpcCode::kUnavailable);
  EXPECT_EQ(ToGrpcStatus(FailedPrecondition("x")).code, GrpcCode::kFailedPrecondition);
  EXPECT_EQ(ToGrpcStatus(Status(StatusCode::kDeadlineExceeded, "x")).code, GrpcCode::kDeadlineExceeded);
  EXPECT_EQ(ToGrpcStatus(ResourceExhausted("x")).code, GrpcCode::kResourceExhausted);
  EXPECT_EQ(ToGrpcStatus(Status(StatusCode::kAlreadyExists, "x")).code, GrpcCode::kAlreadyExists);
  EXPECT_EQ(ToGrpcStatus(Internal("x")).code, GrpcCode::kInternal);
}

}  // namespace
}  // namespace hyperaccel::rpc
