// XRT runs in the helper hyperaccel-xrt-probe, never in the daemon:
//  - RunHelper (helper_process.h) against a fake helper that answers, fails, crashes, hangs, floods
//    or leaves processes behind: every case ends with the child reaped and a reason a human can read;
//  - the answers' reader (xrt_wire.h): exact shape, every wrong field named;
//  - the probe over the fake helper: each failure becomes a Status (or XRT unavailable in Facts);
//  - the real helper under XRT emulation, through Discovery, without XRT mapped in this process.
// Checks that look at /proc/self/maps or set the environment run in a fresh process ("threadsafe"
// death tests re-execute this binary).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_sysfs.h"
#include "helper_process.h"
#include "hyperaccel/xrt/discovery.h"
#include "hyperaccel/xrt/sysfs_scanner.h"
#include "hyperaccel/xrt/xrt_probe.h"
#include "xrt_wire.h"

namespace hyperaccel::hw {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const std::string kFake = HYPERACCEL_FAKE_HELPER;
const std::string kRealHelper = HYPERACCEL_XRT_PROBE;

bool Mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::stringstream all;
  all << maps.rdbuf();
  return all.str().find(name) != std::string::npos;
}

// No child of this process is left, not even a zombie.
bool NoChildLeft() {
  int status = 0;
  return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

// Whether process `pid` is gone (or a zombie waiting for its new parent to reap it).
bool GoneOrZombie(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] == 'Z';
}

pid_t GrandchildFrom(const std::string& err) {
  const size_t at = err.find("grandchild ");
  return at == std::string::npos ? -1 : static_cast<pid_t>(std::stoi(err.substr(at + 11)));
}

Result<HelperOutput> RunFake(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = 5000ms) {
  std::vector<std::string> argv{kFake};
  argv.insert(argv.end(), args.begin(), args.end());
  HelperLimits limits;
  limits.timeout = timeout;
  return RunHelper(argv, limits);
}

// ---- the runner -------------------------------------------------------------------------------

