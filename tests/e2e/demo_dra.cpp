// `make demo-dra`: the DRA path end to end on emulated cards with our real binary.
//   1. the API-server emulator and hyperaccel-dra-driver (--emulate=8, an 8-card ring,
//      --kubelet-plugin) with its kubelet directory and CDI directory in a scratch folder;
//   2. wait for the node's ResourceSlices; choose a 4-card arc from them, as the scheduler would,
//      and write a ResourceClaim allocated to it (status.allocation, reservedFor);
//   3. the fake kubelet (tests/support/kubelet-dra) discovers the driver through plugins_registry,
//      registers it and calls NodePrepareResources for the claim;
//   4. the CDI spec the driver wrote for the claim must give HYPERACCEL_VISIBLE_DEVICES,
//      HYPERACCEL_RING_ORDER (the arc's cards in link order) and HYPERACCEL_DEVICE_SERIALS (same
//      order); NodeUnprepareResources must remove it.
// Exit 0 = passed, 1 = failed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "hyperaccel/kubelet_dra/kubelet_dra.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "process.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kDriver[] = "fpga.hyperaccel.ai";
constexpr char kNode[] = "node-1";
constexpr int kCards = 8;

int Fail(const std::string& why) {
  std::cerr << "FAIL: " << why << "\n";
  return 1;
}

std::string Attr(const Json& device, const std::string& name) {
  const Json& a = device.value("attributes", Json::object());
  if (!a.contains(name)) return "";
  const Json& v = a[name];
  if (v.contains("string")) return v["string"].get<std::string>();
  if (v.contains("int")) return std::to_string(v["int"].get<int64_t>());
  return "";
}

