// Cluster access as kubectl resolves it, so `kubectl hyperaccel ...` talks to the same cluster as
// the `kubectl` that started it:
//   - --kubeconfig FILE: that file only (it must exist);
//   - else $KUBECONFIG: a ':'-separated list of files, merged (missing files are skipped; for
//     clusters, users and contexts the first file that defines a name wins; the first file that
//     sets current-context wins);
//   - else ~/.kube/config when it exists;
//   - else the in-cluster service account.
// --context picks a context instead of current-context. Relative file paths in a kubeconfig are
// relative to the file that holds them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/kubectl_plugin/kube.h"

namespace hyperaccel::kubectl {

struct KubeconfigFlags {
  std::string kubeconfig;  // --kubeconfig
  std::string context;     // --context
};

// Environment and file-system access, injectable for tests.
struct KubeconfigEnv {
  std::function<std::string(const char*)> getenv;           // null = std::getenv
  std::function<Result<kube::ClusterConfig>()> in_cluster;  // null = kube::InClusterConfig()
};

// Merges kubeconfig files by kubectl's rules into one kubeconfig document (YAML text) whose file
// paths are absolute. Errors name the file that is unreadable or malformed.
Result<std::string> MergeKubeconfigs(const std::vector<std::string>& files);

// Resolves the cluster to talk to (see the rules at the top of this file).
Result<kube::ClusterConfig> ResolveKubeconfig(const KubeconfigFlags& flags, const KubeconfigEnv& env = {});

}  // namespace hyperaccel::kubectl