TEST(RunHelper, CollectsTheAnswerAndTheExitStatus) {
  auto r = RunFake({"answer", "facts"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->term_signal, 0);
  EXPECT_EQ(Json::parse(r->out)["xrt_version"], "2.13.0");
  EXPECT_GT(r->wall.count(), 0);
  EXPECT_GT(r->max_rss_kib, 0);
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, NonZeroExitKeepsTheLastLineOfStderr) {
  auto r = RunFake({"fail"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(DescribeHelperEnd(*r),
            "exited with status 3: hyperaccel-xrt-probe: XRT emulation: no emulation shim");
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, ACrashIsReportedWithItsSignal) {
  auto r = RunFake({"crash"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->term_signal, SIGSEGV);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(DescribeHelperEnd(*r), "killed by signal 11 (SIGSEGV): about to crash");
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, AHelperPastTheDeadlineIsKilledAndReaped) {
  const auto start = std::chrono::steady_clock::now();
  auto r = RunFake({"sleep"}, 300ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(r.status().message().find("no answer within 300 ms (killed)"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find(kFake), std::string::npos);
  EXPECT_LT(took, 10s);  // not the helper's 30 s (generous: the machine may be loaded)
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, ClosedOutputWithoutExitStillMeetsTheDeadline) {
  // Long enough for the fake to start and close its output first, even on a loaded machine.
  auto r = RunFake({"close-and-sleep"}, 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(r.status().message().find("did not exit"), std::string::npos) << r.status().message();
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, TheDeadlineKillsWhatTheHelperStarted) {
  const std::string pidfile = ::testing::TempDir() + "fake-helper-grandchild.pid";
  std::remove(pidfile.c_str());
  // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
  ::setenv("HYPERACCEL_FAKE_PIDFILE", pidfile.c_str(), 1);
  auto r = RunFake({"sleep-grandchild"}, 2000ms);
  // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test
  ::unsetenv("HYPERACCEL_FAKE_PIDFILE");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(NoChildLeft());
  pid_t grandchild = -1;
  std::ifstream(pidfile) >> grandchild;
  ASSERT_GT(grandchild, 0) << "the fake helper did not start its grandchild";
  // Killed with the helper's process group, not left sleeping for 30 s.
  for (int i = 0; i < 100 && !GoneOrZombie(grandchild); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(GoneOrZombie(grandchild));
}

TEST(RunHelper, AProcessLeftHoldingTheOutputDoesNotHoldTheCaller) {
  const auto start = std::chrono::steady_clock::now();
  auto r = RunFake({"grandchild"}, 5000ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(Json::parse(r->out)["detail"], "ok");
  EXPECT_LT(took, 4s);  // the grandchild sleeps 30 s with the pipe open
  const pid_t grandchild = GrandchildFrom(r->err_tail);
  ASSERT_GT(grandchild, 0) << r->err_tail;
  // Killed with the helper's process group.
  for (int i = 0; i < 100 && !GoneOrZombie(grandchild); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(GoneOrZombie(grandchild));
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, OversizedOutputIsRefused) {
  auto r = RunFake({"flood"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("larger than"), std::string::npos) << r.status().message();
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, LotsOfStderrNeitherBlocksNorGrowsWithoutBound) {
  auto r = RunFake({"chatty"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(Json::parse(r->out)["detail"], "after noise");
  EXPECT_LE(r->err_tail.size(), HelperLimits{}.max_stderr_kept);
  EXPECT_NE(r->err_tail.find("last words"), std::string::npos);
}

TEST(RunHelper, MissingProgramIsAnErrorNotACrash) {
  auto r = RunHelper({"/nonexistent/hyperaccel-xrt-probe", "facts"}, HelperLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/hyperaccel-xrt-probe: cannot start"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(RunHelper({}, HelperLimits{}).ok());
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunHelper, TheChildGetsACleanStart) {
  // What a daemon has set for itself must not reach the helper: ignored SIGPIPE, blocked signals,
  // its open descriptors; the environment is inherited.
  sigset_t block;
  sigset_t old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  auto* previous = std::signal(SIGPIPE, SIG_IGN);
  // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
  ::setenv("HYPERACCEL_FAKE_MARKER", "inherited", 1);
  auto r = RunFake({"environment"});
  // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test
  ::unsetenv("HYPERACCEL_FAKE_MARKER");
  std::signal(SIGPIPE, previous);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Json j = Json::parse(r->out);
  EXPECT_TRUE(j["sigpipe_default"].get<bool>());
  EXPECT_FALSE(j["usr1_blocked"].get<bool>());
  EXPECT_TRUE(j["stdin_eof"].get<bool>());
  EXPECT_EQ(j["extra_fds"].get<int>(), 0);
  EXPECT_TRUE(j["own_group"].get<bool>());
  EXPECT_EQ(j["marker"], "inherited");
}

TEST(RunHelper, ConcurrentRunsDoNotMixTheirPipes) {
  std::vector<std::thread> threads;
  std::vector<std::string> answers(4);
  for (size_t i = 0; i < answers.size(); ++i) {
    threads.emplace_back([&answers, i] {
      auto r = RunFake({"answer", "cards", "0000:0" + std::to_string(i) + ":00.1"});
      answers[i] = r.ok() ? r->out : r.status().message();
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_NE(answers[i].find("0000:0" + std::to_string(i) + ":00.1"), std::string::npos) << answers[i];
  }
  EXPECT_TRUE(NoChildLeft());
}

// ---- the answers ------------------------------------------------------------------------------

TEST(XrtWire, CardsRoundTrip) {
  XrtCardInfo c;
  c.bdf = "0000:3b:00.1";
  c.name = "xilinx_u55c_gen3x16_xdma_base_3";
  c.serial = "XFL1ABCDEF";
  c.xclbin_uuid = "0123";
  c.last_error = "AXI firewall trip";
  c.sensors.fpga_temp_c = 41.5;
  c.sensors.vccint_v = 0.85;
  c.sensors.cage_temp_c = {30.0, std::nullopt};
  c.sensors.bad_readings = {"hbm temperature reading out of range: \"1e400\""};
  const Json answer = {{"v", 1}, {"cards", {{{"bdf", c.bdf}, {"info", wire::CardToJson(c)}}}}};
  auto parsed = wire::ParseAnswer(answer.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  auto cards = wire::CardsFromJson(*parsed, {c.bdf});
  ASSERT_TRUE(cards.ok()) << cards.status().ToString();
  ASSERT_EQ(cards->size(), 1U);
  ASSERT_TRUE((*cards)[0].ok());
  const XrtCardInfo& back = *(*cards)[0];
  EXPECT_EQ(back.bdf, c.bdf);
  EXPECT_EQ(back.name, c.name);
  EXPECT_EQ(back.serial, c.serial);
  EXPECT_EQ(back.xclbin_uuid, c.xclbin_uuid);
  EXPECT_EQ(back.last_error, c.last_error);
  EXPECT_EQ(back.sensors.fpga_temp_c, 41.5);
  EXPECT_FALSE(back.sensors.hbm_temp_c.has_value());
  EXPECT_EQ(back.sensors.vccint_v, 0.85);
  ASSERT_EQ(back.sensors.cage_temp_c.size(), 2U);
  EXPECT_EQ(back.sensors.cage_temp_c[0], 30.0);
  EXPECT_FALSE(back.sensors.cage_temp_c[1].has_value());
  EXPECT_EQ(back.sensors.bad_readings, c.sensors.bad_readings);
}

TEST(XrtWire, BadAnswersAreRefusedWithTheReason) {
  auto message = [](const Result<Json>& r) { return r.ok() ? std::string("ok") : r.status().message(); };
  EXPECT_NE(message(wire::ParseAnswer("")).find("empty answer"), std::string::npos);
  EXPECT_NE(message(wire::ParseAnswer("{\"v\":1,\"xrt")).find("malformed answer (11 bytes)"),
            std::string::npos);
  EXPECT_NE(message(wire::ParseAnswer("[1]")).find("answer is array"), std::string::npos);
  EXPECT_NE(message(wire::ParseAnswer("{}")).find("no protocol version"), std::string::npos);
  EXPECT_NE(message(wire::ParseAnswer("{\"v\":2}")).find("protocol version 2, expected 1"),
            std::string::npos);

  const Json facts = {
      {"v", 1}, {"xrt_available", "yes"}, {"xrt_version", ""}, {"xrt_detail", ""}, {"emulation", false}};
  auto f = wire::FactsFromJson(facts);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "field \"xrt_available\" is string, expected boolean");
  EXPECT_EQ(wire::FactsFromJson(Json{{"v", 1}}).status().message(), "field \"xrt_available\" missing");

  const Json card = Json::parse(R"({"bdf":"a","name":"n","serial":"s","xclbin_uuid":"","last_error":"",
      "sensors":{"fpga_temp_c":"hot","cage_temp_c":[],"bad_readings":[]}})");
  EXPECT_EQ(wire::CardFromJson(card).status().message(),
            "sensors: field \"fpga_temp_c\" is string, expected number");
  Json no_cages = card;
  no_cages["sensors"] = {{"bad_readings", Json::array()}};
  EXPECT_EQ(wire::CardFromJson(no_cages).status().message(), "sensors: field \"cage_temp_c\" missing");
  Json bad_cage = card;
  bad_cage["sensors"] = {{"cage_temp_c", {true}}, {"bad_readings", Json::array()}};
  EXPECT_EQ(wire::CardFromJson(bad_cage).status().message(),
            "sensors: field \"cage_temp_c[]\" is boolean, expected number or null");

  // The cards answer must be about exactly the cards asked for, in order.
  const Json two = {{"v", 1}, {"cards", {{{"bdf", "x"}, {"error", "e"}}}}};
  EXPECT_EQ(wire::CardsFromJson(two, {"x", "y"}).status().message(),
            "answer lists 1 cards, 2 were asked for");
  EXPECT_EQ(wire::CardsFromJson(two, {"y"}).status().message(), "cards[0] is card x, expected y");
  const Json neither = {{"v", 1}, {"cards", {{{"bdf", "x"}}}}};
  EXPECT_EQ(wire::CardsFromJson(neither, {"x"}).status().message(),
            "cards[0]: neither \"info\" nor \"error\"");
  auto one_error = wire::CardsFromJson(two, {"x"});
  ASSERT_TRUE(one_error.ok());
  EXPECT_EQ((*one_error)[0].status().message(), "card x: e");
  EXPECT_EQ(wire::EmulatedFromJson(Json{{"v", 1}, {"devices", {{{"bdf", 7}}}}}).status().message(),
            "devices[0]: field \"bdf\" is number, expected string");
}

// ---- the probe over a fake helper -------------------------------------------------------------

// Runs `body` in a fresh process with HYPERACCEL_FAKE_HELPER_MODE=mode (the probe passes the
// request as the helper's arguments, so the mode comes from the environment).
class FakeHelperProbe : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  static std::shared_ptr<XrtProbe> Probe(const char* mode, std::chrono::milliseconds timeout = 5000ms) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
    ::setenv("HYPERACCEL_FAKE_HELPER_MODE", mode, 1);
    return MakeXrtHelperProbe(kFake, timeout);
  }
  void TearDown() override { ::unsetenv("HYPERACCEL_FAKE_HELPER_MODE"); }  // NOLINT(concurrency-mt-unsafe)
};

TEST_F(FakeHelperProbe, AnswersBecomeValues) {
  auto probe = Probe("answer");
  NodeFacts f = probe->Facts();
  EXPECT_TRUE(f.xrt_available);
  EXPECT_EQ(f.xrt_version, "2.13.0");
  EXPECT_EQ(f.xrt_detail, "driver xocl; 2 ready device(s)");
  auto cards = probe->ProbeCards({"0000:3b:00.1", "0000:ff:00.1", "0000:5e:00.1"});
  ASSERT_EQ(cards.size(), 3U);
  ASSERT_TRUE(cards[0].ok()) << cards[0].status().ToString();
  EXPECT_EQ(cards[0]->serial, "XFL1FAKE3b");
  EXPECT_EQ(cards[0]->sensors.fpga_temp_c, 41.5);
  EXPECT_EQ(cards[0]->sensors.power_w, 23.0);
  EXPECT_EQ(cards[1].status().message(), "card 0000:ff:00.1: XRT cannot open it: No such device");
  EXPECT_EQ(cards[2]->serial, "XFL1FAKE5e");
  auto one = probe->ProbeCard("0000:5e:00.1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->bdf, "0000:5e:00.1");
  EXPECT_TRUE(probe->ProbeCards({}).empty());
  auto emulated = probe->OpenEmulated();
  ASSERT_TRUE(emulated.ok());
  EXPECT_EQ(emulated->size(), 2U);
  EXPECT_TRUE(NoChildLeft());
}

TEST_F(FakeHelperProbe, EveryFailureIsAReasonForEveryCard) {
  struct Case {
    const char* mode;
    const char* reason;
  };
  for (const Case& c :
       {Case{"fail", "exited with status 3: hyperaccel-xrt-probe: XRT emulation: no emulation shim"},
        Case{"crash", "killed by signal 11 (SIGSEGV)"}, Case{"malformed", "malformed answer"},
        Case{"truncated", "malformed answer"}, Case{"empty", "empty answer"},
        Case{"not-object", "answer is array"}, Case{"wrong-version", "protocol version 99"},
        Case{"wrong-types", "field \"cards\" is object, expected array"},
        Case{"wrong-cards", "answer lists 1 cards, 2 were asked for"},
        Case{"sleep", "no answer within 200 ms"}}) {
    // Only the hanging helper meets the short deadline; the others get time to start on a loaded machine.
    auto probe = Probe(c.mode, std::string(c.mode) == "sleep" ? 200ms : 10000ms);
    auto cards = probe->ProbeCards({"0000:3b:00.1", "0000:5e:00.1"});
    ASSERT_EQ(cards.size(), 2U) << c.mode;
    for (size_t i = 0; i < cards.size(); ++i) {
      ASSERT_FALSE(cards[i].ok()) << c.mode;
      const std::string& why = cards[i].status().message();
      EXPECT_EQ(why.rfind(std::string("card ") + (i == 0 ? "0000:3b:00.1" : "0000:5e:00.1") + ": ", 0), 0U)
          << c.mode << ": " << why;
      EXPECT_NE(why.find(c.reason), std::string::npos) << c.mode << ": " << why;
      EXPECT_NE(why.find(kFake), std::string::npos) << c.mode << ": " << why;
    }
    EXPECT_TRUE(NoChildLeft()) << c.mode;
  }
}

TEST_F(FakeHelperProbe, FactsSayWhyXrtIsUnavailable) {
  NodeFacts f = Probe("wrong-types")->Facts();
  EXPECT_FALSE(f.xrt_available);
  EXPECT_NE(f.xrt_detail.find("field \"xrt_available\" is string, expected boolean"), std::string::npos)
      << f.xrt_detail;
  f = Probe("crash")->Facts();
  EXPECT_FALSE(f.xrt_available);
  EXPECT_NE(f.xrt_detail.find("XRT probe helper " + kFake + " facts: killed by signal 11"), std::string::npos)
      << f.xrt_detail;
  auto emulated = Probe("wrong-types")->OpenEmulated();
  ASSERT_FALSE(emulated.ok());
  EXPECT_NE(emulated.status().message().find("devices[0]: field \"bdf\" is number"), std::string::npos)
      << emulated.status().message();
}

TEST_F(FakeHelperProbe, DiscoveryContinuesFromSysfsWhenTheHelperFails) {
  testing::FakeSysfs fake;
  fake.Generate(2);
  DiscoveryOptions o;
  o.sysfs_root = fake.root();
  o.node_name = "n";
  // Facts work, then every card batch crashes: the cards still come from sysfs, healthy.
  class FactsOnly : public XrtProbe {
   public:
    explicit FactsOnly(std::shared_ptr<XrtProbe> broken) : broken_(std::move(broken)) {}
    NodeFacts Facts() override {
      NodeFacts f;
      f.xrt_available = true;
      f.xrt_detail = "driver xocl";
      return f;
    }
    Result<XrtCardInfo> ProbeCard(const std::string& bdf) override { return broken_->ProbeCard(bdf); }
    std::vector<Result<XrtCardInfo>> ProbeCards(const std::vector<std::string>& bdfs) override {
      ++batches;
      return broken_->ProbeCards(bdfs);
    }
    Result<std::vector<XrtCardInfo>> OpenEmulated() override { return broken_->OpenEmulated(); }
    int batches = 0;

   private:
    std::shared_ptr<XrtProbe> broken_;
  };
  auto probe = std::make_shared<FactsOnly>(Probe("crash"));
  DiscoveryDeps deps;
  deps.xrt = probe;
  auto d = Discovery::Create(o, deps);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto inv = (*d)->Scan();
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  ASSERT_EQ(inv->cards.size(), 2U);
  for (const Card& c : inv->cards) {
    EXPECT_EQ(c.health, Health::kHealthy) << c.id;
    EXPECT_FALSE(c.serial.empty());  // from sysfs
  }
  EXPECT_EQ(probe->batches, 1);  // one helper run for the whole scan
  EXPECT_TRUE(NoChildLeft());
}

// ---- the real helper --------------------------------------------------------------------------

class RealHelper : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(RealHelper, UsageErrorsAreClear) {
  auto r = RunHelper({kRealHelper, "bogus"}, HelperLimits{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_TRUE(r->out.empty());
  EXPECT_NE(r->err_tail.find("unknown request \"bogus\""), std::string::npos) << r->err_tail;
  r = RunHelper({kRealHelper}, HelperLimits{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  r = RunHelper({kRealHelper, "facts", "extra"}, HelperLimits{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
}

TEST_F(RealHelper, DiscoveryWithoutCardsOrEmulationNeverRunsXrt) {
  EXPECT_EXIT(
      {
        // A fake tree with cards: XRT is off (it would probe the real machine).
        testing::FakeSysfs fake;
        fake.Generate(8);
        DiscoveryOptions o;
        o.sysfs_root = fake.root();
        o.node_name = "n";
        auto d = Discovery::Create(o);
        if (!d.ok() || !(*d)->Scan().ok()) std::_Exit(11);
        if (Mapped("libxrt_coreutil")) std::_Exit(12);
        // The real /sys of a machine without Alveo cards: no helper run either.
        if (ScanSysfs("/sys").cards.empty()) {
          DiscoveryOptions real;
          real.node_name = "n";
          auto r = Discovery::Create(real);
          if (!r.ok()) std::_Exit(13);
          auto inv = (*r)->Scan();
          if (!inv.ok() || inv->facts.xrt_available) std::_Exit(14);
          if (inv->facts.xrt_detail.find("no Alveo card") == std::string::npos) std::_Exit(15);
          if (inv->facts.opencl_detail != "not probed (XRT not loaded)") std::_Exit(16);
        }
        std::_Exit(NoChildLeft() ? 0 : 17);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(RealHelper, EmulationRunsXrtInTheHelperOnly) {
  EXPECT_EXIT(
      {
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
        if (!inv->cards[0].emulated || inv->cards[0].shell != "xilinx_u55c_gen3x16_xdma_3_202210_1")
          std::_Exit(13);
        if (inv->facts.xrt_version.empty() || inv->facts.xrt_detail != "software emulation (sw_emu)")
          std::_Exit(14);
        if (inv->facts.opencl_detail.empty()) std::_Exit(15);
        // XRT, its shims and the C++ runtime they need stayed in the helper.
        if (Mapped("libxrt_coreutil") || Mapped("libxrt_swemu") || Mapped("libOpenCL")) std::_Exit(16);
        std::_Exit(NoChildLeft() ? 0 : 17);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(RealHelper, EmulationWithoutTheHelperFailsWithTheReason) {
  EXPECT_EXIT(
      {
        // The operator's path is the only one tried.
        // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
        ::setenv("HYPERACCEL_XRT_PROBE", "/nonexistent/hyperaccel-xrt-probe", 1);
        DiscoveryOptions o;
        o.emulate = 2;
        o.node_name = "n";
        auto d = Discovery::Create(o);
        if (d.ok()) std::_Exit(10);
        const std::string& why = d.status().message();
        std::fprintf(stderr, "%s\n", why.c_str());
        if (why.find("not found") == std::string::npos || why.find("/nonexistent/") == std::string::npos) {
          std::_Exit(11);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "not found");
}

TEST_F(RealHelper, AHelperThatIsNotOneFailsEmulationWithTheReason) {
  EXPECT_EXIT(
      {
        // An executable that is not the helper (a crash on every request).
        // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
        ::setenv("HYPERACCEL_XRT_PROBE", kFake.c_str(), 1);
        // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
        ::setenv("HYPERACCEL_FAKE_HELPER_MODE", "crash", 1);
        // NOLINTNEXTLINE(concurrency-mt-unsafe): a single-threaded test or death-test child
        ::setenv("XILINX_XRT", "/nonexistent-xrt", 1);
        DiscoveryOptions o;
        o.emulate = 2;
        o.node_name = "n";
        auto d = Discovery::Create(o);
        if (d.ok()) std::_Exit(10);
        std::fprintf(stderr, "%s\n", d.status().message().c_str());
        std::_Exit(NoChildLeft() ? 0 : 11);
      },
      ::testing::ExitedWithCode(0), "emulated: killed by signal 11");
}

}  // namespace
}  // namespace hyperaccel::hw