struct Card {
  std::string id;  // resource.kubernetes.io/pciBusID (the card ID the device plugin uses)
  std::string serial;
  int position = 0;
};

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hyperaccel-demo-dra: the DRA path end to end on emulated cards"};
  std::string bin_dir = "build/bin";
  bool keep = false;
  app.add_option("--bin-dir", bin_dir, "directory with hyperaccel-dra-driver")->capture_default_str();
  app.add_flag("--keep", keep, "keep the scratch directory");
  CLI11_PARSE(app, argc, argv);

  std::string tmpl = (fs::temp_directory_path() / "hyperaccel-demo-dra-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return Fail("mkdtemp");
  const fs::path work = tmpl;
  const fs::path kubelet_dir = work / "kubelet";
  const fs::path cdi_dir = work / "cdi";
  fs::create_directories(kubelet_dir);
  fs::create_directories(cdi_dir);

  hyperaccel::testing::ApiServerEmulator api;
  if (!api.Start().ok()) return Fail("cannot start the API-server emulator");
  api.PutNode(kNode);
  std::ofstream(work / "kubeconfig")
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: " << api.url()
      << "\ncontexts:\n- name: t\n  context:\n    cluster: t\n"
      << "current-context: t\n";
  {
    std::ofstream c(work / "cabling.yaml");
    c << "version: 1\nlinks:\n";
    for (int i = 0; i < kCards; ++i) {
      c << "  - a: {node: " << kNode << ", serial: EMU-" << kNode << "-0" << i << ", port: 1}\n"
        << "    b: {node: " << kNode << ", serial: EMU-" << kNode << "-0" << (i + 1) % kCards
        << ", port: 0}\n";
    }
  }
  const std::string driver = bin_dir + "/hyperaccel-dra-driver";
  if (::access(driver.c_str(), X_OK) != 0) return Fail(driver + " not found (build it first)");
  const pid_t pid = hyperaccel::testing::SpawnDaemon(
      driver,
      {"--emulate=" + std::to_string(kCards), std::string("--node-name=") + kNode,
       "--kubeconfig=" + (work / "kubeconfig").string(), "--cabling=" + (work / "cabling.yaml").string(),
       "--admin-address=127.0.0.1:0", "--kubelet-plugin=true", "--kubelet-dir=" + kubelet_dir.string(),
       "--cdi-dir=" + cdi_dir.string(), "--log-level=debug"},
      (work / "dra-driver.log").string());
  if (pid < 0) return Fail("cannot start " + driver);
  auto finish = [&](int rc) {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    api.Stop();
    if (rc == 0 && !keep) {
      std::error_code ec;
      fs::remove_all(work, ec);
    } else {
      std::cerr << "logs in " << work.string() << "\n";
    }
    return rc;
  };

  // 1. Slices: every card (position, ID, serial) and the 4-card arcs.
  std::vector<Json> slices;
  for (int i = 0; i < 300; ++i) {
    slices = api.Pool(kDriver, kNode);
    bool have_arc = false;
    for (const Json& s : slices) {
      for (const Json& d : s["spec"].value("devices", Json::array())) {
        if (Attr(d, "kind") == "arc" && Attr(d, "cards") == "4") have_arc = true;
      }
    }
    if (have_arc) break;
    std::this_thread::sleep_for(100ms);
  }
  std::map<std::string, std::map<int, Card>> domains;  // linkDomain -> position -> card
  std::vector<Json> arcs;
  std::string pool;
  for (const Json& s : slices) {
    pool = s["spec"]["pool"]["name"].get<std::string>();
    for (const Json& d : s["spec"].value("devices", Json::array())) {
      if (Attr(d, "kind") == "card") {
        Card c{Attr(d, "resource.kubernetes.io/pciBusID"), Attr(d, "serial"), std::stoi(Attr(d, "position"))};
        domains[Attr(d, "linkDomain")][c.position] = c;
      } else if (Attr(d, "kind") == "arc" && Attr(d, "cards") == "4") {
        arcs.push_back(d);
      }
    }
  }
  if (arcs.empty()) return finish(Fail("no 4-card arc published within 30 s"));
  // As a scheduler would: the first fitting device in publication order.
  const Json& arc = arcs.front();
  const std::string domain = Attr(arc, "linkDomain");
  const int start = std::stoi(Attr(arc, "position"));
  const int domain_size = static_cast<int>(domains[domain].size());
  std::vector<std::string> want_ids;
  std::vector<std::string> want_serials;
  for (int k = 0; k < 4; ++k) {
    const Card& c = domains[domain][(start + k) % domain_size];
    want_ids.push_back(c.id);
    want_serials.push_back(c.serial);
  }
  const std::string arc_name = arc["name"].get<std::string>();
  std::cout << "arc " << arc_name << " in " << domain << ": " << Join(want_ids) << "\n";

  // 2. The claim, allocated to the arc and reserved for a pod.
  Json claim = {
      {"apiVersion", "resource.k8s.io/v1"},
      {"kind", "ResourceClaim"},
      {"metadata", {{"name", "one-arc4"}, {"namespace", "demo"}}},
      {"spec",
       {{"devices",
         {{"requests", Json::array({{{"name", "arc"},
                                     {"exactly", {{"deviceClassName", "arc.fpga.hyperaccel.ai"}}}}})}}}}},
      {"status",
       {{"allocation",
         {{"devices",
           {{"results",
             Json::array(
                 {{{"request", "arc"}, {"driver", kDriver}, {"pool", pool}, {"device", arc_name}}})}}}}},
        {"reservedFor",
         Json::array({{{"resource", "pods"}, {"name", "arc4-smoke"}, {"uid", "pod-uid-1"}}})}}}};
  // The server assigns the UID, as a real one does; the kubelet passes it on.
  const Json stored = api.Upsert("resourceclaims", claim, "demo");
  const std::string uid = stored["metadata"].value("uid", "");
  if (uid.empty() || !api.Get("resourceclaims", "one-arc4", "demo")) {
    return finish(Fail("the emulator did not store the claim"));
  }

  // 3. The kubelet: discovery, registration, NodePrepareResources.
  hyperaccel::kubelet_dra::Options ko;
  ko.registry_dir = (kubelet_dir / "plugins_registry").string();
  hyperaccel::kubelet_dra::FakeKubelet kubelet(ko);
  if (!kubelet.Start().ok()) return finish(Fail("fake kubelet"));
  auto reg = kubelet.WaitRegistered(kDriver, 1, 20s);
  if (!reg) return finish(Fail("the driver did not register with the kubelet within 20 s"));
  std::cout << "registered: " << reg->service << " at " << reg->endpoint << "\n";
  auto prepared = kubelet.Prepare(kDriver, {{"demo", "one-arc4", uid}});
  if (!prepared.status.ok()) return finish(Fail("NodePrepareResources: " + prepared.status.error_message()));
  const auto& answer = prepared.claims[uid];
  if (!answer.error.empty()) return finish(Fail("claim not prepared: " + answer.error));
  if (answer.devices.size() != 1 || answer.devices[0].device_name != arc_name ||
      answer.devices[0].pool_name != pool) {
    return finish(Fail("the answer does not name the allocated arc " + pool + "/" + arc_name));
  }
  const auto& cdi_ids = answer.devices[0].cdi_device_ids;
  if (cdi_ids.empty()) return finish(Fail("no CDI device IDs in the answer"));

  // 4. The CDI spec: a file whose name embeds the claim UID, the env of the returned devices.
  std::map<std::string, std::string> env;
  int specs = 0;
  for (const auto& f : fs::directory_iterator(cdi_dir)) {
    if (f.path().filename().string().find(uid) == std::string::npos) continue;
    ++specs;
    if (f.path().extension() != ".json") return finish(Fail("CDI spec is not JSON: " + f.path().string()));
    Json spec;
    try {
      spec = Json::parse(std::ifstream(f.path()));
    } catch (const std::exception& e) {
      return finish(Fail(f.path().string() + ": " + e.what()));
    }
    const std::string kind = spec.value("kind", "");
    auto take = [&](const Json& edits) {
      for (const auto& e : edits.value("env", Json::array())) {
        const std::string kv = e.get<std::string>();
        env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
      }
    };
    take(spec.value("containerEdits", Json::object()));
    for (const Json& d : spec.value("devices", Json::array())) {
      const std::string id = kind + "=" + d.value("name", "");
      if (std::find(cdi_ids.begin(), cdi_ids.end(), id) != cdi_ids.end())
        take(d.value("containerEdits", Json::object()));
    }
  }
  if (specs == 0) return finish(Fail("no CDI spec with the claim UID in " + cdi_dir.string()));
  const std::map<std::string, std::string> want = {{"HYPERACCEL_VISIBLE_DEVICES", Join(want_ids)},
                                                   {"HYPERACCEL_RING_ORDER", Join(want_ids)},
                                                   {"HYPERACCEL_DEVICE_SERIALS", Join(want_serials)}};
  for (const auto& [k, v] : want) {
    const auto it = env.find(k);
    if (it == env.end()) return finish(Fail(k + " is not in the CDI spec"));
    if (it->second != v) {
      std::string why = k;
      why.append("=")
          .append(it->second)
          .append(", want ")
          .append(v)
          .append(" (the arc's cards in link order)");
      return finish(Fail(why));
    }
    std::cout << k << "=" << it->second << "\n";
  }

  auto unprepared = kubelet.Unprepare(kDriver, {{"demo", "one-arc4", uid}});
  if (!unprepared.status.ok() || !unprepared.claims[uid].error.empty()) {
    return finish(Fail("NodeUnprepareResources failed"));
  }
  for (const auto& f : fs::directory_iterator(cdi_dir)) {
    if (f.path().filename().string().find(uid) != std::string::npos) {
      return finish(Fail("the claim's CDI spec is still there after unprepare"));
    }
  }
  std::cout << "PASS: arc " << arc_name << " prepared with its cards in link order, and unprepared\n";
  return finish(0);
}
