// The kubelet side of the DRA driver on real unix sockets and real gRPC: NodeServer against the
// fake kubelet (tests/support/kubelet-dra) with the fake back ends of fake_backends.h.
#include "hyperaccel/dra_driver/node_server.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <thread>

#include "../support/temp_dir.h"
#include "fake_backends.h"
#include "hyperaccel/kubelet_dra/kubelet_dra.h"
#include "process.h"

namespace hyperaccel::dra {
namespace {

namespace fs = std::filesystem;
using kubelet_dra::FakeKubelet;
using std::chrono::milliseconds;
using testing::FakeHealth;
using testing::FakePreparer;
using Clock = std::chrono::steady_clock;

constexpr char kDriver[] = "fpga.hyperaccel.ai";
constexpr milliseconds kWait{10000};  // generous: the machine may be loaded

using hyperaccel::testing::TempDir;

kubelet_dra::Options KubeletOptions(const std::string& kubelet_dir) {
  kubelet_dra::Options o;
  o.registry_dir = kubelet_dir + "/plugins_registry";
  return o;
}

NodeServerOptions ServerOptions(const std::string& kubelet_dir) {
  NodeServerOptions o;
  o.kubelet_dir = kubelet_dir;
  o.stop_grace = milliseconds(5000);
  return o;
}

double MetricValue(const metrics::Registry& registry, const std::string& series) {
  const std::string text = registry.Render();
  size_t pos = 0;
  while ((pos = text.find(series, pos)) != std::string::npos) {
    if ((pos == 0 || text[pos - 1] == '\n') && text.size() > pos + series.size() &&
        text[pos + series.size()] == ' ') {
      return std::stod(text.substr(pos + series.size() + 1));
    }
    pos += series.size();
  }
  return -1;
}

// Waits (polling) until `done` holds or kWait has passed; the caller checks the outcome.
void WaitUntil(const std::function<bool()>& done) {
  const auto deadline = Clock::now() + kWait;
  while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
}

// The names of our two sockets in the events queued on the inotify descriptor `fd`, in order;
// closes `fd`.
std::vector<std::string> SocketEvents(int fd) {
  std::vector<std::string> order;
  alignas(inotify_event) char buf[4096];
  const ssize_t len = ::read(fd, buf, sizeof buf);
  for (ssize_t off = 0; off < len;) {
    inotify_event ev{};
    std::memcpy(&ev, buf + off, sizeof ev);
    const std::string name = ev.len > 0 ? std::string(buf + off + sizeof(inotify_event)) : "";
    if (name == "dra.sock" || name == std::string(kDriver) + "-reg.sock") order.push_back(name);
    off += static_cast<ssize_t>(sizeof(inotify_event) + ev.len);
  }
  ::close(fd);
  return order;
}

// Starts `server` and `kubelet` and waits for the first registration.
::testing::AssertionResult StartRegistered(NodeServer& server, FakeKubelet& kubelet) {
  if (Status st = server.Start(); !st.ok())
    return ::testing::AssertionFailure() << "server: " << st.message();
  if (Status st = kubelet.Start(); !st.ok())
    return ::testing::AssertionFailure() << "kubelet: " << st.message();
  if (!kubelet.WaitRegistered(kDriver, 1, kWait).has_value()) {
    return ::testing::AssertionFailure() << "not registered within " << kWait.count() << " ms";
  }
  return ::testing::AssertionSuccess();
}

class NodeServerTest : public ::testing::Test {
 protected:
  TempDir dir{"dra-ns"};
  FakePreparer preparer;
  FakeHealth health;
  metrics::Registry registry;
};

TEST_F(NodeServerTest, DraSocketIsCreatedBeforeTheRegistrationSocket) {
  // One inotify queue over both directories keeps the kernel's order of the two CREATE events.
  const std::string plugin_dir = dir.path() + "/plugins/" + kDriver;
  const std::string registry_dir = dir.path() + "/plugins_registry";
  fs::create_directories(plugin_dir);
  fs::create_directories(registry_dir);
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(fd, 0);
  const int wd_plugin = ::inotify_add_watch(fd, plugin_dir.c_str(), IN_CREATE);
  const int wd_registry = ::inotify_add_watch(fd, registry_dir.c_str(), IN_CREATE);
  ASSERT_GE(wd_plugin, 0);
  ASSERT_GE(wd_registry, 0);

  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());

