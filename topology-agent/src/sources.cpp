#include "hyperaccel/topology_agent/sources.h"

#include <algorithm>
#include <map>

#include "hyperaccel/rpc/grpc_unary.h"
#include "hyperaccel/xrt/cabling.h"
#include "podresources_v1_lite.pb.h"

namespace hyperaccel::agent {
namespace {

class CablingDomains final : public LinkDomains {
 public:
  explicit CablingDomains(const hw::Cabling& cabling) {
    for (const auto& d : hw::CablingDomains(cabling)) {
      auto& nodes = nodes_[d.id];
      for (const auto& m : d.members) {
        by_card_[m.node + "/" + m.serial] = d.id;
        if (nodes.empty() || nodes.back() != m.node) nodes.push_back(m.node);
      }
      std::sort(nodes.begin(), nodes.end());
      nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    }
  }
  std::string DomainOf(const std::string& node, const std::string& serial) const override {
    auto it = by_card_.find(node + "/" + serial);
    return it == by_card_.end() ? "" : it->second;
  }
  std::vector<std::string> NodesOf(const std::string& domain) const override {
    auto it = nodes_.find(domain);
    return it == nodes_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::map<std::string, std::string> by_card_;
  std::map<std::string, std::vector<std::string>> nodes_;
};

class NoDomains final : public LinkDomains {
 public:
  std::string DomainOf(const std::string&, const std::string&) const override { return ""; }
  std::vector<std::string> NodesOf(const std::string&) const override { return {}; }
};

// The kubelet's pod-resources v1 List, spoken by GrpcUnaryCall (HTTP/2 + gRPC framing) with the
// lite messages of topology-agent/proto: the agent links neither gRPC nor the full Protobuf.
class PodResources final : public AllocatedDevices {
 public:
  PodResources(std::string socket, std::string resource, const PodResourcesOptions& options)
      : socket_(std::move(socket)), resource_(std::move(resource)) {
    call_.timeout = options.timeout;
    call_.max_response_bytes = options.max_response_bytes;
  }

  Result<std::set<std::string>> List() override {
    static constexpr std::string_view kMethod = "/v1.PodResourcesLister/List";
    const lite::v1::ListPodResourcesRequest req;
    auto body = rpc::GrpcUnaryCall(socket_, kMethod, req.SerializeAsString(), call_);
    if (!body.ok()) return Unavailable("pod-resources List on " + socket_ + ": " + body.status().message());
    lite::v1::ListPodResourcesResponse resp;
    if (!resp.ParseFromString(*body)) {
      return Unavailable("pod-resources List on " + socket_ + ": the response (" +
                         std::to_string(body->size()) + " bytes) is not a ListPodResourcesResponse");
    }
    std::set<std::string> ids;
    for (const auto& pod : resp.pod_resources()) {
      for (const auto& c : pod.containers()) {
        for (const auto& d : c.devices()) {
          if (d.resource_name() != resource_) continue;
          for (const auto& id : d.device_ids()) ids.insert(id);
        }
      }
    }
    return ids;
  }

 private:
  std::string socket_;
  std::string resource_;
  rpc::GrpcCallOptions call_;
};

}  // namespace

std::unique_ptr<LinkDomains> DomainsFromCabling(const hw::Cabling& cabling) {
  return std::make_unique<CablingDomains>(cabling);
}

Result<std::unique_ptr<LinkDomains>> LoadLinkDomains(const std::string& cabling_file) {
  if (cabling_file.empty()) return std::unique_ptr<LinkDomains>(std::make_unique<NoDomains>());
  auto cabling = hw::LoadCablingFile(cabling_file);
  if (!cabling.ok()) return cabling.status();
  return DomainsFromCabling(*cabling);
}

std::unique_ptr<AllocatedDevices> PodResourcesClient(const std::string& socket_path,
                                                     const std::string& resource,
                                                     std::chrono::milliseconds timeout) {
  PodResourcesOptions options;
  options.timeout = timeout;
  return PodResourcesClient(socket_path, resource, options);
}

std::unique_ptr<AllocatedDevices> PodResourcesClient(const std::string& socket_path,
                                                     const std::string& resource,
                                                     const PodResourcesOptions& options) {
  return std::make_unique<PodResources>(socket_path, resource, options);
}

}  // namespace hyperaccel::agent
