// The plugin against the kubelet simulator, on real unix sockets in a temporary directory.
#include "hyperaccel/device_plugin/plugin.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "deviceplugin_v1beta1.grpc.pb.h"
#include "hyperaccel/kubelet_sim/kubelet_sim.h"
#include "hyperaccel/rpc/grpc_unary.h"
#include "podresources_v1.grpc.pb.h"
#include "test_inventory.h"

namespace hyperaccel::device_plugin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using kubelet_sim::Device;
using kubelet_sim::KubeletSim;
using testing::CardId;
using testing::RingInventory;

constexpr const char* kRes = "hyperaccel.ai/fpga";

kubelet_sim::AdmitRequest Request(const std::string& pod, int count, const std::string& ns = "default") {
  kubelet_sim::AdmitRequest r;
  r.pod = pod;
  r.pod_namespace = ns;
  r.container = "main";
  r.resource = kRes;
  r.count = count;
  return r;
}

size_t Healthy(const std::vector<Device>& d) {
  return static_cast<size_t>(std::count_if(d.begin(), d.end(), [](const Device& x) { return x.healthy; }));
}

const Device* FindDevice(const std::vector<Device>& d, const std::string& id) {
  for (const auto& x : d) {
    if (x.id == id) return &x;
  }
  return nullptr;
}

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hdp-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    dir_ = root_ + "/dp";
    options_.kubelet_dir = dir_;
    options_.poll_interval = 200ms;
    options_.first_inventory_wait = 2s;
    options_.allocate.cdi_dir = root_ + "/cdi";
  }
  void TearDown() override {
    if (plugin_) plugin_->Stop();
    plugin_.reset();
    sim_.reset();
    fs::remove_all(root_);
  }
  void StartSim() {
    sim_ = std::make_unique<KubeletSim>(kubelet_sim::Options{dir_, root_ + "/pr/kubelet.sock"});
    ASSERT_TRUE(sim_->Start().ok());
  }
  void StartPlugin(const hw::Inventory& inv) {
    source_.Publish(inv);
    plugin_ = std::make_unique<Plugin>(options_, &source_, &registry_);
    Status st = plugin_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  // Simulator + plugin with `n` ring cards, waiting for the full first list.
  void StartBoth(int n = 8) {
    StartSim();
    StartPlugin(RingInventory(n, true, 7));
    ASSERT_TRUE(sim_->WaitForDevices(
        kRes, [n](auto& d) { return Healthy(d) == static_cast<size_t>(n); }, 5s));
    ASSERT_TRUE(plugin_->WaitHealthy(5s)) << plugin_->Health().ToString();
  }
  std::string SocketPath() const { return dir_ + "/hyperaccel-fpga.sock"; }

  std::string root_, dir_;
  PluginOptions options_;
  ManualDeviceSource source_;
  metrics::Registry registry_;
  std::unique_ptr<KubeletSim> sim_;
  std::unique_ptr<Plugin> plugin_;
};

TEST_F(PluginTest, HandshakeInKubeletOrderAndCompleteFirstList) {
  StartBoth(8);
  auto events = sim_->Events();
  auto at = [&](const std::string& e) {
    return std::find(events.begin(), events.end(), e + " " + kRes) - events.begin();
  };
  ASSERT_LT(at("Register"), static_cast<long>(events.size()));
  EXPECT_LT(at("Register"), at("GetDevicePluginOptions"));
  EXPECT_LT(at("GetDevicePluginOptions"), at("Registered"));
  EXPECT_LT(at("Registered"), at("ListAndWatch"));
  EXPECT_LT(at("ListAndWatch"), at("Update"));

  auto info = sim_->Plugin(kRes);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->endpoint, "hyperaccel-fpga.sock");
  EXPECT_TRUE(info->options.get_preferred_allocation_available());
  EXPECT_FALSE(info->options.pre_start_required());
  EXPECT_EQ(info->list_updates, 1) << "the first message already holds every card";

  auto devices = sim_->Devices(kRes);
  ASSERT_EQ(devices.size(), 8u);
  EXPECT_EQ(FindDevice(devices, CardId(0))->numa_nodes, std::vector<int64_t>{0});
  EXPECT_EQ(FindDevice(devices, CardId(5))->numa_nodes, std::vector<int64_t>{1});
  EXPECT_TRUE(FindDevice(devices, CardId(7))->numa_nodes.empty()) << "no NUMA node: no topology";
  EXPECT_TRUE(plugin_->Health().ok());
}