  const std::vector<std::string> order = SocketEvents(fd);
  ASSERT_EQ(order.size(), 2U);
  EXPECT_EQ(order[0], "dra.sock");
  EXPECT_EQ(order[1], std::string(kDriver) + "-reg.sock");
  EXPECT_EQ(server.dra_socket(), plugin_dir + "/dra.sock");
  EXPECT_EQ(server.registration_socket(), registry_dir + "/" + kDriver + "-reg.sock");
}

TEST_F(NodeServerTest, CreatesThePluginDirectoryWithMode0750) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/plugins/" + kDriver).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750U);
}

TEST_F(NodeServerTest, RegistersWithTheFieldsTheKubeletExpects) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(kubelet.Start().ok());
  auto reg = kubelet.WaitRegistered(kDriver, 1, kWait);
  ASSERT_TRUE(reg.has_value());
  EXPECT_EQ(reg->type, "DRAPlugin");
  EXPECT_EQ(reg->name, kDriver);
  EXPECT_EQ(reg->endpoint, server.dra_socket());
  EXPECT_TRUE(fs::path(reg->endpoint).is_absolute());
  EXPECT_EQ(reg->advertised, (std::vector<std::string>{"v1.DRAPlugin", "v1beta1.DRAPlugin"}));
  EXPECT_EQ(reg->service, "v1.DRAPlugin");
  EXPECT_EQ(reg->error, "");  // NotifyRegistrationStatus reached the plugin
  EXPECT_TRUE(server.WaitRegistered(1, kWait));
  EXPECT_TRUE(server.Health().ok()) << server.Health().message();
  EXPECT_EQ(MetricValue(registry, "hyperaccel_dra_registrations_total{result=\"ok\"}"), 1);
  EXPECT_EQ(MetricValue(registry, "hyperaccel_dra_registered"), 1);
}

TEST_F(NodeServerTest, AKubeletThatKnowsOnlyV1beta1ChoosesV1beta1) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  auto opts = KubeletOptions(dir.path());
  opts.known_services = {"v1beta1.DRAPlugin"};
  FakeKubelet kubelet(opts);
  ASSERT_TRUE(kubelet.Start().ok());
  auto reg = kubelet.WaitRegistered(kDriver, 1, kWait);
  ASSERT_TRUE(reg.has_value());
  EXPECT_EQ(reg->service, "v1beta1.DRAPlugin");
  auto r = kubelet.Prepare(kDriver, {{"ns", "claim-a", "uid-a"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.service, "v1beta1.DRAPlugin");
  ASSERT_EQ(r.claims.size(), 1U);
  EXPECT_EQ(r.claims["uid-a"].error, "");
  EXPECT_EQ(
      MetricValue(registry, "hyperaccel_dra_kubelet_requests_total{method=\"prepare\",version=\"v1beta1\"}"),
      1);
  EXPECT_EQ(MetricValue(registry, "hyperaccel_dra_kubelet_requests_total{method=\"prepare\",version=\"v1\"}"),
            -1);
}

TEST_F(NodeServerTest, ARejectedRegistrationIsLoggedCountedAndUnhealthy) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  auto opts = KubeletOptions(dir.path());
  opts.known_services = {"v2.DRAPlugin"};
  FakeKubelet kubelet(opts);
  ASSERT_TRUE(kubelet.Start().ok());
  // The counter is incremented just after the status: wait for both.
  WaitUntil([&] {
    return server.GetStatus().registration_errors != 0 &&
           MetricValue(registry, "hyperaccel_dra_registrations_total{result=\"error\"}") >= 1;
  });
  const NodeServerStatus st = server.GetStatus();
  EXPECT_EQ(st.registration_errors, 1);
  EXPECT_FALSE(st.registered);
  EXPECT_NE(st.last_error.find("none of the versions"), std::string::npos) << st.last_error;
  EXPECT_FALSE(server.Health().ok());
  EXPECT_EQ(MetricValue(registry, "hyperaccel_dra_registrations_total{result=\"error\"}"), 1);
}

