// The dashboard and the alerts in manifests/monitoring use only metrics our daemons export. The
// daemons are the real binaries: the device plugin registered with the kubelet simulator (and one
// container admitted, so the allocation families have samples), the topology agent publishing to
// the API-server emulator, and the Volcano bridge; each /metrics is scraped over HTTP.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "hyperaccel/kubelet_sim/kubelet_sim.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "process.h"
#include "promql.h"

namespace hyperaccel::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): tests read it once
  return v != nullptr ? v : "";
}

// One of our binaries as a child process, stopped (SIGTERM, then SIGKILL) on destruction.
class RunningDaemon {
 public:
  RunningDaemon(const std::string& binary, const std::vector<std::string>& args, const std::string& log) {
    const std::string path = Env("HYPERACCEL_BIN_DIR") + "/" + binary;
    if (access(path.c_str(), X_OK) != 0) {
      error_ = path + " not found (build it first)";
      return;
    }
    pid_ = SpawnDaemon(path, args, log);
    if (pid_ < 0) error_ = "cannot start " + path;
  }
  ~RunningDaemon() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  RunningDaemon(const RunningDaemon&) = delete;
  RunningDaemon& operator=(const RunningDaemon&) = delete;
  const std::string& error() const { return error_; }

 private:
  pid_t pid_ = -1;
  std::string error_;
};

// Scrapes http://127.0.0.1:port/metrics until `ready` holds (or the deadline passes).
std::string Scrape(int port, const std::function<bool(const std::string&)>& ready,
                   std::chrono::seconds deadline = std::chrono::seconds(60)) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::string last;
  while (std::chrono::steady_clock::now() < until) {
    auto res = client.Get("/metrics");
    if (res && res->status == 200) {
      last = res->body;
      if (ready(last)) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return last;
}

// Metric families of a Prometheus text exposition, with their types.
std::map<std::string, std::string> Families(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name, type;
      l >> name >> type;
      out[name] = type;
    }
  }
  return out;
}

// True when `name` (as used in PromQL) is a series of one of `families`.
bool Exported(const std::map<std::string, std::string>& families, const std::string& name) {
  if (families.count(name) != 0) return true;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto it = families.find(name.substr(0, name.size() - s.size()));
      if (it != families.end() && (it->second == "histogram" || it->second == "summary")) return true;
    }
  }
  return false;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string MonitoringDir() { return Env("HYPERACCEL_SOURCE_DIR") + "/manifests/monitoring"; }

// Every PromQL expression of the dashboard (panel targets, nested rows, variable queries).
std::vector<std::pair<std::string, std::string>> DashboardExprs(const json& dash) {
  std::vector<std::pair<std::string, std::string>> out;
  std::function<void(const json&)> walk = [&](const json& panels) {
    for (const auto& p : panels) {
      for (const auto& t : p.value("targets", json::array())) {
        out.emplace_back(p.value("title", "?"), t.value("expr", ""));
      }
      if (p.contains("panels")) walk(p["panels"]);
    }
  };
  walk(dash.value("panels", json::array()));
  return out;
}

// ---- the PromQL reader itself ----------------------------------------------------------------------

TEST(PromQl, FindsMetricsNotFunctionsLabelsOrKeywords) {
  auto n = MetricNames(
      R"(histogram_quantile(0.99, sum by (le, verb) (rate(hyperaccel_bridge_request_seconds_bucket{verb=~"pred|prio"}[5m]))) > 0.5)");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, std::set<std::string>{"hyperaccel_bridge_request_seconds_bucket"});
  n = MetricNames(R"(sum(a_total) / clamp_min(sum(b{node=~"$node"}), 1) and on(node) c offset 5m)");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, (std::set<std::string>{"a_total", "b", "c"}));
  n = MetricNames("count by (node) (x) == 0 or time() - y[$__rate_interval] > 1e-3");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, (std::set<std::string>{"x", "y"}));
  n = MetricNames("sum(rate(x[5m])) without (pod) unless max(z) by (node)");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, (std::set<std::string>{"x", "z"}));
}

