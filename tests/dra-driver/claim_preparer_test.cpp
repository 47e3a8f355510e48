// The claim preparer against the API-server emulator: claims are created and allocated by writing
// status.allocation as the scheduler would, then prepared/unprepared; CDI specs are checked
// against the CDI schema rules and against the device plugin's Allocate for the same cards; the
// checkpoint is crashed, corrupted and recovered.
#include "hyperaccel/dra_driver/claim_preparer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "cdi_schema.h"
#include "hyperaccel/device_plugin/allocation.h"
#include "hyperaccel/kube/client.h"
#include "hyperaccel/kube/resource.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "inventories.h"

namespace hyperaccel::dra {
namespace {

namespace fs = std::filesystem;
using hyperaccel::testing::ApiServerEmulator;

struct Result_ {
  std::string request;
  std::string driver;
  std::string pool;
  std::string device;
};

// An 8-card ring cabled 0-2-4-6-1-3-5-7-0: link order differs from PCI order, so arc4-0 is cards
// 0,2,4,6 and arc4-1 is cards 1,3,5,7.
hw::Inventory ShuffledRing() {
  const std::vector<int> order = {0, 2, 4, 6, 1, 3, 5, 7};
  std::vector<std::pair<int, int>> links;
  for (size_t i = 0; i < order.size(); ++i) links.emplace_back(order[i], order[(i + 1) % order.size()]);
  hw::Inventory inv = testing::Inventory(8, links);
  for (size_t i = 0; i < inv.cards.size(); ++i) {
    inv.cards[i].render_node = "/dev/dri/renderD" + std::to_string(128 + i);
    inv.cards[i].mgmt_node = "/dev/xclmgmt" + std::to_string(4096 + i);
  }
  return inv;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

class PreparerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(api_.Start().ok());
    kube::ClusterConfig c;
    c.server = api_.url();
    kube::ClientOptions o;
    o.max_attempts = 1;
    o.request_timeout = std::chrono::milliseconds(2000);
    auto client = kube::Client::Create(c, o);
    ASSERT_TRUE(client.ok());
    client_ = std::move(client).value();
    char tmpl[] = "/tmp/dra-prep-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    inventory_ = ShuffledRing();
    SetPool(inventory_);
  }
  void TearDown() override {
    preparer_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void SetPool(const hw::Inventory& inv) {
    SliceOptions s;
    s.node_name = "node-1";
    pool_.Set(inv, s);
  }

  PreparerOptions Options() {
    PreparerOptions o;
    o.node_name = "node-1";
    o.cdi_dir = dir_ + "/cdi";
    o.checkpoint_path = dir_ + "/plugin/checkpoint.json";
    return o;
  }

  CdiClaimPreparer& Make(PreparerOptions o) {
    preparer_.reset();
    registry_ = std::make_unique<metrics::Registry>();
    o.registry = registry_.get();
    preparer_ = std::make_unique<CdiClaimPreparer>(o, KubeClaimGetter(*client_), pool_.Provider());
    return *preparer_;
  }
  CdiClaimPreparer& Make() { return Make(Options()); }

  // Creates a claim and allocates it (status.allocation) as kube-scheduler does; returns its ref.
  ClaimRef Claim(const std::string& name, const std::vector<Result_>& results,
                 const std::string& ns = "default") {
    std::set<std::string> requests;
    for (const auto& r : results) requests.insert(r.request);
    Json reqs = Json::array();
    for (const auto& r : requests) {
      reqs.push_back({{"name", r}, {"exactly", {{"deviceClassName", "fpga.hyperaccel.ai"}}}});
    }
    Json claim = {{"apiVersion", "resource.k8s.io/v1"},
                  {"kind", "ResourceClaim"},
                  {"metadata", {{"name", name}, {"namespace", ns}}},
                  {"spec", {{"devices", {{"requests", reqs}}}}}};
    auto created = client_->Create(kube::ResourceClaimsPath(ns), claim);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return {};
    Json res = Json::array();
    for (const auto& r : results) {
      res.push_back({{"request", r.request}, {"driver", r.driver}, {"pool", r.pool}, {"device", r.device}});
    }
    Json obj = *created;
    obj["status"] = {{"allocation", {{"devices", {{"results", res}}}}}};
    auto updated = client_->Replace(kube::ResourceClaimStatusPath(ns, name), obj);
    EXPECT_TRUE(updated.ok()) << updated.status().ToString();
    return {ns, name, (*created)["metadata"]["uid"].get<std::string>()};
  }
  ClaimRef Ours(const std::string& name, const std::string& device, const std::string& request = "fpga") {
    return Claim(name, {{request, kDriverName, "node-1", device}});
  }

  std::string SpecPath(const ClaimRef& ref) const {
    return dir_ + "/cdi/k8s.fpga.hyperaccel.ai-fpga_" + ref.uid + ".json";
  }

  // The spec file of `ref`, checked against the CDI schema rules.
  Json Spec(const ClaimRef& ref) {
    const std::string text = ReadText(SpecPath(ref));
    Json spec = Json::parse(text, nullptr, false);
    EXPECT_FALSE(spec.is_discarded()) << text;
    dra::testing::CdiSchemaChecker checker;
    auto errors = checker.Check(spec);
    for (const auto& e : errors) ADD_FAILURE() << "CDI schema: " << e;
    EXPECT_EQ(spec.value("cdiVersion", ""), checker.highest_needed()) << "cdiVersion is not the minimum";
    return spec;
  }

  static std::map<std::string, std::string> Env(const Json& device) {
    std::map<std::string, std::string> env;
    for (const auto& e : device["containerEdits"]["env"]) {
      const std::string s = e.get<std::string>();
      env[s.substr(0, s.find('='))] = s.substr(s.find('=') + 1);
    }
    return env;
  }

  std::vector<std::string> Ids(const std::vector<int>& idx) const {
    std::vector<std::string> out;
    out.reserve(idx.size());
    for (int i : idx) out.push_back(inventory_.cards[static_cast<size_t>(i)].id);
    return out;
  }

  static std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
  }