class RoundTrip : public NodeServerTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(RoundTrip, PrepareAndUnprepareReachThePreparer) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  auto opts = KubeletOptions(dir.path());
  opts.known_services = {GetParam()};
  FakeKubelet kubelet(opts);
  ASSERT_TRUE(kubelet.Start().ok());
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 1, kWait).has_value());

  auto r = kubelet.Prepare(kDriver, {{"team-a", "arc", "uid-1"}, {"team-b", "card", "uid-2"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.service, GetParam());
  ASSERT_EQ(r.claims.size(), 2U);
  const auto& a = r.claims["uid-1"];
  EXPECT_EQ(a.error, "");
  ASSERT_EQ(a.devices.size(), 1U);
  EXPECT_EQ(a.devices[0].pool_name, "node-a");
  EXPECT_EQ(a.devices[0].device_name, "arc-card");
  EXPECT_TRUE(a.devices[0].request_names.empty());
  EXPECT_EQ(a.devices[0].cdi_device_ids,
            (std::vector<std::string>{"k8s.fpga.hyperaccel.ai/claim=uid-1-card"}));
  // The preparer saw the identities exactly.
  const auto batch = preparer.last_batch();
  ASSERT_EQ(batch.size(), 2U);
  EXPECT_EQ(batch[0].ns, "team-a");
  EXPECT_EQ(batch[0].name, "arc");
  EXPECT_EQ(batch[0].uid, "uid-1");
  EXPECT_EQ(preparer.prepared(), (std::set<std::string>{"uid-1", "uid-2"}));

  // Idempotent from the kubelet's view: the same call again gives the same answer.
  auto again = kubelet.Prepare(kDriver, {{"team-a", "arc", "uid-1"}});
  ASSERT_TRUE(again.status.ok());
  EXPECT_EQ(again.claims["uid-1"].devices[0].cdi_device_ids, a.devices[0].cdi_device_ids);

  auto u = kubelet.Unprepare(kDriver, {{"team-a", "arc", "uid-1"}, {"team-b", "card", "uid-2"}});
  ASSERT_TRUE(u.status.ok()) << u.status.error_message();
  ASSERT_EQ(u.claims.size(), 2U);
  EXPECT_EQ(u.claims["uid-1"].error, "");
  EXPECT_EQ(u.claims["uid-2"].error, "");
  EXPECT_TRUE(preparer.prepared().empty());
}

INSTANTIATE_TEST_SUITE_P(Versions, RoundTrip, ::testing::Values("v1.DRAPlugin", "v1beta1.DRAPlugin"));

TEST_F(NodeServerTest, PerClaimErrorsStayWithTheirClaim) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));

  auto r = kubelet.Prepare(kDriver, {{"ns", "good", "u-good"},
                                     {"ns", "fail-x", "u-fail"},
                                     {"ns", "drop-y", "u-drop"},
                                     {"", "no-namespace", "u-nons"},
                                     {"ns", "", "u-noname"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.claims.size(), 5U);  // every requested UID is in the answer
  EXPECT_EQ(r.claims["u-good"].error, "");
  EXPECT_EQ(r.claims["u-good"].devices.size(), 1U);
  EXPECT_EQ(r.claims["u-fail"].error, "cannot prepare fail-x");
  EXPECT_TRUE(r.claims["u-fail"].devices.empty());
  EXPECT_NE(r.claims["u-drop"].error.find("no result"), std::string::npos) << r.claims["u-drop"].error;
  EXPECT_NE(r.claims["u-nons"].error.find("namespace"), std::string::npos) << r.claims["u-nons"].error;
  EXPECT_NE(r.claims["u-noname"].error.find("name"), std::string::npos) << r.claims["u-noname"].error;
  // Claims without a full identity never reach the preparer.
  EXPECT_EQ(preparer.last_batch().size(), 3U);
  EXPECT_EQ(MetricValue(registry, "hyperaccel_dra_kubelet_claims_total{method=\"prepare\",result=\"error\"}"),
            4);
  EXPECT_EQ(MetricValue(registry, "hyperaccel_dra_kubelet_claims_total{method=\"prepare\",result=\"ok\"}"),
            1);

  auto u = kubelet.Unprepare(
      kDriver, {{"ns", "good", "u-good"}, {"ns", "fail-x", "u-fail"}, {"ns", "drop-y", "u-drop"}});
  ASSERT_TRUE(u.status.ok());
  ASSERT_EQ(u.claims.size(), 3U);
  EXPECT_EQ(u.claims["u-good"].error, "");
  EXPECT_EQ(u.claims["u-fail"].error, "cannot unprepare fail-x");
  EXPECT_NE(u.claims["u-drop"].error.find("no result"), std::string::npos);
}

TEST_F(NodeServerTest, AnEmptyUidOrAConflictingDuplicateIsAnErrorNotACrash) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));
  auto r = kubelet.Prepare(
      kDriver,
      {{"ns", "a", ""}, {"ns", "b", "dup"}, {"ns", "c", "dup"}, {"ns", "d", "same"}, {"ns", "d", "same"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_NE(r.claims[""].error.find("uid"), std::string::npos);
  EXPECT_NE(r.claims["dup"].error.find("both"), std::string::npos) << r.claims["dup"].error;
  EXPECT_EQ(r.claims["same"].error, "");
  EXPECT_EQ(preparer.last_batch().size(), 1U);  // "same" once; "dup" not at all

  auto empty = kubelet.Prepare(kDriver, {});
  EXPECT_TRUE(empty.status.ok());
  EXPECT_TRUE(empty.claims.empty());
}

TEST_F(NodeServerTest, ConcurrentPreparesAllSucceedWithAnOpenHealthStream) {
  health.Set(testing::Devices(2));
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));
  auto stream = kubelet.WatchHealth(kDriver);
  ASSERT_GE(stream->WaitMessages(1, kWait).size(), 1U);
  // Pods start in parallel: the kubelet may have several calls in flight at once.
  std::vector<std::future<kubelet_dra::CallResult>> calls;
  calls.reserve(8);
  for (int i = 0; i < 8; ++i) {
    calls.push_back(std::async(std::launch::async, [&kubelet, i] {
      return kubelet.Prepare(kDriver, {{"ns", "c" + std::to_string(i), "uid-" + std::to_string(i)}});
    }));
  }
  for (int i = 0; i < 8; ++i) {
    auto r = calls[i].get();
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
    EXPECT_EQ(r.claims["uid-" + std::to_string(i)].error, "");
  }
  EXPECT_EQ(preparer.prepared().size(), 8U);
}