TEST(PromQl, RejectsBrokenExpressions) {
  EXPECT_FALSE(MetricNames("sum(rate(x[5m])").ok());
  EXPECT_FALSE(MetricNames("rate(x[5m]))").ok());
  EXPECT_FALSE(MetricNames("ratee(x[5m])").ok());
  EXPECT_FALSE(MetricNames(R"(x{node~"a"})").ok());
  EXPECT_FALSE(MetricNames(R"(x{node="a)").ok());
  EXPECT_FALSE(MetricNames("x[5m").ok());
  EXPECT_FALSE(MetricNames("sum by node (x)").ok());
}

// ---- the real daemons ------------------------------------------------------------------------------

class MonitoringTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/hamon-XXXXXX";  // short: unix socket paths are limited
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    families_ = new std::map<std::string, std::map<std::string, std::string>>();
    const std::string& dir = *dir_;

    // Kubelet simulator + device plugin (2 emulated cards), one 2-card container admitted.
    kubelet_sim::Options ko;
    ko.dir = dir + "/dp";
    ko.pod_resources_socket = dir + "/pr.sock";
    auto* kubelet = new kubelet_sim::KubeletSim(ko);
    kubelet_ = kubelet;
    ASSERT_TRUE(kubelet->Start().ok());
    const int dp_port = FreeLoopbackPort();
    RunningDaemon plugin("hyperaccel-device-plugin",
                         {"--emulate=2", "--node-name=mon-node", "--kubelet-dir=" + ko.dir,
                          "--metrics-address=127.0.0.1:" + std::to_string(dp_port), "--rescan-ms=500"},
                         dir + "/device-plugin.log");
    ASSERT_TRUE(plugin.error().empty()) << plugin.error();
    ASSERT_TRUE(kubelet->WaitForRegistrations("hyperaccel.ai/fpga", 1, std::chrono::seconds(60)))
        << ReadFile(dir + "/device-plugin.log");
    ASSERT_TRUE(kubelet->WaitForDevices(
        "hyperaccel.ai/fpga", [](const auto& d) { return d.size() == 2; }, std::chrono::seconds(60)));
    kubelet_sim::AdmitRequest admit;
    admit.resource = "hyperaccel.ai/fpga";
    admit.count = 2;
    auto admitted = kubelet->AdmitContainer(admit);
    ASSERT_TRUE(admitted.ok()) << admitted.status().message();
    (*families_)["device-plugin"] = Families(Scrape(dp_port, [](const std::string& m) {
      return m.find("hyperaccel_device_plugin_registered{resource=\"hyperaccel.ai/fpga\"} 1") !=
             std::string::npos;
    }));

    // API-server emulator + topology agent (same node; allocation from the kubelet simulator).
    ApiServerEmulator api;
    ASSERT_TRUE(api.Start(0).ok());
    api.AddToken("mon");
    api.PutNode("mon-node", {{"kubernetes.io/hostname", "mon-node"}});
    std::ofstream(dir + "/kubeconfig")
        << "apiVersion: v1\nkind: Config\ncurrent-context: m\nclusters:\n- name: m\n"
        << "  cluster: {server: \"" << api.url() << "\"}\nusers:\n- name: m\n"
        << "  user: {token: mon}\ncontexts:\n- name: m\n  context: {cluster: m, user: m}\n";
    const int agent_port = FreeLoopbackPort();
    {
      RunningDaemon agent(
          "hyperaccel-topology-agent",
          {"run", "--emulate=2", "--node-name=mon-node", "--kubeconfig=" + dir + "/kubeconfig",
           "--pod-resources-socket=" + ko.pod_resources_socket, "--poll-interval=0.2",
           "--admin-address=127.0.0.1:" + std::to_string(agent_port)},
          dir + "/topology-agent.log");
      ASSERT_TRUE(agent.error().empty()) << agent.error();
      (*families_)["topology-agent"] = Families(Scrape(agent_port, [](const std::string& m) {
        return m.find("hyperaccel_agent_reconciles_total{result=\"ok\"}") != std::string::npos;
      }));
    }
    api.Stop();

    // Volcano bridge.
    const int bridge_port = FreeLoopbackPort();
    RunningDaemon bridge("hyperaccel-volcano-bridge", {"--listen=127.0.0.1:" + std::to_string(bridge_port)},
                         dir + "/volcano-bridge.log");
    ASSERT_TRUE(bridge.error().empty()) << bridge.error();
    (*families_)["volcano-bridge"] = Families(Scrape(bridge_port, [](const std::string& m) {
      return m.find("hyperaccel_bridge_requests_total") != std::string::npos;
    }));
  }

  static void TearDownTestSuite() {
    delete kubelet_;
    kubelet_ = nullptr;
    if (dir_ != nullptr && Env("HYPERACCEL_KEEP_LOGS").empty()) {
      std::error_code ec;
      fs::remove_all(*dir_, ec);
    }
    delete dir_;
    dir_ = nullptr;
    delete families_;
    families_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(families_, nullptr);
    for (const char* d : {"device-plugin", "topology-agent", "volcano-bridge"}) {
      ASSERT_FALSE((*families_)[d].empty()) << d << " exported no metric families (logs in " << *dir_ << ")";
    }
  }

  static std::map<std::string, std::string> All() {
    std::map<std::string, std::string> all;
    for (const auto& [daemon, fams] : *families_) all.insert(fams.begin(), fams.end());
    return all;
  }

  static inline std::string* dir_ = nullptr;
  static inline kubelet_sim::KubeletSim* kubelet_ = nullptr;
  static inline std::map<std::string, std::map<std::string, std::string>>* families_ = nullptr;
};

TEST_F(MonitoringTest, EachDaemonExportsItsOwnFamilies) {
  const auto& f = *families_;
  EXPECT_EQ(f.at("device-plugin").count("hyperaccel_device_plugin_card_healthy"), 1U);
  EXPECT_EQ(f.at("device-plugin").at("hyperaccel_device_plugin_preferred_allocation_duration_seconds"),
            "histogram");
  EXPECT_EQ(f.at("topology-agent").count("hyperaccel_agent_largest_free_linked_cards"), 1U);
  EXPECT_EQ(f.at("volcano-bridge").at("hyperaccel_bridge_request_seconds"), "histogram");
}

