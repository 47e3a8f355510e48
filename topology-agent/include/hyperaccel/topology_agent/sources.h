// The agent's inputs besides the hardware scan, as small interfaces so tests pass fakes through
// the same door production uses:
//   - LinkDomains: which link domain a card belongs to, cluster-wide (from the cabling file);
//   - AllocatedDevices: which device IDs the kubelet has handed to pods (pod-resources API).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::hw {
struct Cabling;
}

namespace hyperaccel::agent {

class LinkDomains {
 public:
  virtual ~LinkDomains() = default;
  // The domain ID of a card, "" when it is in none.
  virtual std::string DomainOf(const std::string& node, const std::string& serial) const = 0;
  // The nodes that have at least one card in `domain`, sorted.
  virtual std::vector<std::string> NodesOf(const std::string& domain) const = 0;
};

// Domains of a parsed cabling file (hw::CablingDomains: every node derives the same IDs).
std::unique_ptr<LinkDomains> DomainsFromCabling(const hw::Cabling& cabling);
// Loads the cabling file; an empty path gives no domains at all.
Result<std::unique_ptr<LinkDomains>> LoadLinkDomains(const std::string& cabling_file);

class AllocatedDevices {
 public:
  virtual ~AllocatedDevices() = default;
  // Device IDs of `resource` currently assigned to containers. Errors when the kubelet cannot
  // be asked (the caller keeps the last answer and publishes nothing new about allocation).
  virtual Result<std::set<std::string>> List() = 0;
};

struct PodResourcesOptions {
  std::chrono::milliseconds timeout{5000};                 // each List call, connect included
  std::size_t max_response_bytes = std::size_t{16} << 20;  // a larger answer is an error
};

// The kubelet pod-resources v1 `List` over the unix socket `socket_path` (gRPC's wire protocol,
// hyperaccel/rpc/grpc_unary.h), for the extended resource `resource` ("hyperaccel.ai/fpga"). Each call
// connects anew (a restarted kubelet is reached by the next call) and has `timeout`. Every error is
// Unavailable, "pod-resources List on <socket>: <why>".
std::unique_ptr<AllocatedDevices> PodResourcesClient(
    const std::string& socket_path, const std::string& resource,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));
std::unique_ptr<AllocatedDevices> PodResourcesClient(const std::string& socket_path,
                                                     const std::string& resource,
                                                     const PodResourcesOptions& options);

}  // namespace hyperaccel::agent