TEST_F(NodeServerTest, APluginRestartRegistersAgainWithinASecond) {
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(kubelet.Start().ok());
  {
    NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
    ASSERT_TRUE(server.Start().ok());
    ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 1, kWait).has_value());
    ASSERT_TRUE(kubelet.Prepare(kDriver, {{"ns", "a", "uid-a"}}).status.ok());
    server.Stop();
    EXPECT_FALSE(fs::exists(server.registration_socket()));
    EXPECT_FALSE(fs::exists(server.dra_socket()));
  }
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  const auto t0 = Clock::now();
  ASSERT_TRUE(server.Start().ok());
  // The registration of this server's socket: seen after it started. (Counting registrations is
  // not enough: the fake kubelet may register the first server's socket twice, from its first scan
  // and from the socket's create event.)
  std::optional<kubelet_dra::Registration> reg;
  WaitUntil([&] {
    for (const kubelet_dra::Registration& r : kubelet.Registrations()) {
      if (r.ok && r.name == kDriver && r.seen_at >= t0) reg = r;
    }
    return reg.has_value();
  });
  ASSERT_TRUE(reg.has_value());
  const auto latency = reg->done_at - t0;
  // The target is < 1 s (bench_dra_node measures it); asserted loosely for a loaded machine.
  EXPECT_LT(latency, milliseconds(3000));
  EXPECT_TRUE(server.WaitRegistered(1, kWait));
  auto r = kubelet.Prepare(kDriver, {{"ns", "b", "uid-b"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.claims["uid-b"].error, "");
}

TEST_F(NodeServerTest, ADeletedRegistrationSocketIsCreatedAgain) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));

  ASSERT_EQ(::unlink(server.registration_socket().c_str()), 0);
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 2, kWait).has_value());
  EXPECT_TRUE(fs::exists(server.registration_socket()));
  EXPECT_GE(server.GetStatus().socket_recreations, 1);

  // A kubelet that wipes the whole registry directory. Moved away first: the server makes its
  // socket again as soon as it sees it go, which would race a recursive removal in place.
  fs::rename(dir.path() + "/plugins_registry", dir.path() + "/plugins_registry.wiped");
  fs::remove_all(dir.path() + "/plugins_registry.wiped");
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 3, kWait).has_value());
  EXPECT_TRUE(fs::exists(server.registration_socket()));
  auto r = kubelet.Prepare(kDriver, {{"ns", "a", "uid-a"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(NodeServerTest, ADeletedDraSocketIsServedAgainAndRegistered) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));
  ASSERT_EQ(::unlink(server.dra_socket().c_str()), 0);
  // Noticed at the next poll (the plugin directory is not watched), then registered again.
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 2, kWait).has_value());
  auto r = kubelet.Prepare(kDriver, {{"ns", "a", "uid-a"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(NodeServerTest, RefusesASocketAnotherProcessServesAndReplacesAStaleOne) {
  NodeServer first(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(first.Start().ok());
  NodeServer second(ServerOptions(dir.path()), preparer, health);
  Status st = second.Start();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("another process"), std::string::npos) << st.message();
  EXPECT_TRUE(fs::exists(first.dra_socket()));  // untouched
  first.Stop();

  // A socket file nobody listens on (a killed instance's): removed and served again.
  const std::string path = first.dra_socket();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  ASSERT_TRUE(fs::is_socket(path));
  NodeServer third(ServerOptions(dir.path()), preparer, health);
  EXPECT_TRUE(third.Start().ok());
  third.Stop();

  // Something that is not a socket is never removed.
  std::ofstream(path) << "not a socket";
  NodeServer fourth(ServerOptions(dir.path()), preparer, health);
  st = fourth.Start();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("not a socket"), std::string::npos);
  EXPECT_TRUE(fs::is_regular_file(path));
}

TEST_F(NodeServerTest, RejectsBadOptions) {
  NodeServerOptions o = ServerOptions(dir.path());
  o.kubelet_dir = "relative";
  EXPECT_EQ(ValidateNodeServerOptions(o).code(), StatusCode::kInvalidArgument);
  o = ServerOptions(dir.path());
  o.driver_name = "Not_A_DNS.name";
  EXPECT_EQ(ValidateNodeServerOptions(o).code(), StatusCode::kInvalidArgument);
  o = ServerOptions("/" + std::string(100, 'k'));
  EXPECT_NE(ValidateNodeServerOptions(o).message().find("longer than"), std::string::npos);
  NodeServer server(o, preparer, health);
  EXPECT_FALSE(server.Start().ok());
}

TEST_F(NodeServerTest, StopRemovesTheRegistrationSocketFirstAndLetsInFlightCallsFinish) {
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));

  // One inotify queue over both directories records the order of the two removals.
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_GE(::inotify_add_watch(fd, fs::path(server.dra_socket()).parent_path().c_str(), IN_DELETE), 0);
  ASSERT_GE(::inotify_add_watch(fd, fs::path(server.registration_socket()).parent_path().c_str(), IN_DELETE),
            0);

  preparer.SetBlock(true);
  auto call = std::async(std::launch::async, [&] {
    return kubelet.Prepare(kDriver, {{"ns", "slow", "uid-slow"}});
  });
  ASSERT_TRUE(preparer.WaitEntered(kWait));
  auto stopping = std::async(std::launch::async, [&] { server.Stop(); });
  WaitUntil([&] { return !fs::exists(server.registration_socket()); });
  EXPECT_FALSE(fs::exists(server.registration_socket()));
  // Stop waits for the call in flight (no new call gets in: gRPC closed the listener).
  EXPECT_EQ(stopping.wait_for(milliseconds(200)), std::future_status::timeout);
  preparer.SetBlock(false);
  auto r = call.get();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.claims["uid-slow"].error, "");
  stopping.get();
  EXPECT_FALSE(fs::exists(server.dra_socket()));

  const std::vector<std::string> order = SocketEvents(fd);
  ASSERT_EQ(order.size(), 2U);
  EXPECT_EQ(order[0], std::string(kDriver) + "-reg.sock");
  EXPECT_EQ(order[1], "dra.sock");
}