TEST_F(PluginTest, HealthChangesReachTheKubeletBothWays) {
  StartBoth(8);
  auto inv = RingInventory(8, true, 7);
  inv.cards[3].health = hw::Health::kUnhealthy;
  inv.cards[3].health_reason = "FPGA temperature 101 C above limit 95 C";
  source_.Publish(inv);
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 7 && !FindDevice(d, CardId(3))->healthy; }, 1s));
  EXPECT_NE(registry_.Render().find(
                "hyperaccel_device_plugin_card_healthy{resource=\"hyperaccel.ai/fpga\",device=\"" +
                CardId(3) + "\",serial=\"XFL1SER103\"} 0"),
            std::string::npos);
  inv.cards[3].health = hw::Health::kHealthy;
  source_.Publish(inv);
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 8; }, 1s));
}

TEST_F(PluginTest, VanishedCardsTurnUnhealthyAndBackWithoutLeaving) {
  StartBoth(8);
  auto inv = RingInventory(8, true, 7);
  auto reset = inv;
  reset.cards.erase(reset.cards.begin() + 2);
  source_.Publish(reset);
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return d.size() == 8 && Healthy(d) == 7; }, 1s));
  source_.Publish(hw::Inventory{});  // driver reload: nothing found
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return d.size() == 8 && Healthy(d) == 0; }, 1s));
  source_.Publish(inv);
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return d.size() == 8 && Healthy(d) == 8; }, 1s));
}

TEST_F(PluginTest, AllocateGivesDevicesEnvMountsAndCdi) {
  options_.allocate.mount_xrt = true;
  options_.allocate.mount_icd = true;
  options_.allocate.cdi = true;
  StartBoth(8);
  auto got = sim_->AdmitContainer(Request("llm-0", 2));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->devices.size(), 2u);
  const auto& r = got->response;
  ASSERT_EQ(r.devices_size(), 2);
  for (const auto& d : r.devices()) {
    EXPECT_EQ(d.permissions(), "rw");
    EXPECT_EQ(d.host_path().rfind("/dev/dri/renderD", 0), 0u) << d.host_path();
    EXPECT_EQ(d.container_path(), d.host_path());
  }
  auto ids = got->devices;
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(r.envs().at("HYPERACCEL_VISIBLE_DEVICES"), ids[0] + "," + ids[1]);
  EXPECT_FALSE(r.envs().at("HYPERACCEL_DEVICE_SERIALS").empty());
  EXPECT_FALSE(r.envs().at("HYPERACCEL_RING_ORDER").empty());
  EXPECT_EQ(r.envs().at("XILINX_XRT"), "/opt/xilinx/xrt");
  ASSERT_EQ(r.mounts_size(), 2);
  EXPECT_TRUE(r.mounts(0).read_only());
  EXPECT_EQ(r.mounts(1).host_path(), "/etc/OpenCL/vendors/xilinx.icd");
  ASSERT_EQ(r.cdi_devices_size(), 2);

  // The spec on disk names every card, including the ones handed out.
  std::ifstream in(root_ + "/cdi/hyperaccel.ai-fpga.json");
  ASSERT_TRUE(in.good());
  auto spec = nlohmann::json::parse(in);
  std::set<std::string> names;
  for (const auto& d : spec["devices"]) names.insert(std::string(kRes) + "=" + d["name"].get<std::string>());
  EXPECT_EQ(names.size(), 8u);
  for (const auto& c : r.cdi_devices()) EXPECT_TRUE(names.count(c.name())) << c.name();
}

TEST_F(PluginTest, MgmtNodeOnlyWithExposeMgmt) {
  options_.allocate.expose_mgmt = true;
  StartBoth(2);
  auto r = sim_->Allocate(kRes, {CardId(1)});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->container_responses(0).devices_size(), 2);
  EXPECT_EQ(r->container_responses(0).devices(1).host_path(), "/dev/xclmgmt4097");
}