  double Metric(const std::string& line_prefix) {
    std::istringstream in(registry_->Render());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(line_prefix + " ", 0) == 0) return std::stod(line.substr(line_prefix.size() + 1));
    }
    return -1;
  }

  ApiServerEmulator api_;
  std::unique_ptr<kube::Client> client_;
  std::string dir_;
  hw::Inventory inventory_;
  PoolState pool_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<CdiClaimPreparer> preparer_;
};

TEST_F(PreparerTest, ArcIsPreparedWithCardsInLinkOrder) {
  auto o = Options();
  o.mount_xrt = true;
  o.mount_icd = true;
  auto& p = Make(o);
  ASSERT_TRUE(p.recovery_status().ok()) << p.recovery_status().ToString();
  const ClaimRef ref = Ours("train", "arc4-0", "ring");
  auto out = p.Prepare({ref});
  ASSERT_EQ(out.size(), 1U);
  const auto& r = out[ref.uid];
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.devices.size(), 1U);
  EXPECT_EQ(r.devices[0].request_names, std::vector<std::string>{"ring"});
  EXPECT_EQ(r.devices[0].pool_name, "node-1");
  EXPECT_EQ(r.devices[0].device_name, "arc4-0");
  EXPECT_EQ(r.devices[0].cdi_device_ids,
            std::vector<std::string>{"k8s.fpga.hyperaccel.ai/fpga=" + ref.uid + "-arc4-0"});

  const Json spec = Spec(ref);
  EXPECT_EQ(spec["kind"], "k8s.fpga.hyperaccel.ai/fpga");
  ASSERT_EQ(spec["devices"].size(), 1U);
  const Json& dev = spec["devices"][0];
  EXPECT_EQ(dev["name"], ref.uid + "-arc4-0");
  // Link order 0, 2, 4, 6 (not PCI order) in every variable and in the device nodes.
  const auto ids = Ids({0, 2, 4, 6});
  auto env = Env(dev);
  EXPECT_EQ(env["HYPERACCEL_VISIBLE_DEVICES"], Join(ids));
  EXPECT_EQ(env["HYPERACCEL_RING_ORDER"], Join(ids));
  EXPECT_EQ(env["HYPERACCEL_DEVICE_SERIALS"], "XFL1SER100,XFL1SER102,XFL1SER104,XFL1SER106");
  std::vector<std::string> nodes;
  for (const auto& n : dev["containerEdits"]["deviceNodes"]) {
    nodes.push_back(n["path"].get<std::string>());
    EXPECT_EQ(n["permissions"], "rw");
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"/dev/dri/renderD128", "/dev/dri/renderD130",
                                             "/dev/dri/renderD132", "/dev/dri/renderD134"}));

  // The same edits as the device plugin's Allocate for these cards (as sets: Allocate sorts by ID).
  device_plugin::ResourceView view;
  for (const auto& c : inventory_.cards) view.devices.push_back({c, true, true, ""});
  device_plugin::AllocateOptions ao;
  ao.mount_xrt = true;
  ao.mount_icd = true;
  auto alloc = device_plugin::BuildAllocation(view, ids, ao);
  ASSERT_TRUE(alloc.ok());
  std::set<std::string> want_nodes;
  for (const auto& n : alloc->devices) want_nodes.insert(n.host_path);
  EXPECT_EQ(std::set<std::string>(nodes.begin(), nodes.end()), want_nodes);
  std::set<std::string> want_visible(ids.begin(), ids.end());
  EXPECT_EQ(alloc->envs["HYPERACCEL_VISIBLE_DEVICES"],
            Join(std::vector<std::string>(want_visible.begin(), want_visible.end())));
  ASSERT_EQ(spec["containerEdits"]["mounts"].size(), alloc->mounts.size());
  for (size_t i = 0; i < alloc->mounts.size(); ++i) {
    EXPECT_EQ(spec["containerEdits"]["mounts"][i]["hostPath"], alloc->mounts[i].host_path);
    EXPECT_EQ(spec["containerEdits"]["mounts"][i]["containerPath"], alloc->mounts[i].container_path);
    EXPECT_EQ(spec["containerEdits"]["mounts"][i]["options"][0], "ro");
  }
  EXPECT_EQ(spec["containerEdits"]["env"], Json::array({"XILINX_XRT=/opt/xilinx/xrt"}));

  // Checkpoint: completed, with the cards.
  auto cp = p.Snapshot();
  ASSERT_EQ(cp.claims.count(ref.uid), 1U);
  EXPECT_EQ(cp.claims[ref.uid].state, PrepareState::kCompleted);
  EXPECT_EQ(cp.claims[ref.uid].devices[0].cards, ids);
  auto on_disk = ParseCheckpoint(ReadText(Options().checkpoint_path));
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(*on_disk, cp);
  EXPECT_EQ(Metric("hyperaccel_dra_prepares_total{result=\"ok\"}"), 1);
  EXPECT_EQ(Metric("hyperaccel_dra_prepared_claims"), 1);
  EXPECT_EQ(Metric("hyperaccel_dra_prepare_seconds_count"), 1);
}

