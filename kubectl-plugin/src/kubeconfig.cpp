#include "hyperaccel/kubectl_plugin/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace hyperaccel::kubectl {
namespace {

namespace fs = std::filesystem;

// Fields of clusters[].cluster and users[].user that name files.
constexpr const char* kClusterFileKeys[] = {"certificate-authority"};
constexpr const char* kUserFileKeys[] = {"client-certificate", "client-key", "tokenFile"};

void Absolutize(YAML::Node map, const char* const* begin, const char* const* end, const fs::path& dir) {
  if (!map.IsMap()) return;
  for (const char* const* key = begin; key != end; ++key) {
    if (!map[*key] || !map[*key].IsScalar()) continue;
    const std::string value = map[*key].as<std::string>();
    if (value.empty() || fs::path(value).is_absolute()) continue;
    map[*key] = (dir / value).lexically_normal().string();
  }
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("kubeconfig " + path + ": cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Appends the named entries of `section` in `doc` that `seen` does not know yet.
Status MergeSection(const YAML::Node& doc, const char* section, const std::string& file, YAML::Node& out,
                    std::set<std::string>& seen, const fs::path& dir) {
  const YAML::Node list = doc[section];
  if (!list || list.IsNull()) return {};
  if (!list.IsSequence()) return InvalidArgument("kubeconfig " + file + ": " + section + " is not a list");
  for (const auto& entry : list) {
    if (!entry.IsMap() || !entry["name"] || !entry["name"].IsScalar()) {
      return InvalidArgument("kubeconfig " + file + ": an entry of " + section + " has no name");
    }
    const std::string name = entry["name"].as<std::string>();
    if (!seen.insert(name).second) continue;  // the first file that defines a name wins
    YAML::Node copy = YAML::Clone(entry);
    if (std::string(section) == "clusters") {
      Absolutize(copy["cluster"], std::begin(kClusterFileKeys), std::end(kClusterFileKeys), dir);
    } else if (std::string(section) == "users") {
      Absolutize(copy["user"], std::begin(kUserFileKeys), std::end(kUserFileKeys), dir);
    }
    out.push_back(copy);
  }
  return {};
}

std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(list);
  while (std::getline(in, item, ':')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The context, its cluster and its user must exist in the merged document (named errors rather
// than an empty server further on).
Status CheckNames(const std::string& merged, const std::string& context) {
  try {
    const YAML::Node root = YAML::Load(merged);
    const std::string name = context.empty() ? root["current-context"].as<std::string>("") : context;
    if (name.empty()) return InvalidArgument("kubeconfig: no current-context and no --context given");
    auto find = [&root](const char* list, const std::string& wanted) -> std::optional<YAML::Node> {
      for (const auto& item : root[list]) {
        if (item["name"].as<std::string>("") == wanted) return item;
      }
      return std::nullopt;
    };
    const std::optional<YAML::Node> ctx = find("contexts", name);
    if (!ctx) return InvalidArgument("kubeconfig: context '" + name + "' not found");
    const std::string cluster = (*ctx)["context"]["cluster"].as<std::string>("");
    if (!find("clusters", cluster)) {
      return InvalidArgument("kubeconfig: context '" + name + "': cluster '" + cluster + "' not found");
    }
    const std::string user = (*ctx)["context"]["user"].as<std::string>("");
    if (!user.empty() && !find("users", user)) {
      return InvalidArgument("kubeconfig: context '" + name + "': user '" + user + "' not found");
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("kubeconfig: ") + e.what());
  }
  return {};
}

}  // namespace

Result<std::string> MergeKubeconfigs(const std::vector<std::string>& files) {
  YAML::Node clusters(YAML::NodeType::Sequence);
  YAML::Node users(YAML::NodeType::Sequence);
  YAML::Node contexts(YAML::NodeType::Sequence);
  std::set<std::string> seen_clusters, seen_users, seen_contexts;
  std::string current_context;
  for (const auto& file : files) {
    auto text = ReadWholeFile(file);
    if (!text.ok()) return text.status();
    YAML::Node doc;
    try {
      doc = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      return InvalidArgument("kubeconfig " + file + ": " + e.what());
    }
    if (doc.IsNull()) continue;  // an empty file contributes nothing (as kubectl)
    if (!doc.IsMap()) return InvalidArgument("kubeconfig " + file + ": not a YAML mapping");
    const fs::path dir = fs::absolute(fs::path(file)).parent_path();
    try {
      if (auto st = MergeSection(doc, "clusters", file, clusters, seen_clusters, dir); !st.ok()) return st;
      if (auto st = MergeSection(doc, "users", file, users, seen_users, dir); !st.ok()) return st;
      if (auto st = MergeSection(doc, "contexts", file, contexts, seen_contexts, dir); !st.ok()) return st;
      if (current_context.empty() && doc["current-context"] && doc["current-context"].IsScalar()) {
        current_context = doc["current-context"].as<std::string>();
      }
    } catch (const YAML::Exception& e) {
      return InvalidArgument("kubeconfig " + file + ": " + e.what());
    }
  }
  YAML::Node merged(YAML::NodeType::Map);
  merged["apiVersion"] = "v1";
  merged["kind"] = "Config";
  merged["clusters"] = clusters;
  merged["users"] = users;
  merged["contexts"] = contexts;
  if (!current_context.empty()) merged["current-context"] = current_context;
  YAML::Emitter out;
  out << merged;
  return std::string(out.c_str());
}

Result<kube::ClusterConfig> ResolveKubeconfig(const KubeconfigFlags& flags, const KubeconfigEnv& env) {
  auto getenv = [&env](const char* name) -> std::string {
    if (env.getenv) return env.getenv(name);
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once at start-up
    return v != nullptr ? v : "";
  };
  std::vector<std::string> files;
  if (!flags.kubeconfig.empty()) {
    std::error_code ec;
    if (!fs::exists(flags.kubeconfig, ec)) {
      return NotFound("--kubeconfig " + flags.kubeconfig + ": no such file");
    }
    files.push_back(flags.kubeconfig);
  } else if (const std::string list = getenv("KUBECONFIG"); !list.empty()) {
    std::error_code ec;
    for (const auto& f : SplitList(list)) {
      if (fs::exists(f, ec)) files.push_back(f);
    }
  } else if (const std::string home = getenv("HOME"); !home.empty()) {
    std::error_code ec;
    const std::string path = home + "/.kube/config";
    if (fs::exists(path, ec)) files.push_back(path);
  }
  if (files.empty()) {
    auto in_cluster = env.in_cluster ? env.in_cluster() : kube::InClusterConfig();
    if (in_cluster.ok()) return in_cluster;
    return NotFound(
        "no kubeconfig: --kubeconfig not given, $KUBECONFIG names no existing file, no ~/.kube/config, "
        "and not running in a cluster");
  }
  auto merged = MergeKubeconfigs(files);
  if (!merged.ok()) return merged.status();
  const std::string where_names =
      files.size() == 1 ? files.front() : "$KUBECONFIG (" + std::to_string(files.size()) + " files)";
  if (auto st = CheckNames(*merged, flags.context); !st.ok()) return st.WithContext(where_names);
  auto config = kube::ParseKubeconfig(*merged, "", flags.context);
  if (!config.ok()) {
    std::string where =
        files.size() == 1 ? files.front() : "$KUBECONFIG (" + std::to_string(files.size()) + " files)";
    return config.status().WithContext(where);
  }
  return config;
}

}  // namespace hyperaccel::kubectl
