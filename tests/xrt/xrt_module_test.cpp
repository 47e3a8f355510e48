// The XRT probe module (libhyperaccel_xrt_probe.so): loaded only when discovery needs XRT, and a
// wrong file is refused with the reason. Checks that look at /proc/self/maps run in a fresh
// process ("threadsafe" death tests re-execute this binary), so other tests cannot have loaded
// XRT already.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "fake_sysfs.h"
#include "hyperaccel/xrt/discovery.h"
#include "hyperaccel/xrt/sysfs_scanner.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw {
namespace {

const std::string kModule = std::string(HYPERACCEL_TEST_BIN_DIR) + "/libhyperaccel_xrt_probe.so";

bool Mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::stringstream all;
  all << maps.rdbuf();
  return all.str().find(name) != std::string::npos;
}

class XrtModuleTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(XrtModuleTest, TheBuiltModuleLoads) {
  Status st = CheckXrtModule(kModule);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_F(XrtModuleTest, OtherFilesAreRefusedWithTheReason) {
  const std::string text = ::testing::TempDir() + "not-a-module.so";
  std::ofstream(text) << "hello\n";
  Status st = CheckXrtModule(text);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not-a-module.so"), std::string::npos) << st.message();

  // A real shared object, but not ours.
  st = CheckXrtModule("libm.so.6");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("hyperaccel_xrt_module_v1"), std::string::npos) << st.message();

  st = CheckXrtModule("/nonexistent/libhyperaccel_xrt_probe.so");
  EXPECT_FALSE(st.ok());
}

TEST_F(XrtModuleTest, DiscoveryWithoutCardsOrEmulationNeverMapsXrt) {
  EXPECT_EXIT(
      {
        if (Mapped("libxrt_coreutil") || Mapped("libhyperaccel_xrt_probe")) std::_Exit(10);
        // A fake tree with cards: XRT is off (it would probe the real machine).
        testing::FakeSysfs fake;
        fake.Generate(8);
        DiscoveryOptions o;
        o.sysfs_root = fake.root();
        o.node_name = "n";
        auto d = Discovery::Create(o);
        if (!d.ok() || !(*d)->Scan().ok()) std::_Exit(11);
        if (Mapped("libxrt_coreutil") || Mapped("libhyperaccel_xrt_probe")) std::_Exit(12);
        // The real /sys of a machine without Alveo cards: XRT is not loaded either.
        if (ScanSysfs("/sys").cards.empty()) {
          DiscoveryOptions real;
          real.node_name = "n";
          auto r = Discovery::Create(real);
          if (!r.ok()) std::_Exit(13);
          auto inv = (*r)->Scan();
          if (!inv.ok() || inv->facts.xrt_available) std::_Exit(14);
          if (inv->facts.xrt_detail.find("no Alveo card") == std::string::npos) std::_Exit(15);
          if (Mapped("libxrt_coreutil") || Mapped("libhyperaccel_xrt_probe")) std::_Exit(16);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(XrtModuleTest, EmulationLoadsXrtOnDemand) {
  EXPECT_EXIT(
      {
        if (Mapped("libxrt_coreutil")) std::_Exit(10);
        DiscoveryOptions o;
        o.emulate = 2;
        o.node_name = "n";
        auto d = Discovery::Create(o);
        if (!d.ok()) {
          std::fprintf(stderr, "create: %s\n", d.status().ToString().c_str());
          std::_Exit(11);
        }
        auto inv = (*d)->Scan();
        if (!inv.ok() || inv->cards.size() != 2 || !inv->facts.emulation || !inv->facts.xrt_available) {
          std::_Exit(12);
        }
        if (!inv->cards[0].emulated || inv->cards[0].shell.empty()) std::_Exit(13);
        if (!Mapped("libxrt_coreutil") || !Mapped("libhyperaccel_xrt_probe")) std::_Exit(14);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(XrtModuleTest, EmulationWithoutTheModuleFailsWithTheReason) {
  EXPECT_EXIT(
      {
        // The operator's path is the only one tried.
        // NOLINTNEXTLINE(concurrency-mt-unsafe): EXPECT_EXIT runs this in a single-threaded child
        ::setenv("HYPERACCEL_XRT_MODULE", "/nonexistent/libhyperaccel_xrt_probe.so", 1);
        DiscoveryOptions o;
        o.emulate = 2;
        o.node_name = "n";
        auto d = Discovery::Create(o);
        if (d.ok()) std::_Exit(10);
        const std::string& why = d.status().message();
        std::fprintf(stderr, "%s\n", why.c_str());
        if (why.find("not loadable") == std::string::npos || why.find("/nonexistent/") == std::string::npos) {
          std::_Exit(11);
        }
        if (Mapped("libxrt_coreutil")) std::_Exit(12);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "not loadable");
}

}  // namespace
}  // namespace hyperaccel::hw