TEST_F(PreparerTest, CardWithManagementNodeWhenAsked) {
  auto o = Options();
  o.expose_mgmt = true;
  auto& p = Make(o);
  const ClaimRef ref = Ours("one", "card-3");
  auto out = p.Prepare({ref});
  ASSERT_EQ(out[ref.uid].error, "");
  const Json spec = Spec(ref);
  const Json& dev = spec["devices"][0];
  std::vector<std::string> nodes;
  for (const auto& n : dev["containerEdits"]["deviceNodes"]) nodes.push_back(n["path"]);
  EXPECT_EQ(nodes, (std::vector<std::string>{"/dev/dri/renderD131", "/dev/xclmgmt4099"}));
  EXPECT_EQ(Env(dev)["HYPERACCEL_VISIBLE_DEVICES"], inventory_.cards[3].id);
  EXPECT_FALSE(spec.contains("containerEdits")) << "no mounts asked for";
}

TEST_F(PreparerTest, ManagementNodeNeverByDefault) {
  auto& p = Make();
  const ClaimRef ref = Ours("one", "card-3");
  ASSERT_EQ(p.Prepare({ref})[ref.uid].error, "");
  EXPECT_EQ(ReadText(SpecPath(ref)).find("xclmgmt"), std::string::npos);
}

TEST_F(PreparerTest, UidMismatchNamesBothUids) {
  auto& p = Make();
  ClaimRef ref = Ours("c", "card-0");
  const std::string real = ref.uid;
  ref.uid = "11111111-2222-4333-8444-555555555555";
  auto out = p.Prepare({ref});
  EXPECT_NE(out[ref.uid].error.find(real), std::string::npos) << out[ref.uid].error;
  EXPECT_NE(out[ref.uid].error.find(ref.uid), std::string::npos) << out[ref.uid].error;
  EXPECT_TRUE(out[ref.uid].devices.empty());
  EXPECT_FALSE(fs::exists(SpecPath(ref)));
  EXPECT_TRUE(p.Snapshot().claims.empty());
  EXPECT_EQ(Metric("hyperaccel_dra_prepare_errors_total{reason=\"uid_mismatch\"}"), 1);
}

TEST_F(PreparerTest, OtherDriversResultsAreIgnored) {
  auto& p = Make();
  const ClaimRef ref = Claim("mixed", {{"gpu", "gpu.example.com", "node-1", "gpu-0"},
                                       {"fpga", kDriverName, "node-1", "card-5"},
                                       {"nic", "nic.example.com", "other-pool", "nic-1"}});
  auto out = p.Prepare({ref});
  ASSERT_EQ(out[ref.uid].error, "");
  ASSERT_EQ(out[ref.uid].devices.size(), 1U);
  EXPECT_EQ(out[ref.uid].devices[0].device_name, "card-5");
  EXPECT_EQ(Spec(ref)["devices"].size(), 1U);
}