TEST_F(NodeServerTest, KillingThePluginMidPrepareFailsTheCallAndTheRetrySucceeds) {
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(kubelet.Start().ok());
  const std::string entered = dir.path() + "/entered";
  auto child = hyperaccel::testing::StartBinary(
      HYPERACCEL_NODE_SERVER_HELPER, {"--kubelet-dir", dir.path(), "--block", "--entered-file", entered},
      dir.path() + "/helper-1.log");
  ASSERT_GT(child.pid, 0);
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 1, kWait).has_value()) << hyperaccel::testing::ReadLog(child);

  auto call = std::async(std::launch::async, [&] {
    return kubelet.Prepare(kDriver, {{"ns", "arc", "uid-k"}});
  });
  WaitUntil([&] { return fs::exists(entered); });
  ASSERT_TRUE(fs::exists(entered)) << hyperaccel::testing::ReadLog(child);
  ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
  EXPECT_EQ(hyperaccel::testing::WaitForExit(child, kWait), 128 + SIGKILL);
  auto failed = call.get();
  EXPECT_EQ(failed.status.error_code(), grpc::StatusCode::UNAVAILABLE) << failed.status.error_message();
  // The killed process left both sockets behind.
  EXPECT_TRUE(fs::is_socket(dir.path() + "/plugins/" + std::string(kDriver) + "/dra.sock"));

  auto restarted = hyperaccel::testing::StartBinary(
      HYPERACCEL_NODE_SERVER_HELPER, {"--kubelet-dir", dir.path()}, dir.path() + "/helper-2.log");
  ASSERT_GT(restarted.pid, 0);
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 2, kWait).has_value())
      << hyperaccel::testing::ReadLog(restarted);
  auto retry = kubelet.Prepare(kDriver, {{"ns", "arc", "uid-k"}});
  ASSERT_TRUE(retry.status.ok()) << retry.status.error_message();
  EXPECT_EQ(retry.claims["uid-k"].error, "");
  ASSERT_EQ(::kill(restarted.pid, SIGTERM), 0);
  EXPECT_EQ(hyperaccel::testing::WaitForExit(restarted, kWait), 0) << hyperaccel::testing::ReadLog(restarted);
  EXPECT_FALSE(fs::exists(dir.path() + "/plugins_registry/" + std::string(kDriver) + "-reg.sock"));
}