TEST_F(MonitoringTest, DashboardUsesOnlyExportedMetrics) {
  const json dash = json::parse(ReadFile(MonitoringDir() + "/dashboard.json"));
  const auto all = All();
  const auto exprs = DashboardExprs(dash);
  ASSERT_GE(exprs.size(), 20U);
  std::set<std::string> used;
  for (const auto& [title, expr] : exprs) {
    auto names = MetricNames(expr);
    ASSERT_TRUE(names.ok()) << title << ": " << expr << ": " << names.status().message();
    EXPECT_FALSE(names->empty()) << title << ": " << expr;
    for (const auto& n : *names) {
      EXPECT_TRUE(Exported(all, n)) << "panel '" << title << "' uses " << n << ", which no daemon exports";
      used.insert(n);
    }
  }
  // Variable queries: label_values(<metric>, <label>).
  const std::regex label_values(R"(label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*))");
  for (const auto& v : dash["templating"]["list"]) {
    if (v.value("type", "") != "query") continue;
    const std::string q =
        v["query"].is_object() ? v["query"].value("query", "") : v["query"].get<std::string>();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(q, m, label_values)) << q;
    EXPECT_TRUE(Exported(all, m[1])) << "variable " << v["name"] << " uses " << m[1];
  }
  // The issue's list: cards and health per node, allocations, preferred-allocation latency, bridge
  // rates and latencies, HyperNode writes, fragmentation.
  for (const char* must :
       {"hyperaccel_device_plugin_card_healthy", "hyperaccel_device_plugin_allocations_total",
        "hyperaccel_device_plugin_preferred_allocation_duration_seconds_bucket",
        "hyperaccel_bridge_requests_total", "hyperaccel_bridge_request_seconds_bucket",
        "hyperaccel_agent_hypernode_writes_total", "hyperaccel_agent_cards_stranded",
        "hyperaccel_agent_largest_free_linked_cards"}) {
    EXPECT_EQ(used.count(must), 1U) << "the dashboard shows no " << must;
  }
}

TEST_F(MonitoringTest, AlertsUseOnlyExportedMetricsAndSayWhatToDo) {
  const YAML::Node rule = YAML::LoadFile(MonitoringDir() + "/prometheusrule.yaml");
  ASSERT_EQ(rule["kind"].as<std::string>(), "PrometheusRule");
  const auto all = All();
  std::set<std::string> alerts;
  for (const auto& group : rule["spec"]["groups"]) {
    for (const auto& r : group["rules"]) {
      const std::string name = r["alert"].as<std::string>("");
      ASSERT_FALSE(name.empty()) << "only alerting rules here";
      alerts.insert(name);
      const std::string expr = r["expr"].as<std::string>();
      auto names = MetricNames(expr);
      ASSERT_TRUE(names.ok()) << name << ": " << names.status().message();
      EXPECT_FALSE(names->empty()) << name;
      for (const auto& n : *names)
        EXPECT_TRUE(Exported(all, n)) << name << " uses " << n << ", which no daemon exports";
      EXPECT_TRUE(r["for"]) << name << ": no 'for' (alerts must not fire on one scrape)";
      const std::string severity = r["labels"]["severity"].as<std::string>("");
      EXPECT_TRUE(severity == "warning" || severity == "critical") << name;
      EXPECT_FALSE(r["annotations"]["summary"].as<std::string>("").empty()) << name;
      EXPECT_GT(r["annotations"]["description"].as<std::string>("").size(), 200U)
          << name << ": a runbook, please";
    }
  }
  EXPECT_EQ(alerts, (std::set<std::string>{"HyperAccelCardUnhealthy", "HyperAccelDevicePluginNotRegistered",
                                           "HyperAccelBridgeSlowerThanVolcanoTimeout",
                                           "HyperAccelAgentCannotPublish"}));
}

TEST_F(MonitoringTest, BridgeAlertThresholdIsTheShippedVolcanoTimeout) {
  // The alert compares with extender.httpTimeout as shipped in the scheduler configuration.
  const std::string conf =
      ReadFile(Env("HYPERACCEL_SOURCE_DIR") + "/manifests/base/volcano/volcano-scheduler.conf");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(conf, m, std::regex(R"(extender\.httpTimeout:\s*"?(\d+)ms)"))) << conf;
  const double timeout_s = std::stod(m[1]) / 1000.0;
  const YAML::Node rule = YAML::LoadFile(MonitoringDir() + "/prometheusrule.yaml");
  bool found = false;
  for (const auto& r : rule["spec"]["groups"][0]["rules"]) {
    if (r["alert"].as<std::string>() != "HyperAccelBridgeSlowerThanVolcanoTimeout") continue;
    found = true;
    std::smatch t;
    const std::string expr = r["expr"].as<std::string>();
    ASSERT_TRUE(std::regex_search(expr, t, std::regex(R"(>\s*([0-9.]+)\s*$)"))) << expr;
    EXPECT_DOUBLE_EQ(std::stod(t[1]), timeout_s);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace hyperaccel::testing