TEST_F(PreparerTest, OurDriverInAnotherPoolIsAnError) {
  auto& p = Make();
  const ClaimRef ref = Claim("far", {{"fpga", kDriverName, "node-2", "card-0"}});
  auto out = p.Prepare({ref});
  EXPECT_NE(out[ref.uid].error.find("pool node-2"), std::string::npos) << out[ref.uid].error;
  EXPECT_FALSE(fs::exists(SpecPath(ref)));
}

TEST_F(PreparerTest, UnknownDeviceAndUnallocatedClaimAreErrors) {
  auto& p = Make();
  const ClaimRef unknown = Ours("u", "arc8-3");
  const ClaimRef none = Claim("n", {});
  auto out = p.Prepare({unknown, none});
  EXPECT_NE(out[unknown.uid].error.find("arc8-3 is not in pool node-1"), std::string::npos)
      << out[unknown.uid].error;
  EXPECT_NE(out[none.uid].error.find("not allocated"), std::string::npos) << out[none.uid].error;
}

TEST_F(PreparerTest, UnhealthyOrVanishedCardIsRefused) {
  auto& p = Make();
  const ClaimRef arc = Ours("a", "arc4-1");  // cards 1,3,5,7
  const ClaimRef card = Ours("b", "card-2");
  hw::Inventory inv = inventory_;
  inv.cards[5].health = hw::Health::kUnhealthy;
  inv.cards[5].health_reason = "firewall tripped";
  inv.cards[2].health = hw::Health::kUnhealthy;
  inv.cards[2].health_reason = "card vanished (reset or hot-unplug?)";
  SetPool(inv);
  auto out = p.Prepare({arc, card});
  EXPECT_NE(out[arc.uid].error.find("firewall tripped"), std::string::npos) << out[arc.uid].error;
  EXPECT_NE(out[arc.uid].error.find(inventory_.cards[5].id), std::string::npos);
  EXPECT_NE(out[card.uid].error.find("vanished"), std::string::npos) << out[card.uid].error;
  EXPECT_TRUE(p.Snapshot().claims.empty());
  EXPECT_EQ(Metric("hyperaccel_dra_prepare_errors_total{reason=\"unhealthy\"}"), 2);
}

TEST_F(PreparerTest, NoInventoryYetIsAnError) {
  PoolState empty;
  auto o = Options();
  CdiClaimPreparer p(o, KubeClaimGetter(*client_), empty.Provider());
  const ClaimRef ref = Ours("c", "card-0");
  EXPECT_NE(p.Prepare({ref})[ref.uid].error.find("no hardware scan"), std::string::npos);
}

TEST_F(PreparerTest, ACardIsNeverHandedToTwoClaims) {
  auto& p = Make();
  const ClaimRef a = Ours("a", "arc4-0");  // 0,2,4,6
  const ClaimRef b = Ours("b", "card-4");
  ASSERT_EQ(p.Prepare({a})[a.uid].error, "");
  auto out = p.Prepare({b});
  EXPECT_NE(out[b.uid].error.find("already prepared for claim default/a"), std::string::npos)
      << out[b.uid].error;
  EXPECT_FALSE(fs::exists(SpecPath(b)));
  EXPECT_EQ(Metric("hyperaccel_dra_prepare_errors_total{reason=\"in_use\"}"), 1);
  // Once a is unprepared, b gets the card.
  EXPECT_EQ(p.Unprepare({a})[a.uid], "");
  EXPECT_FALSE(fs::exists(SpecPath(a)));
  EXPECT_EQ(p.Prepare({b})[b.uid].error, "");
}

TEST_F(PreparerTest, RepeatedPrepareIsIdempotentWithoutApiCalls) {
  auto& p = Make();
  const ClaimRef ref = Ours("c", "arc2-0");
  auto first = p.Prepare({ref});
  ASSERT_EQ(first[ref.uid].error, "");
  const std::string text = ReadText(SpecPath(ref));
  const size_t gets = api_.CountRequests("GET", "/apis/resource.k8s.io");
  auto second = p.Prepare({ref});
  ASSERT_EQ(second[ref.uid].error, "");
  EXPECT_EQ(second[ref.uid].devices[0].cdi_device_ids, first[ref.uid].devices[0].cdi_device_ids);
  EXPECT_EQ(second[ref.uid].devices[0].device_name, "arc2-0");
  EXPECT_EQ(ReadText(SpecPath(ref)), text);
  EXPECT_EQ(api_.CountRequests("GET", "/apis/resource.k8s.io"), gets);
  EXPECT_EQ(p.Snapshot().claims.size(), 1U);
}

