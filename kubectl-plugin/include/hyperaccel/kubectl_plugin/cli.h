// `kubectl hyperaccel` (binary kubectl-hyperaccel): the commands, callable in-process so tests run
// them against an API-server emulator exactly as the binary does.
//
//   kubectl hyperaccel topo                                    link domains, racks, IDCs, nodes
//   kubectl hyperaccel plan --tasks=4 --cards=4 [--require-linked] [--spot]
//   kubectl hyperaccel cards NODE
// Global: --kubeconfig, --context (and $KUBECONFIG, merged as kubectl does), -o table|json,
// --resource (default hyperaccel.ai/fpga), --request-timeout.
//
// Exit codes: 0 success (plan: the gang fits now), 1 plan: the gang cannot run now, 2 usage or
// configuration error, 3 the API server could not be read.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "hyperaccel/kubectl_plugin/kubeconfig.h"

namespace hyperaccel::kubectl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitCannotRun = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitApi = 3;

// `args` without the program name.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const KubeconfigEnv& env = {});

}  // namespace hyperaccel::kubectl