TEST_F(PluginTest, PreferredAllocationKeepsRingArcsAroundBusyCards) {
  StartBoth(8);
  // Busy: cards 0, 1 and 5. The kubelet offers the rest.
  auto got =
      sim_->GetPreferredAllocation(kRes, {CardId(2), CardId(3), CardId(4), CardId(6), CardId(7)}, {}, 3);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  auto sorted = *got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<std::string>{CardId(2), CardId(3), CardId(4)}));

  // A must-include card that is not available (card 5 is busy) is an error the kubelet sees,
  // never an answer holding a card it cannot give.
  auto bad = sim_->GetPreferredAllocation(kRes, {CardId(2), CardId(3), CardId(4)}, {CardId(5)}, 2);
  ASSERT_FALSE(bad.ok()) << "answered " << (*bad)[0] << "," << (*bad)[1];
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find(CardId(5)), std::string::npos) << bad.status().ToString();

  // Through admission: two pods of 4 on an 8-ring get two disjoint arcs.
  auto a = sim_->AdmitContainer(Request("a", 4));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->preferred.size(), 4u);
  auto b = sim_->AdmitContainer(Request("b", 4));
  ASSERT_TRUE(b.ok());
  for (const auto* adm : {&*a, &*b}) {
    std::vector<int> idx;
    for (const auto& id : adm->devices) idx.push_back(std::stoi(id.substr(5, 2), nullptr, 16) - 0x10);
    std::sort(idx.begin(), idx.end());
    int gaps = 0;
    for (size_t i = 0; i < idx.size(); ++i) {
      int next = idx[(i + 1) % idx.size()];
      if ((idx[i] + 1) % 8 != next) ++gaps;
    }
    EXPECT_EQ(gaps, 1) << "cards form one contiguous arc";
  }
  EXPECT_EQ(sim_->AllocatedIds(kRes).size(), 8u);
}

TEST_F(PluginTest, ReRegistersWithinOneSecondOfAKubeletRestart) {
  StartBoth(8);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(sim_->Restart().ok());
  EXPECT_FALSE(fs::exists(SocketPath()) && sim_->Plugin(kRes)->registrations >= 2);
  ASSERT_TRUE(sim_->WaitForRegistrations(kRes, 2, 1s));
  ASSERT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 8; }, 1s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_TRUE(fs::exists(SocketPath()));
  EXPECT_TRUE(plugin_->WaitHealthy(1s));
}

TEST_F(PluginTest, StartsOverAStaleSocket) {
  fs::create_directories(dir_);
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", SocketPath().c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);  // a dead plugin's socket: the file stays, nobody listens
  ASSERT_TRUE(fs::is_socket(SocketPath()));
  StartBoth(4);
  EXPECT_EQ(sim_->Plugin(kRes)->registrations, 1);
}

TEST_F(PluginTest, RefusesToReplaceANonSocketFile) {
  fs::create_directories(dir_);
  std::ofstream(SocketPath()) << "not a socket";
  StartSim();
  StartPlugin(RingInventory(2));
  EXPECT_FALSE(plugin_->WaitHealthy(500ms));
  EXPECT_NE(plugin_->Health().message().find("not a socket"), std::string::npos)
      << plugin_->Health().ToString();
}