TEST_F(PreparerTest, MissingCdiSpecIsRecreatedAfterRestart) {
  const ClaimRef ref = Ours("c", "arc8-0");
  std::string text;
  std::vector<std::string> ids;
  {
    auto& p = Make();
    auto out = p.Prepare({ref});
    ASSERT_EQ(out[ref.uid].error, "");
    ids = out[ref.uid].devices[0].cdi_device_ids;
    text = ReadText(SpecPath(ref));
  }
  // A reboot: /var/run/cdi is empty, the checkpoint survives, the API server may be unreachable.
  fs::remove(SpecPath(ref));
  api_.SetDown(true);
  auto& p = Make();
  ASSERT_TRUE(p.recovery_status().ok());
  auto out = p.Prepare({ref});
  ASSERT_EQ(out[ref.uid].error, "");
  EXPECT_EQ(out[ref.uid].devices[0].cdi_device_ids, ids);
  ASSERT_TRUE(fs::exists(SpecPath(ref)));
  EXPECT_EQ(ReadText(SpecPath(ref)), text);
  Spec(ref);
  EXPECT_EQ(Metric("hyperaccel_dra_cdi_specs_recreated_total"), 1);
  api_.SetDown(false);
}

TEST_F(PreparerTest, HalfDonePrepareIsRolledBackOnStart) {
  // A crash between "started" and "completed": the entry and (maybe) the spec are on disk.
  const std::string uid = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
  Checkpoint cp;
  cp.claims[uid] = {
      "default",
      "crashed",
      PrepareState::kStarted,
      {{"fpga", "node-1", "arc4-0", Ids({0, 2, 4, 6}), {"k8s.fpga.hyperaccel.ai/fpga=" + uid + "-arc4-0"}}}};
  WriteText(Options().checkpoint_path, SerializeCheckpoint(cp));
  const std::string spec = dir_ + "/cdi/k8s.fpga.hyperaccel.ai-fpga_" + uid + ".json";
  WriteText(spec, "{}");
  auto& p = Make();
  EXPECT_TRUE(p.recovery_status().ok()) << p.recovery_status().ToString();
  EXPECT_TRUE(p.Snapshot().claims.empty());
  EXPECT_FALSE(fs::exists(spec));
  auto on_disk = ParseCheckpoint(ReadText(Options().checkpoint_path));
  ASSERT_TRUE(on_disk.ok());
  EXPECT_TRUE(on_disk->claims.empty());
  // The cards are free again.
  const ClaimRef b = Ours("b", "card-2");
  EXPECT_EQ(p.Prepare({b})[b.uid].error, "");
}

TEST_F(PreparerTest, CompletedClaimsSurviveARestart) {
  const ClaimRef a = Ours("a", "arc4-0");
  {
    auto& p = Make();
    ASSERT_EQ(p.Prepare({a})[a.uid].error, "");
  }
  auto& p = Make();
  ASSERT_TRUE(p.recovery_status().ok());
  EXPECT_EQ(p.Snapshot().claims.count(a.uid), 1U);
  EXPECT_EQ(Metric("hyperaccel_dra_prepared_claims"), 1);
  const ClaimRef b = Ours("b", "card-6");
  EXPECT_NE(p.Prepare({b})[b.uid].error.find("already prepared"), std::string::npos);
}

TEST_F(PreparerTest, CorruptCheckpointIsMovedAsideWithAClearError) {
  for (const std::string& garbage :
       {std::string("{\"version\":1,\"claims\":{\"x\":{\"namesp"), std::string("\x01\x02 not json"),
        std::string("{\"version\":\"1\"}"),
        std::string("{\"version\":1,\"claims\":{\"../../etc\":{\"namespace\":\"a\","
                    "\"name\":\"b\",\"state\":\"started\"}}}")}) {
    fs::remove_all(dir_ + "/plugin");
    WriteText(Options().checkpoint_path, garbage);
    auto& p = Make();
    EXPECT_FALSE(p.recovery_status().ok()) << garbage;
    EXPECT_NE(p.recovery_status().message().find("corrupt"), std::string::npos)
        << p.recovery_status().message();
    EXPECT_FALSE(fs::exists(Options().checkpoint_path));
    int aside = 0;
    for (const auto& e : fs::directory_iterator(dir_ + "/plugin")) {
      if (e.path().filename().string().rfind("checkpoint.json.corrupt-", 0) == 0) {
        ++aside;
        EXPECT_EQ(ReadText(e.path().string()), garbage);
      }
    }
    EXPECT_EQ(aside, 1);
    EXPECT_TRUE(p.Snapshot().claims.empty());
  }
  // The preparer still works, and the new checkpoint is valid.
  const ClaimRef ref = Ours("after", "card-1");
  EXPECT_EQ(preparer_->Prepare({ref})[ref.uid].error, "");
  EXPECT_TRUE(ParseCheckpoint(ReadText(Options().checkpoint_path)).ok());
}

