// The agent's pod-resources client (gRPC's wire protocol on nghttp2, hyperaccel/rpc/grpc_unary.h) against the
// REAL gRPC pod-resources server of the kubelet simulator, and against sockets that are not gRPC.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../support/temp_dir.h"
#include "hyperaccel/kubelet_sim/kubelet_sim.h"
#include "hyperaccel/rpc/grpc_unary.h"
#include "hyperaccel/topology_agent/sources.h"

namespace hyperaccel::agent {
namespace {

using rpc::GrpcCallOptions;
using rpc::GrpcUnaryCall;
using rpc::GrpcUnaryExchange;

namespace fs = std::filesystem;
namespace ks = kubelet_sim;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kResource = "hyperaccel.ai/fpga";

using hyperaccel::testing::TempDir;

// A unix-socket listener that is not a gRPC server: on each connection it writes `reply` (maybe
// nothing), then closes the connection or holds it open until the test ends.
class RawListener {
 public:
  RawListener(const std::string& path, std::string reply, bool close_after_reply)
      : reply_(std::move(reply)), close_(close_after_reply) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 8) != 0) {
      ADD_FAILURE() << "cannot listen on " << path;
      return;
    }
    thread_ = std::thread([this] {
      while (!stop_) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        // Read what the client sends first (its preface and request), as a server would.
        char buf[4096];
        (void)::recv(c, buf, sizeof buf, MSG_DONTWAIT);
        if (!reply_.empty()) (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
        if (close_) {
          ::close(c);
        } else {
          held_.push_back(c);
        }
        ++accepted_;
      }
    });
  }
  ~RawListener() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
    for (int c : held_) ::close(c);
  }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;
  int accepted() const { return accepted_; }

 private:
  std::string reply_;
  bool close_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> held_;
  std::thread thread_;
};

class PodResourcesClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ks::Options o;
    o.dir = dir_.path() + "/dp";
    o.pod_resources_socket = socket_;
    sim_ = std::make_unique<ks::KubeletSim>(o);
    ASSERT_TRUE(sim_->Start().ok());
  }

  std::unique_ptr<AllocatedDevices> Client(std::chrono::milliseconds timeout = 5s,
                                           std::size_t max_bytes = std::size_t{16} << 20) const {
    PodResourcesOptions o;
    o.timeout = timeout;
    o.max_response_bytes = max_bytes;
    return PodResourcesClient(socket_, kResource, o);
  }

  TempDir dir_{"prc"};
  std::string socket_ = dir_.path() + "/pr.sock";
  std::unique_ptr<ks::KubeletSim> sim_;
};

TEST_F(PodResourcesClientTest, ListsTheDeviceIdsOfItsResourceOnly) {
  sim_->RecordAllocation("train-0", "ml", "worker", kResource, {"0000:3b:00.1", "0000:5e:00.1"});
  sim_->RecordAllocation("train-0", "ml", "sidecar", "nvidia.com/gpu", {"GPU-1"});
  sim_->RecordAllocation("infer-1", "default", "main", kResource, {"0000:86:00.1"});
  auto ids = Client()->List();
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, (std::set<std::string>{"0000:3b:00.1", "0000:5e:00.1", "0000:86:00.1"}));
}

TEST_F(PodResourcesClientTest, NoPodsIsAnEmptyAnswerNotAnError) {
  auto ids = Client()->List();
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_TRUE(ids->empty());
}

// Thousands of pods: the answer (~1.8 MB) spans ~110 DATA frames of 16 KiB and more than the
// 1 MiB windows the client advertises, so it only arrives whole if WINDOW_UPDATEs flow.
TEST_F(PodResourcesClientTest, LargeAnswerSpanningManyDataFramesArrivesWhole) {
  constexpr int kPods = 20000;
  std::set<std::string> expected;
  for (int i = 0; i < kPods; ++i) {
    const std::string id = "dev-" + std::to_string(i);
    sim_->RecordAllocation("pod-with-a-long-name-" + std::to_string(i), "namespace-" + std::to_string(i % 7),
                           "container", i % 5 == 0 ? "other.io/thing" : kResource, {id});
    if (i % 5 != 0) expected.insert(id);
  }
  auto client = Client(30s);
  auto ids = client->List();
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(ids->size(), expected.size());
  EXPECT_EQ(*ids, expected);
  // What the test claims: the answer is larger than the 1 MiB windows.
  GrpcCallOptions raw;
  raw.timeout = 30s;
  auto body = GrpcUnaryCall(socket_, "/v1.PodResourcesLister/List", "", raw);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_GT(body->size(), std::size_t{1} << 20);
  // The same client again: nothing is left over from the first call.
  auto again = client->List();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->size(), expected.size());
}

