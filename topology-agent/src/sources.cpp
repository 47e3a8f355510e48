#include "hyperaccel/topology_agent/sources.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>

#include "hyperaccel/xrt/cabling.h"
#include "podresources_v1.grpc.pb.h"

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

class PodResources final : public AllocatedDevices {
 public:
  PodResources(std::string socket, std::string resource, std::chrono::milliseconds timeout)
      : socket_(std::move(socket)), resource_(std::move(resource)), timeout_(timeout) {}

  Result<std::set<std::string>> List() override {
    if (!stub_) {
      // A fresh channel per (re)connect: the kubelet recreates the socket when it restarts.
      channel_ = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
      stub_ = v1::PodResourcesLister::NewStub(channel_);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    v1::ListPodResourcesRequest req;
    v1::ListPodResourcesResponse resp;
    grpc::Status s = stub_->List(&ctx, req, &resp);
    if (!s.ok()) {
      stub_.reset();
      channel_.reset();
      return Unavailable("pod-resources List on " + socket_ + ": " + s.error_message());
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
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::PodResourcesLister::Stub> stub_;
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
  return std::make_unique<PodResources>(socket_path, resource, timeout);
}

}  // namespace hyperaccel::agent