TEST_F(NodeServerTest, HealthStreamSendsTheFullListAndEveryChange) {
  health.Set(testing::Devices(3));
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));
  auto stream = kubelet.WatchHealth(kDriver);
  auto msgs = stream->WaitMessages(1, kWait);
  ASSERT_GE(msgs.size(), 1U);
  ASSERT_EQ(msgs[0].size(), 3U);
  EXPECT_EQ(msgs[0][0].pool_name, "node-a");
  EXPECT_EQ(msgs[0][0].device_name, "card-0");
  EXPECT_EQ(msgs[0][0].health, 1);
  EXPECT_EQ(msgs[0][0].last_updated, 1700000000);
  EXPECT_EQ(msgs[0][0].timeout_seconds, 60);

  // A card goes bad with a long reason: the whole list again, the message cut to 1024 bytes.
  health.Set(testing::Devices(3, 1, std::string(3000, 'x')));
  msgs = stream->WaitMessages(2, kWait);
  ASSERT_GE(msgs.size(), 2U);
  ASSERT_EQ(msgs[1].size(), 3U);
  EXPECT_EQ(msgs[1][1].health, 2);
  EXPECT_EQ(msgs[1][1].message.size(), 1024U);
  EXPECT_EQ(msgs[1][0].health, 1);
  EXPECT_EQ(server.GetStatus().open_health_streams, 1);
  stream->Cancel();
  ASSERT_TRUE(stream->WaitEnded(kWait).has_value());
  WaitUntil([&] { return server.GetStatus().open_health_streams == 0; });
  EXPECT_EQ(server.GetStatus().open_health_streams, 0);  // the cancelled stream's thread ended
}