TEST_F(PluginTest, ConcurrentAllocateCallsAreIndependentAndIdempotent) {
  StartBoth(8);
  auto first = sim_->Allocate(kRes, {CardId(1), CardId(2)});
  ASSERT_TRUE(first.ok());
  const v1beta1::AllocateResponse expected = *first;
  std::atomic<int> failures{0};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::vector<std::string> ids = (i % 2) ? std::vector<std::string>{CardId(2), CardId(1)}
                                               : std::vector<std::string>{CardId(t % 8)};
        auto r = sim_->Allocate(kRes, ids);
        if (!r.ok()) {
          ++failures;
          continue;
        }
        if ((i % 2) && !google::protobuf::util::MessageDifferencer::Equals(*r, expected)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_NE(
      registry_.Render().find(
          "hyperaccel_device_plugin_allocations_total{resource=\"hyperaccel.ai/fpga\",result=\"ok\"} 401"),
      std::string::npos);
}

TEST_F(PluginTest, UnknownAndUnhealthyIdsAreRefused) {
  StartBoth(4);
  auto unknown = sim_->Allocate(kRes, {"0000:ff:00.1"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unknown device ID '0000:ff:00.1'"), std::string::npos);

  auto inv = RingInventory(4, true, 7);
  inv.cards[0].health = hw::Health::kUnhealthy;
  inv.cards[0].health_reason = "AXI firewall tripped";
  source_.Publish(inv);
  ASSERT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 3; }, 1s));
  auto sick = sim_->Allocate(kRes, {CardId(0)});
  ASSERT_FALSE(sick.ok());
  EXPECT_EQ(sick.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(sick.status().message().find("AXI firewall tripped"), std::string::npos);
}

// A request that is not the method's message gets INVALID_ARGUMENT from every method (the typed
// handlers of hyperaccel/rpc/proto_methods.h), and the plugin keeps serving.
TEST_F(PluginTest, UnparsableRequestsAreRefusedAndServingGoesOn) {
  StartBoth(4);
  rpc::GrpcCallOptions call;
  call.timeout = std::chrono::seconds(5);
  const std::string garbage("\x0a\xff\xff\xff\xff\x0f", 6);  // field 1, a length past the end
  for (const char* method :
       {"/v1beta1.DevicePlugin/GetDevicePluginOptions", "/v1beta1.DevicePlugin/GetPreferredAllocation",
        "/v1beta1.DevicePlugin/Allocate", "/v1beta1.DevicePlugin/PreStartContainer"}) {
    auto r = rpc::GrpcUnaryCall(SocketPath(), method, garbage, call);
    ASSERT_FALSE(r.ok()) << method;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << method << ": " << r.status().message();
    EXPECT_NE(r.status().message().find("cannot parse the request message"), std::string::npos)
        << r.status().message();
  }
  auto ok = sim_->Allocate(kRes, {CardId(0)});
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

TEST_F(PluginTest, WaitsForAKubeletThatIsNotThereYet) {
  StartPlugin(RingInventory(4));
  EXPECT_FALSE(plugin_->WaitHealthy(300ms));
  EXPECT_NE(plugin_->Health().message().find("not registered"), std::string::npos)
      << plugin_->Health().ToString();
  EXPECT_TRUE(fs::is_socket(SocketPath())) << "serves before the kubelet shows up";
  StartSim();
  ASSERT_TRUE(sim_->WaitForRegistrations(kRes, 1, 2s));
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return d.size() == 4; }, 1s));
  EXPECT_TRUE(plugin_->WaitHealthy(1s));
}

TEST_F(PluginTest, ReRegistersWhenTheStreamEnds) {
  StartBoth(4);
  sim_->DropStream(kRes);
  ASSERT_TRUE(sim_->WaitForRegistrations(kRes, 2, 2s));
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 4; }, 1s));
}

TEST_F(PluginTest, ReRegistersWhenItsSocketIsDeleted) {
  StartBoth(4);
  ASSERT_EQ(::unlink(SocketPath().c_str()), 0);
  ASSERT_TRUE(sim_->WaitForRegistrations(kRes, 2, 2s));
  EXPECT_TRUE(fs::is_socket(SocketPath()));
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 4; }, 1s));
}

TEST_F(PluginTest, StopEndsTheStreamAndRemovesTheSocket) {
  StartBoth(4);
  plugin_->Stop();
  EXPECT_FALSE(fs::exists(SocketPath()));
  EXPECT_TRUE(sim_->WaitForStream(kRes, false, 1s));
  EXPECT_EQ(Healthy(sim_->Devices(kRes)), 0u) << "the kubelet marks devices of a gone plugin unhealthy";
}