TEST_F(PreparerTest, CleanupUnpreparesDeletedAndRecreatedClaimsOnly) {
  auto& p = Make();
  const ClaimRef gone = Ours("gone", "card-0");
  const ClaimRef recreated = Ours("again", "card-1");
  const ClaimRef alive = Ours("alive", "card-2");
  auto out = p.Prepare({gone, recreated, alive});
  for (const auto& [uid, r] : out) ASSERT_EQ(r.error, "") << uid;
  ASSERT_TRUE(client_->Delete(kube::ResourceClaimPath("default", "gone")).ok());
  ASSERT_TRUE(client_->Delete(kube::ResourceClaimPath("default", "again")).ok());
  const ClaimRef fresh = Ours("again", "card-1");
  ASSERT_NE(fresh.uid, recreated.uid);

  // API down: nothing is removed.
  api_.SetDown(true);
  auto none = p.Cleanup();
  EXPECT_TRUE(!none.ok() || *none == 0);
  EXPECT_EQ(p.Snapshot().claims.size(), 3U);
  api_.SetDown(false);

  auto removed = p.Cleanup();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 2);
  auto cp = p.Snapshot();
  EXPECT_EQ(cp.claims.size(), 1U);
  EXPECT_EQ(cp.claims.count(alive.uid), 1U);
  EXPECT_FALSE(fs::exists(SpecPath(gone)));
  EXPECT_FALSE(fs::exists(SpecPath(recreated)));
  EXPECT_TRUE(fs::exists(SpecPath(alive)));
  EXPECT_EQ(Metric("hyperaccel_dra_claims_cleaned_up_total"), 2);
  // The fresh claim with the same name can take the card.
  EXPECT_EQ(p.Prepare({fresh})[fresh.uid].error, "");
}

TEST_F(PreparerTest, UnprepareOfUnknownClaimSucceeds) {
  auto& p = Make();
  ClaimRef ref{"default", "never", "12345678-1234-4234-8234-123456789abc"};
  auto out = p.Unprepare({ref});
  ASSERT_EQ(out.count(ref.uid), 1U);
  EXPECT_EQ(out[ref.uid], "");
}

TEST_F(PreparerTest, UnprepareTwiceAndPrepareRetryAfterClaimIsGone) {
  auto& p = Make();
  const ClaimRef ref = Ours("c", "card-7");
  ASSERT_EQ(p.Prepare({ref})[ref.uid].error, "");
  EXPECT_EQ(p.Unprepare({ref})[ref.uid], "");
  EXPECT_EQ(p.Unprepare({ref})[ref.uid], "");
  EXPECT_FALSE(fs::exists(SpecPath(ref)));
  ASSERT_TRUE(client_->Delete(kube::ResourceClaimPath("default", "c")).ok());
  auto out = p.Prepare({ref});
  EXPECT_NE(out[ref.uid].error.find("not found"), std::string::npos) << out[ref.uid].error;
  EXPECT_FALSE(fs::exists(SpecPath(ref)));
  EXPECT_TRUE(p.Snapshot().claims.empty());
}

TEST_F(PreparerTest, ClaimBeingDeletedIsRefused) {
  auto& p = Make();
  const ClaimRef ref = Ours("dying", "card-0");
  auto obj = api_.Get("resourceclaims", "dying", "default");
  ASSERT_TRUE(obj.has_value());
  (*obj)["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z";
  api_.Upsert("resourceclaims", *obj, "default");
  auto out = p.Prepare({ref});
  EXPECT_NE(out[ref.uid].error.find("being deleted"), std::string::npos) << out[ref.uid].error;
}

TEST_F(PreparerTest, BadUidFromTheKubeletIsAnErrorNotAPath) {
  auto& p = Make();
  ClaimRef ref{"default", "x", "../../etc/passwd"};
  auto out = p.Prepare({ref});
  EXPECT_NE(out[ref.uid].error.find("not a claim UID"), std::string::npos);
}

TEST_F(PreparerTest, ConcurrentPreparesNeverShareACard) {
  auto& p = Make();
  // Eight claims for distinct cards, and eight claims that all want card-0's arc2.
  std::vector<ClaimRef> distinct;
  std::vector<ClaimRef> rivals;
  distinct.reserve(8);
  rivals.reserve(8);
  for (int i = 0; i < 8; ++i) distinct.push_back(Ours("d" + std::to_string(i), "card-" + std::to_string(i)));
  for (int i = 0; i < 8; ++i) rivals.push_back(Ours("r" + std::to_string(i), "arc2-0"));
  std::atomic<int> ok_distinct{0};
  std::atomic<int> ok_rivals{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto a = p.Prepare({distinct[static_cast<size_t>(t)]});
      ok_distinct += a.begin()->second.error.empty();
      auto b = p.Prepare({rivals[static_cast<size_t>(t)]});
      ok_rivals += b.begin()->second.error.empty();
    });
  }
  for (auto& t : threads) t.join();
  // arc2-0 is cards 0 and 2 (link order): those distinct claims may win or lose against a rival.
  auto cp = p.Snapshot();
  std::map<std::string, int> users;
  for (const auto& [uid, e] : cp.claims) {
    EXPECT_EQ(e.state, PrepareState::kCompleted);
    for (const auto& d : e.devices) {
      for (const auto& c : d.cards) ++users[c];
    }
  }
  for (const auto& [card, n] : users) EXPECT_EQ(n, 1) << card;
  EXPECT_LE(ok_rivals.load(), 1);
  EXPECT_GE(ok_distinct.load(), 6);
  EXPECT_EQ(static_cast<size_t>(ok_distinct + ok_rivals), cp.claims.size());
  size_t specs = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/cdi")) specs += e.path().extension() == ".json";
  EXPECT_EQ(specs, cp.claims.size());
  auto on_disk = ParseCheckpoint(ReadText(Options().checkpoint_path));
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(*on_disk, cp);
}