TEST_F(PodResourcesClientTest, AnswerAboveTheLimitIsAClearError) {
  for (int i = 0; i < 3000; ++i) {
    sim_->RecordAllocation("pod-" + std::to_string(i), "default", "c", kResource,
                           {"dev-" + std::to_string(i)});
  }
  auto ids = Client(10s, std::size_t{64} * 1024)->List();
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(ids.status().message().find("larger than the limit of 65536 bytes"), std::string::npos)
      << ids.status().message();
  EXPECT_NE(ids.status().message().find(socket_), std::string::npos) << ids.status().message();
}

TEST_F(PodResourcesClientTest, ServerErrorStatusAndMessageAreReported) {
  // The server percent-encodes grpc-message; the client decodes it.
  sim_->SetPodResourcesFault(ks::PodResourcesFault{0ms, 14, "kubelet busy: 100% of workers taken"});
  auto ids = Client()->List();
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(ids.status().message().find("grpc-status 14 (UNAVAILABLE): kubelet busy: 100% of workers taken"),
            std::string::npos)
      << ids.status().message();

  sim_->SetPodResourcesFault(ks::PodResourcesFault{0ms, 7, "denied"});
  auto denied = Client()->List();
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.status().message().find("grpc-status 7 (PERMISSION_DENIED): denied"), std::string::npos)
      << denied.status().message();
}

TEST_F(PodResourcesClientTest, UnknownMethodIsUnimplemented) {
  GrpcCallOptions o;
  auto r = GrpcUnaryCall(socket_, "/v1.PodResourcesLister/NoSuchMethod", "", o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("grpc-status 12 (UNIMPLEMENTED)"), std::string::npos)
      << r.status().message();
}

// A server that accepts and never answers: the call ends as soon as cancel_fd becomes readable,
// long before its deadline, with Unavailable "cancelled".
TEST(GrpcUnaryCallTest, CancelFdEndsAWaitingCallAtOnce) {
  TempDir dir("prc");
  const std::string path = dir.path() + "/silent.sock";
  RawListener silent(path, "", /*close_after_reply=*/false);
  const int cancel = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(cancel, 0);
  GrpcCallOptions o;
  o.timeout = 60s;
  o.cancel_fd = cancel;
  std::thread canceller([&] {
    // Cancel only once the call is surely waiting: after the listener has accepted it.
    while (silent.accepted() == 0) std::this_thread::sleep_for(1ms);
    const std::uint64_t one = 1;
    ASSERT_EQ(::write(cancel, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  });
  const auto start = Clock::now();
  auto r = GrpcUnaryCall(path, "/v1.PodResourcesLister/List", "", o);
  const auto took = Clock::now() - start;
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "cancelled");
  EXPECT_LT(took, 30s);  // not the 60 s deadline (generous bound for a loaded machine)
  ::close(cancel);
}

// A cancel_fd already readable: the call does not wait for the server at all.
TEST(GrpcUnaryCallTest, CancelFdAlreadyReadableEndsTheCallBeforeAnyAnswer) {
  TempDir dir("prc");
  const std::string path = dir.path() + "/silent.sock";
  RawListener silent(path, "", /*close_after_reply=*/false);
  std::array<int, 2> pipe_fds{};
  ASSERT_EQ(::pipe2(pipe_fds.data(), O_CLOEXEC), 0);
  ::close(pipe_fds[1]);  // a closed write end: the read end reports POLLHUP
  GrpcCallOptions o;
  o.timeout = 60s;
  o.cancel_fd = pipe_fds[0];
  auto r = GrpcUnaryCall(path, "/v1.PodResourcesLister/List", "", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "cancelled");
  ::close(pipe_fds[0]);
}

TEST_F(PodResourcesClientTest, ServerNotThereIsUnavailable) {
  const std::string missing = dir_.path() + "/nobody.sock";
  auto ids = PodResourcesClient(missing, kResource, 2s)->List();
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(ids.status().message().find("connect " + missing + ": No such file or directory"),
            std::string::npos)
      << ids.status().message();

  const std::string too_long = "/tmp/" + std::string(200, 'x') + ".sock";
  auto bad = PodResourcesClient(too_long, kResource, 2s)->List();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("longer than 107 bytes"), std::string::npos)
      << bad.status().message();
}