// Streams other than the kubelet's (a second kubelet connection, a debugging client): each gets
// the list and every change, one the client cancels is released, and Stop() ends the others with
// UNAVAILABLE. The service writes them from the publishing thread and releases them on its own.
TEST_F(PluginTest, ExtraListAndWatchStreamsGetEveryChangeAndEndAtStop) {
  StartBoth(8);
  auto channel = grpc::CreateChannel("unix:" + SocketPath(), grpc::InsecureChannelCredentials());
  auto stub = v1beta1::DevicePlugin::NewStub(channel);
  struct Watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1beta1::ListAndWatchResponse>> reader;
  };
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < 3; ++i) {
    auto w = std::make_unique<Watch>();
    w->reader = stub->ListAndWatch(&w->ctx, v1beta1::Empty());
    v1beta1::ListAndWatchResponse first;
    ASSERT_TRUE(w->reader->Read(&first)) << "stream " << i;
    EXPECT_EQ(first.devices_size(), 8);
    watches.push_back(std::move(w));
  }
  const std::string gauge =
      "hyperaccel_device_plugin_list_and_watch_streams{resource=\"hyperaccel.ai/fpga\"} ";
  EXPECT_NE(registry_.Render().find(gauge + "4"), std::string::npos) << "the kubelet's and ours";

  watches[2]->ctx.TryCancel();
  v1beta1::ListAndWatchResponse ignored;
  while (watches[2]->reader->Read(&ignored)) {
  }
  EXPECT_EQ(watches[2]->reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (registry_.Render().find(gauge + "3") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(registry_.Render().find(gauge + "3"), std::string::npos) << "the cancelled stream is released";

  auto inv = RingInventory(8, true, 7);
  inv.cards[5].health = hw::Health::kUnhealthy;
  source_.Publish(inv);
  for (int i = 0; i < 2; ++i) {
    v1beta1::ListAndWatchResponse update;
    ASSERT_TRUE(watches[static_cast<size_t>(i)]->reader->Read(&update)) << "stream " << i;
    int healthy = 0;
    for (const auto& d : update.devices()) healthy += d.health() == "Healthy" ? 1 : 0;
    EXPECT_EQ(healthy, 7) << "stream " << i;
  }

  plugin_->Stop();
  for (int i = 0; i < 2; ++i) {
    while (watches[static_cast<size_t>(i)]->reader->Read(&ignored)) {
    }
    const grpc::Status end = watches[static_cast<size_t>(i)]->reader->Finish();
    EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
  }
}

// Stop() while clients keep calling: calls in flight are answered or fail cleanly, none hangs,
// and Stop() returns (the serving thread drains its queue before it exits).
TEST_F(PluginTest, StopWhileCallsAreInFlight) {
  StartBoth(8);
  auto channel = grpc::CreateChannel("unix:" + SocketPath(), grpc::InsecureChannelCredentials());
  auto stub = v1beta1::DevicePlugin::NewStub(channel);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 5s);
        grpc::Status st;
        if (t % 2 == 0) {
          v1beta1::AllocateRequest req;
          req.add_container_requests()->add_devices_ids(CardId(t));
          v1beta1::AllocateResponse resp;
          st = stub->Allocate(&ctx, req, &resp);
        } else {
          v1beta1::PreferredAllocationRequest req;
          auto* c = req.add_container_requests();
          for (int i = 0; i < 8; ++i) c->add_available_deviceids(CardId(i));
          c->set_allocation_size(4);
          v1beta1::PreferredAllocationResponse resp;
          st = stub->GetPreferredAllocation(&ctx, req, &resp);
        }
        if (st.ok()) {
          ++answered;
        } else if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
                   st.error_code() != grpc::StatusCode::CANCELLED) {
          ++unexpected;
        }
      }
    });
  }
  while (answered.load() < 200) std::this_thread::sleep_for(1ms);
  const auto t0 = std::chrono::steady_clock::now();
  plugin_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  stop = true;
  for (auto& c : callers) c.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_FALSE(fs::exists(SocketPath()));
}