TEST_F(PreparerTest, ASerialThatIsNotUtf8DoesNotThrow) {
  hw::Inventory inv = inventory_;
  inv.cards[1].serial = std::string("XFL\xff\xfe", 5);
  SetPool(inv);
  auto& p = Make();
  const ClaimRef ref = Ours("c", "card-1");
  ASSERT_EQ(p.Prepare({ref})[ref.uid].error, "");
  EXPECT_NE(Env(Spec(ref)["devices"][0])["HYPERACCEL_DEVICE_SERIALS"].find("XFL"), std::string::npos);
}

TEST_F(PreparerTest, CleanupAndPrepareMayRunOnDifferentThreads) {
  auto& p = Make();
  std::vector<ClaimRef> refs;
  refs.reserve(8);
  for (int i = 0; i < 8; ++i) refs.push_back(Ours("c" + std::to_string(i), "card-" + std::to_string(i)));
  std::atomic<bool> stop{false};
  std::thread cleaner([&] {
    while (!stop) EXPECT_TRUE(p.Cleanup().ok());
  });
  for (const auto& r : refs) EXPECT_EQ(p.Prepare({r})[r.uid].error, "");
  stop = true;
  cleaner.join();
  EXPECT_EQ(p.Snapshot().claims.size(), 8U);  // every claim exists: cleanup removed none
}

TEST_F(PreparerTest, BadOptionsFailEveryClaimWithTheReason) {
  auto o = Options();
  o.cdi_kind = "no-slash";
  auto& p = Make(o);
  EXPECT_FALSE(p.recovery_status().ok());
  const ClaimRef ref = Ours("c", "card-0");
  EXPECT_NE(p.Prepare({ref})[ref.uid].error.find("CDI kind"), std::string::npos);
}

// ---- pure parts --------------------------------------------------------------------------------

TEST(PoolDevices, AreExactlyTheDevicesOfTheSlicesWithTheirCards) {
  for (const hw::Inventory& inv :
       {testing::Ring(8), testing::TwoRings(4), testing::Mesh(8), testing::Chain(5), ShuffledRing()}) {
    SliceOptions o;
    o.node_name = "node-1";
    auto slices = BuildSlices(inv, o);
    auto pool = PoolDevices(inv, o);
    ASSERT_TRUE(slices.ok() && pool.ok());
    std::map<std::string, std::set<std::string>> published;  // device -> counters (card<n>)
    for (const auto& slice : slices->slices) {
      if (!slice["spec"].contains("devices")) continue;
      for (const auto& d : slice["spec"]["devices"]) {
        auto& counters = published[d["name"].get<std::string>()];
        if (!d.contains("consumesCounters")) continue;
        for (const auto& c : d["consumesCounters"]) {
          for (const auto& [name, v] : c["counters"].items()) counters.insert(name);
        }
      }
    }
    ASSERT_EQ(published.size(), pool->size());
    for (const auto& d : *pool) {
      ASSERT_EQ(published.count(d.name), 1U) << d.name;
      std::set<std::string> cards;
      for (size_t i = 0; i < d.cards.size(); ++i) {
        cards.insert("card" + std::to_string(d.cards[i]));
        EXPECT_EQ(d.card_ids[i], inv.cards[static_cast<size_t>(d.cards[i])].id);
      }
      if (!published[d.name].empty()) {
        EXPECT_EQ(published[d.name], cards) << d.name;
      }
    }
  }
}