TEST_F(PodResourcesClientTest, HangingServerEndsAtTheDeadline) {
  sim_->SetPodResourcesFault(ks::PodResourcesFault{20s, 0, ""});
  const auto start = Clock::now();
  auto ids = Client(300ms)->List();
  const auto took = Clock::now() - start;
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kUnavailable);
  // Either our own deadline or the server honouring grpc-timeout (DEADLINE_EXCEEDED) ends it.
  const std::string& m = ids.status().message();
  EXPECT_TRUE(m.find("deadline of 300 ms") != std::string::npos ||
              m.find("DEADLINE_EXCEEDED") != std::string::npos)
      << m;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 10s);  // far below the server's 20 s, with room for a loaded machine
  sim_->SetPodResourcesFault(std::nullopt);
}

TEST_F(PodResourcesClientTest, ReachesTheServerAgainAfterItRestarts) {
  sim_->RecordAllocation("p", "default", "c", kResource, {"0000:3b:00.1"});
  auto client = Client(2s);
  auto before = client->List();
  ASSERT_TRUE(before.ok()) << before.status().ToString();

  sim_->StopPodResources();
  auto down = client->List();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);

  ASSERT_TRUE(sim_->StartPodResources().ok());
  auto after = client->List();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, *before);

  // A full kubelet restart (every socket of the device-plugin directory recreated) as well.
  ASSERT_TRUE(sim_->Restart().ok());
  auto again = client->List();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *before);
}

class NotGrpcTest : public ::testing::Test {
 protected:
  TempDir dir_{"prc"};
  std::string socket_ = dir_.path() + "/junk.sock";

  Status ListOnce(std::chrono::milliseconds timeout = 2s) {
    auto ids = PodResourcesClient(socket_, kResource, timeout)->List();
    EXPECT_FALSE(ids.ok());
    return ids.status();
  }
};

TEST_F(NotGrpcTest, GarbageBytesAreAProtocolError) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 131 + 17) & 0xff));
  RawListener l(socket_, junk, false);
  const Status s = ListOnce();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("HTTP/2"), std::string::npos) << s.message();
}

TEST_F(NotGrpcTest, AnHttp1ServerIsNotMistakenForGrpc) {
  RawListener l(socket_, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", true);
  const Status s = ListOnce();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("is it a gRPC server?"), std::string::npos) << s.message();
}

TEST_F(NotGrpcTest, AListenerThatClosesAtOnceIsUnavailable) {
  RawListener l(socket_, "", true);
  const Status s = ListOnce();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("connection closed before any response"), std::string::npos) << s.message();
}

TEST_F(NotGrpcTest, AListenerThatSaysNothingHitsTheDeadline) {
  RawListener l(socket_, "", false);
  const Status s = ListOnce(200ms);
  EXPECT_NE(s.message().find("deadline of 200 ms"), std::string::npos) << s.message();
}

// A server that speaks HTTP/2 but answers with a valid SETTINGS frame and then junk frames.
TEST_F(NotGrpcTest, ValidSettingsThenJunkFramesIsAProtocolError) {
  std::string reply("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);                      // empty SETTINGS
  reply += std::string("\x00\x00\x04\x01\x04\x00\x00\x00\x01\xff\xff\xff\xff", 13);  // HEADERS, bad HPACK
  RawListener l(socket_, reply, false);
  const Status s = ListOnce();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("pod-resources List on " + socket_), std::string::npos) << s.message();
}

