// The real binary: `hyperaccel-dra-driver --emulate=8 --once` publishes valid slices to the
// API-server emulator, and `slices --dry-run` prints them as YAML.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

#include "hyperaccel/testing/apiserver_emulator.h"
#include "process.h"

namespace hyperaccel::testing {
namespace {

namespace fs = std::filesystem;

class DraCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dra-cli-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    // Eight emulated cards (serials EMU-node-1-00..07) cabled into a ring.
    std::ofstream c(dir_ / "cabling.yaml");
    c << "version: 1\nlinks:\n";
    for (int i = 0; i < 8; ++i) {
      char a[16], b[16];
      std::snprintf(a, sizeof a, "%02d", i);
      std::snprintf(b, sizeof b, "%02d", (i + 1) % 8);
      c << "  - a: {node: node-1, serial: EMU-node-1-" << a << ", port: 1}\n"
        << "    b: {node: node-1, serial: EMU-node-1-" << b << ", port: 0}\n";
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Kubeconfig(const std::string& url) {
    std::ofstream(dir_ / "kubeconfig")
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: " << url
        << "\nusers:\n- name: t\n  user:\n    token: x\n"
        << "contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n"
        << "current-context: t\n";
    return (dir_ / "kubeconfig").string();
  }

  fs::path dir_;
};

TEST_F(DraCliTest, EmulateEightOncePublishesValidSlices) {
  ApiServerEmulator api;
  ASSERT_TRUE(api.Start().ok());
  api.PutNode("node-1");
  auto r =
      RunBinary("hyperaccel-dra-driver",
                {"--emulate=8", "--once", "--node-name=node-1", "--admin-address=off",
                 "--cabling=" + (dir_ / "cabling.yaml").string(), "--kubeconfig=" + Kubeconfig(api.url())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto pool = api.Pool("fpga.hyperaccel.ai", "node-1");
  ASSERT_EQ(pool.size(), 2u) << r.err;
  EXPECT_EQ(ValidatePool(pool), "");
  int cards = 0, arcs = 0;
  for (const auto& s : pool) {
    for (const auto& d : s["spec"].value("devices", Json::array())) {
      (d["attributes"]["kind"]["string"] == "card" ? cards : arcs)++;
    }
  }
  EXPECT_EQ(cards, 8);
  EXPECT_EQ(arcs, 4 + 2 + 1);
  EXPECT_EQ(api.Get("nodes", "node-1")->at("metadata").at("labels").at("hyperaccel.ai/dra.arcs"), "true");

  // A second run finds everything in place and writes nothing.
  api.ClearRequests();
  r = RunBinary("hyperaccel-dra-driver",
                {"--emulate=8", "--once", "--node-name=node-1", "--admin-address=off",
                 "--cabling=" + (dir_ / "cabling.yaml").string(), "--kubeconfig=" + Kubeconfig(api.url())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t writes = 0;
  for (const auto& req : api.Requests()) writes += req.method != "GET";
  EXPECT_EQ(writes, 0u);
}

TEST_F(DraCliTest, OnceFailsClearlyWithoutApiServer) {
  auto r = RunBinary("hyperaccel-dra-driver",
                     {"--emulate=2", "--once", "--node-name=node-1", "--admin-address=off",
                      "--kubeconfig=" + Kubeconfig("http://127.0.0.1:1")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("publish failed"), std::string::npos) << r.err;
}

TEST_F(DraCliTest, DryRunPrintsYaml) {
  auto r = RunBinary("hyperaccel-dra-driver",
                     {"--emulate=8", "--node-name=node-1", "--cabling=" + (dir_ / "cabling.yaml").string(),
                      "slices", "--dry-run", "--server-version=1.36"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto docs = YAML::LoadAll(r.out);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0]["kind"].as<std::string>(), "ResourceSlice");
  EXPECT_EQ(docs[0]["spec"]["sharedCounters"][0]["name"].as<std::string>(), "domain-0");
  EXPECT_EQ(docs[1]["spec"]["devices"].size(), 15u);
  auto bad = RunBinary("hyperaccel-dra-driver", {"--emulate=2", "--arc-sizes=2,x", "slices", "--dry-run"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--arc-sizes"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace hyperaccel::testing