TEST(MinimumCdiVersion, FollowsTheFeaturesUsed) {
  Json base = {{"cdiVersion", "x"},
               {"kind", "a.b/c"},
               {"devices", {{{"name", "dev"}, {"containerEdits", {{"env", {"A=1"}}}}}}}};
  EXPECT_EQ(MinimumCdiVersion(base), "0.3.0");
  Json m = base;
  m["containerEdits"]["mounts"] = {{{"hostPath", "/a"}, {"containerPath", "/a"}, {"type", "bind"}}};
  EXPECT_EQ(MinimumCdiVersion(m), "0.4.0");
  Json d = m;
  d["devices"][0]["name"] = "0dev";
  EXPECT_EQ(MinimumCdiVersion(d), "0.5.0");
  Json h = base;
  h["devices"][0]["containerEdits"]["deviceNodes"] = {{{"path", "/dev/x"}, {"hostPath", "/dev/y"}}};
  EXPECT_EQ(MinimumCdiVersion(h), "0.5.0");
  Json k = base;
  k["kind"] = "a.b/c.d";
  EXPECT_EQ(MinimumCdiVersion(k), "0.6.0");
  EXPECT_EQ(MinimumCdiVersion(Json::array()), "0.3.0");
}

TEST(CdiSchemaChecker, RejectsWhatTheSchemaRejects) {
  dra::testing::CdiSchemaChecker c;
  Json good = {
      {"cdiVersion", "0.3.0"},
      {"kind", "vendor.com/class"},
      {"devices", {{{"name", "dev0"}, {"containerEdits", {{"deviceNodes", {{{"path", "/dev/x"}}}}}}}}}};
  EXPECT_TRUE(c.Check(good).empty());
  auto bad = [&](const std::function<void(Json&)>& f) {
    Json j = good;
    f(j);
    return !c.Check(j).empty();
  };
  EXPECT_TRUE(bad([](Json& j) { j.erase("cdiVersion"); }));
  EXPECT_TRUE(bad([](Json& j) { j["cdiVersion"] = "1.0"; }));
  EXPECT_TRUE(bad([](Json& j) { j["kind"] = "noclass"; }));
  EXPECT_TRUE(bad([](Json& j) { j["kind"] = "-v/c"; }));
  EXPECT_TRUE(bad([](Json& j) { j["devices"] = Json::array(); }));
  EXPECT_TRUE(bad([](Json& j) { j["devices"][0]["name"] = "a/b"; }));
  EXPECT_TRUE(bad([](Json& j) { j["devices"][0]["name"] = "1dev"; }));  // needs 0.5.0
  EXPECT_TRUE(bad([](Json& j) { j["devices"][0]["containerEdits"] = Json::object(); }));
  EXPECT_TRUE(bad([](Json& j) { j["devices"][0]["containerEdits"]["deviceNodes"][0]["path"] = "dev/x"; }));
  EXPECT_TRUE(
      bad([](Json& j) { j["devices"][0]["containerEdits"]["deviceNodes"][0]["hostPath"] = "/dev/y"; }));
  EXPECT_TRUE(bad([](Json& j) {
    j["containerEdits"]["mounts"] = {{{"hostPath", "/a"}, {"containerPath", "rel"}}};
  }));
  EXPECT_TRUE(bad([](Json& j) { j["devices"][0]["containerEdits"]["bogus"] = 1; }));
  EXPECT_TRUE(bad([](Json& j) { j["devices"][0]["containerEdits"]["env"] = {"NOEQUALS"}; }));
}

TEST(Checkpoint, RoundTripsAndRejectsWrongTypesWithoutThrowing) {
  Checkpoint cp;
  cp.claims["u1"] = {
      "ns", "a", PrepareState::kCompleted, {{"r", "node-1", "arc2-0", {"x", "y"}, {"k/c=u1-arc2-0"}}}};
  cp.claims["u2"] = {"ns", "b", PrepareState::kStarted, {}};
  auto back = ParseCheckpoint(SerializeCheckpoint(cp));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, cp);
  for (
      const char* bad :
      {"", "[]", "{}", "{\"version\":2}", "{\"version\":1,\"claims\":[]}",
       "{\"version\":1,\"claims\":{\"u\":5}}",
       "{\"version\":1,\"claims\":{\"u\":{\"namespace\":1,\"name\":\"a\",\"state\":\"started\"}}}",
       "{\"version\":1,\"claims\":{\"u\":{\"namespace\":\"n\",\"name\":\"a\",\"state\":\"done\"}}}",
       R"({"version":1,"claims":{"u":{"namespace":"n","name":"a","state":"started","devices":[{"request":"r","pool":"p","device":"d","cards":[1]}]}}})",
       "{\"version\":1,\"claims\":{\"\":{\"namespace\":\"n\",\"name\":\"a\",\"state\":\"started\"}}}"}) {
    auto r = ParseCheckpoint(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("checkpoint"), std::string::npos);
  }
}

}  // namespace
}  // namespace hyperaccel::dra