// Two instances on one kubelet directory (a rolling update, a mis-set DaemonSet): the second
// waits without touching the live socket, and when the first stops it hands the socket over
// while still answering, so no Allocate fails.
TEST_F(PluginTest, SecondInstanceWaitsThenTakesOverWithoutAFailedAllocate) {
  StartBoth(4);
  struct stat before {};
  ASSERT_EQ(::stat(SocketPath().c_str(), &before), 0);

  ManualDeviceSource source2;
  source2.Publish(RingInventory(4, true, 7));
  metrics::Registry registry2;
  Plugin second(options_, &source2, &registry2);
  ASSERT_TRUE(second.Start().ok());
  // Long enough for several standby checks and reconcile passes.
  std::this_thread::sleep_for(1s);
  ASSERT_EQ(second.Endpoints().size(), 1u);
  EXPECT_TRUE(second.Endpoints()[0].standby);
  EXPECT_FALSE(second.Endpoints()[0].serving);
  EXPECT_TRUE(second.Health().ok()) << second.Health().ToString();  // alive: no liveness restart
  EXPECT_FALSE(second.Ready().ok());
  EXPECT_NE(second.Ready().message().find("standby"), std::string::npos) << second.Ready().ToString();
  EXPECT_NE(registry2.Render().find("hyperaccel_device_plugin_standby{resource=\"hyperaccel.ai/fpga\"} 1"),
            std::string::npos);
  struct stat during {};
  ASSERT_EQ(::stat(SocketPath().c_str(), &during), 0);
  EXPECT_EQ(during.st_ino, before.st_ino) << "the waiting instance replaced the live socket";
  EXPECT_EQ(sim_->Plugin(kRes)->registrations, 1) << "the instances fight over the socket";
  EXPECT_TRUE(plugin_->Health().ok()) << plugin_->Health().ToString();

  // Allocate continuously through the hand-over.
  std::atomic<bool> done{false};
  std::atomic<int> ok{0};
  std::vector<std::string> failures;
  std::thread kubelet([&] {
    while (!done.load()) {
      auto r = sim_->Allocate(kRes, {CardId(1)});
      if (r.ok()) {
        ok.fetch_add(1);
      } else {
        failures.push_back(r.status().ToString());
      }
      std::this_thread::sleep_for(2ms);
    }
  });
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { plugin_->Stop(); });
  const bool registered = sim_->WaitForRegistrations(kRes, 2, 5s);
  const auto took = std::chrono::steady_clock::now() - t0;
  stopper.join();
  std::this_thread::sleep_for(200ms);
  done.store(true);
  kubelet.join();

  ASSERT_TRUE(registered);
  // ~1 s is the goal; the bound leaves room for a loaded machine.
  EXPECT_LT(took, 2s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed Allocate calls, first: " << failures.front();
  EXPECT_GT(ok.load(), 10);
  ASSERT_TRUE(second.WaitHealthy(5s)) << second.Health().ToString();
  EXPECT_FALSE(second.Endpoints()[0].standby);
  EXPECT_TRUE(second.Ready().ok()) << second.Ready().ToString();
  EXPECT_TRUE(fs::exists(SocketPath())) << "the old instance removed its successor's socket";
  EXPECT_TRUE(sim_->WaitForDevices(
      kRes, [](auto& d) { return Healthy(d) == 4; }, 2s));
  second.Stop();
  EXPECT_FALSE(fs::exists(SocketPath()));
}

// A crash leaves the socket file and an unlocked lock file: the next instance takes over at once.
TEST_F(PluginTest, StaleSocketAndLockFileOfACrashedInstanceAreTakenOver) {
  fs::create_directories(dir_);
  std::ofstream(SocketPath() + ".lock") << "";
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", SocketPath().c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // no listener any more, the file stays
  }
  StartBoth(2);
  EXPECT_FALSE(plugin_->Endpoints()[0].standby);
  EXPECT_TRUE(plugin_->Ready().ok()) << plugin_->Ready().ToString();
}

TEST_F(PluginTest, PreStartHookRunsWithTheDeviceIds) {
  const std::string out = root_ + "/prestart.out";
  options_.prestart_command = "printf '%s\\n' >" + out;
  StartBoth(4);
  EXPECT_TRUE(sim_->Plugin(kRes)->options.pre_start_required());
  Status st = sim_->PreStartContainer(kRes, {CardId(1), CardId(2)});
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::ifstream in(out);
  std::string a, b;
  in >> a >> b;
  EXPECT_EQ(a, CardId(1));
  EXPECT_EQ(b, CardId(2));
}