// The exchange alone, without a socket: what it writes first is the h2c preface and a request that
// carries gRPC's headers.
TEST(GrpcUnaryExchangeTest, StartsWithThePrefaceAndTheRequest) {
  GrpcCallOptions o;
  o.timeout = 1500ms;
  auto ex = GrpcUnaryExchange::Create("/v1.PodResourcesLister/List", "", o);
  ASSERT_TRUE(ex.ok());
  std::string out;
  (*ex)->Output(out);
  ASSERT_GE(out.size(), 24U);
  EXPECT_EQ(out.substr(0, 24), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  // The request body: one DATA frame on stream 1 with END_STREAM, carrying the 5-byte prefix of an
  // empty, uncompressed message.
  const std::string data_frame("\x00\x00\x05\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00", 14);
  EXPECT_NE(out.find(data_frame), std::string::npos);
  EXPECT_FALSE((*ex)->Done());
  (*ex)->InputClosed();
  EXPECT_TRUE((*ex)->Done());
  EXPECT_FALSE((*ex)->Response().ok());
}

// What a real gRPC server (the kubelet simulator) sends back for one List call, recorded by driving
// an exchange over the socket by hand.
std::string RecordServerBytes(const std::string& socket_path) {
  auto ex = GrpcUnaryExchange::Create("/v1.PodResourcesLister/List", "", GrpcCallOptions{});
  if (!ex.ok()) return "";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_path.copy(addr.sun_path, socket_path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string recorded;
  const auto deadline = Clock::now() + 10s;
  while (!(*ex)->Done() && Clock::now() < deadline) {
    std::string out;
    (*ex)->Output(out);
    if (!out.empty() && ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
      break;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    recorded.append(buf, static_cast<std::size_t>(n));
    (*ex)->Input(reinterpret_cast<const std::uint8_t*>(buf), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return (*ex)->Done() && (*ex)->Response().ok() ? recorded : "";
}

// Hostile input: the recorded answer of a real server, truncated and with bytes flipped, inserted
// or dropped, fed to fresh exchanges in pieces. Every one must end in an answer or an error with a
// message, without a crash (the ASan build checks memory safety as well).
TEST_F(PodResourcesClientTest, MutatedServerBytesEndInAnAnswerOrAnErrorNeverACrash) {
  for (int i = 0; i < 50; ++i) {
    sim_->RecordAllocation("pod-" + std::to_string(i), "default", "c", kResource,
                           {"dev-" + std::to_string(i)});
  }
  const std::string good = RecordServerBytes(socket_);
  ASSERT_GT(good.size(), 100U);
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int answers = 0;
  int errors = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = next() % bytes.size();
      switch (next() % 4) {
        case 0: bytes[at] = static_cast<char>(next() & 0xff); break;
        case 1: bytes.insert(at, 1, static_cast<char>(next() & 0xff)); break;
        case 2: bytes.erase(at, 1 + next() % 16); break;
        default: bytes.resize(at); break;
      }
      if (bytes.empty()) bytes = good.substr(0, 9);
    }
    auto ex = GrpcUnaryExchange::Create("/v1.PodResourcesLister/List", "", GrpcCallOptions{});
    ASSERT_TRUE(ex.ok());
    std::string out;
    (*ex)->Output(out);
    std::size_t pos = 0;
    while (pos < bytes.size() && !(*ex)->Done()) {
      const std::size_t n = std::min<std::size_t>(bytes.size() - pos, 1 + next() % 700);
      (*ex)->Input(reinterpret_cast<const std::uint8_t*>(bytes.data()) + pos, n);
      pos += n;
      out.clear();
      (*ex)->Output(out);
    }
    (*ex)->InputClosed();
    ASSERT_TRUE((*ex)->Done());
    auto r = (*ex)->Response();
    if (r.ok()) {
      ++answers;
    } else {
      ++errors;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  // Most mutations break the answer; some (a flipped padding or window byte) do not.
  EXPECT_GT(errors, 1000);
  EXPECT_EQ(answers + errors, 3000);
}

TEST(GrpcUnaryExchangeTest, RejectsAMethodWithoutLeadingSlash) {
  auto ex = GrpcUnaryExchange::Create("v1.PodResourcesLister/List", "", GrpcCallOptions{});
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hyperaccel::agent