// grpc-go, the kubelet's gRPC, as the kubelet: it dials both sockets by path (so its :authority
// is the path), registers the plugin, prepares and unprepares a claim (v1, then v1beta1) and reads
// the health stream (go-kubelet-dra/main.go, built when Go and grpc-go are installed).
TEST_F(NodeServerTest, GrpcGoKubeletRegistersPreparesAndWatches) {
#ifndef HYPERACCEL_GO_KUBELET_DRA
  GTEST_SKIP() << "hyperaccel-go-kubelet-dra is not built (Go or grpc-go not installed)";
#else
  health.Set(testing::Devices(3));
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  const std::string cmd = std::string(HYPERACCEL_GO_KUBELET_DRA) + " -registration " +
                          server.registration_socket() + " -namespace ns -claim go -uid uid-go 2>&1";
  FILE* out = ::popen(cmd.c_str(), "r");
  ASSERT_NE(out, nullptr);
  std::string text;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), out) != nullptr) text += buf.data();
  ASSERT_EQ(::pclose(out), 0) << text;
  EXPECT_NE(text.find("INFO DRAPlugin " + std::string(kDriver) + " " + server.dra_socket() +
                      " v1.DRAPlugin,v1beta1.DRAPlugin\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("PREPARED v1 uid-go k8s.fpga.hyperaccel.ai/claim=uid-go-card"), std::string::npos)
      << text;
  EXPECT_NE(text.find("UNPREPARED v1beta1 uid-go\n"), std::string::npos) << text;
  EXPECT_NE(text.find("HEALTH 3\n"), std::string::npos) << text;
  EXPECT_TRUE(server.WaitRegistered(1, kWait));  // NotifyRegistrationStatus reached the server
  // Prepared through v1, then unprepared through v1beta1: the preparer saw both.
  EXPECT_EQ(preparer.prepare_calls(), 1);
  ASSERT_EQ(preparer.last_batch().size(), 1U);
  EXPECT_EQ(preparer.last_batch()[0].ns, "ns");
  EXPECT_EQ(preparer.last_batch()[0].name, "go");
  EXPECT_TRUE(preparer.prepared().empty());
#endif
}

TEST_F(NodeServerTest, HealthStreamResendsWithoutChanges) {
  health.Set(testing::Devices(2));
  NodeServerOptions o = ServerOptions(dir.path());
  o.health_resend = milliseconds(150);
  NodeServer server(o, preparer, health, &registry);
  ASSERT_TRUE(server.Start().ok());
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(kubelet.Start().ok());
  ASSERT_TRUE(kubelet.WaitRegistered(kDriver, 1, kWait).has_value());
  auto stream = kubelet.WatchHealth(kDriver);
  auto msgs = stream->WaitMessages(3, kWait);
  ASSERT_GE(msgs.size(), 3U);
  for (const auto& m : msgs) EXPECT_EQ(m.size(), 2U);
}

TEST_F(NodeServerTest, StopWithAnOpenHealthStreamEndsPromptly) {
  health.Set(testing::Devices(2));
  NodeServer server(ServerOptions(dir.path()), preparer, health, &registry);
  FakeKubelet kubelet(KubeletOptions(dir.path()));
  ASSERT_TRUE(StartRegistered(server, kubelet));
  auto stream = kubelet.WatchHealth(kDriver);
  ASSERT_GE(stream->WaitMessages(1, kWait).size(), 1U);
  const auto t0 = Clock::now();
  server.Stop();
  const auto took = Clock::now() - t0;
  // stop_grace is 5 s: ending well before it means the stream did not hold the server.
  EXPECT_LT(took, milliseconds(2000));
  auto ended = stream->WaitEnded(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_FALSE(ended->ok());
}

}  // namespace
}  // namespace hyperaccel::dra