TEST_F(PluginTest, PreStartHookThatUsesTheArgumentsGetsEachIdOnce) {
  const std::string out = root_ + "/prestart.out";
  options_.prestart_command = "printf '%s\\n' \"$@\" >" + out;  // the form the documentation shows
  StartBoth(4);
  Status st = sim_->PreStartContainer(kRes, {CardId(1), CardId(2)});
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::ifstream in(out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(lines, (std::vector<std::string>{CardId(1), CardId(2)}));
}

TEST_F(PluginTest, PreStartHookFailureAndTimeoutAreErrors) {
  options_.prestart_command = "test \"$1\" != " + CardId(0) + " || exit 3; sleep 5; :";
  options_.prestart_timeout = 300ms;
  StartBoth(2);
  Status failed = sim_->PreStartContainer(kRes, {CardId(0)});
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("exit code 3"), std::string::npos) << failed.ToString();
  Status slow = sim_->PreStartContainer(kRes, {CardId(1)});
  EXPECT_EQ(slow.code(), StatusCode::kDeadlineExceeded) << slow.ToString();
}

TEST_F(PluginTest, PodResourcesListReportsWhatWasAllocated) {
  StartBoth(4);
  auto got = sim_->AdmitContainer(Request("train-0", 2, "ml"));
  ASSERT_TRUE(got.ok());
  auto channel =
      grpc::CreateChannel("unix:" + root_ + "/pr/kubelet.sock", grpc::InsecureChannelCredentials());
  auto stub = v1::PodResourcesLister::NewStub(channel);
  grpc::ClientContext ctx;
  v1::ListPodResourcesResponse resp;
  ASSERT_TRUE(stub->List(&ctx, v1::ListPodResourcesRequest(), &resp).ok());
  ASSERT_EQ(resp.pod_resources_size(), 1);
  const auto& pod = resp.pod_resources(0);
  EXPECT_EQ(pod.name(), "train-0");
  EXPECT_EQ(pod.namespace_(), "ml");
  ASSERT_EQ(pod.containers_size(), 1);
  ASSERT_EQ(pod.containers(0).devices_size(), 1);
  EXPECT_EQ(pod.containers(0).devices(0).resource_name(), kRes);
  EXPECT_EQ(pod.containers(0).devices(0).device_ids_size(), 2);
  sim_->RemovePod("train-0", "ml");
  EXPECT_TRUE(sim_->AllocatedIds(kRes).empty());
}

TEST_F(PluginTest, PerShellNamingServesOneResourcePerShell) {
  options_.naming = NamingMode::kPerShell;
  options_.sysfs_root = root_ + "/no-sysfs";
  auto inv = RingInventory(4);
  inv.cards[3].shell = "xilinx_u55c_gen3x16_xdma_base_2";
  StartSim();
  StartPlugin(inv);
  const std::string base3 = "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0";
  const std::string base2 = "amd.com/xilinx_u55c_gen3x16_xdma_base_2-0";
  ASSERT_TRUE(sim_->WaitForDevices(
      base3, [](auto& d) { return Healthy(d) == 3; }, 5s));
  ASSERT_TRUE(sim_->WaitForDevices(
      base2, [](auto& d) { return Healthy(d) == 1; }, 5s));
  EXPECT_EQ(sim_->Plugin(base2)->endpoint, "hyperaccel-xilinx_u55c_gen3x16_xdma_base_2-0.sock");
  EXPECT_TRUE(plugin_->WaitHealthy(2s));
  EXPECT_EQ(plugin_->Endpoints().size(), 2u);
}

TEST_F(PluginTest, MetricsCountRegistrationsAndAllocations) {
  StartBoth(2);
  ASSERT_TRUE(sim_->Allocate(kRes, {CardId(0)}).ok());
  ASSERT_FALSE(sim_->Allocate(kRes, {"nope"}).ok());
  const std::string text = registry_.Render();
  for (const char* want :
       {"hyperaccel_device_plugin_registrations_total{resource=\"hyperaccel.ai/fpga\",result=\"ok\"} 1",
        "hyperaccel_device_plugin_registered{resource=\"hyperaccel.ai/fpga\"} 1",
        "hyperaccel_device_plugin_list_and_watch_streams{resource=\"hyperaccel.ai/fpga\"} 1",
        "hyperaccel_device_plugin_allocations_total{resource=\"hyperaccel.ai/fpga\",result=\"error\"} 1",
        "hyperaccel_device_plugin_allocate_duration_seconds_count{resource=\"hyperaccel.ai/fpga\"} 2"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
}

}  // namespace
}  // namespace hyperaccel::device_plugin
