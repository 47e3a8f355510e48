#include "cabling_tree_reader.h"

#include <map>
#include <string>
#include <utility>

#include "yaml_input.h"

namespace hyperaccel::hw::testing {
namespace {

using yaml_input::Describe;
using yaml_input::LineOf;
using yaml_input::Where;

constexpr size_t kMaxNameLength = 253;
constexpr size_t kMaxKindLength = 63;

std::string Name(const PortRef& end) {
  return end.node + "/" + end.serial + " port " + std::to_string(end.port);
}

// Validation and conversion of the parsed tree; the first problem wins.
class CablingReader : public yaml_input::Reader {
 public:
  CablingReader(std::string_view source, const CablingOptions& options) : Reader(source), options_(options) {}

  Status Read(const YAML::Node& root, Cabling* out) {
    out->source = std::string(source());
    if (!root.IsMap()) return Error(root, "expected a mapping with the keys 'version' and 'links'");
    YAML::Node version;
    YAML::Node links;
    bool has_version = false;
    bool has_links = false;
    Status s = ForEachKey(root, [&](const std::string& key, const YAML::Node& value) -> Status {
      if (key == "version") {
        version = value;
        has_version = true;
      } else if (key == "links") {
        links = value;
        has_links = true;
      } else {
        return Error(value, "unknown key '" + key + "' (expected 'version' and 'links')");
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (!has_version) return Error(root, "missing 'version'");
    if (!version.IsScalar() || version.Tag() != "?" || version.Scalar() != "1") {
      return Error(version, "unknown version " + Describe(version) + " (this reader knows version 1)");
    }
    if (!has_links) return Error(root, "missing 'links'");
    if (links.IsNull()) return Status::Ok();
    if (!links.IsSequence()) return Error(links, "'links' must be a sequence, got " + Describe(links));
    for (const YAML::Node& entry : links) {
      CabledLink link;
      s = ReadLink(entry, &link);
      if (!s.ok()) return s;
      out->links.push_back(std::move(link));
    }
    return Status::Ok();
  }

 private:
  Status ReadEndpoint(const YAML::Node& value, const std::string& name, PortRef* out) const {
    if (!value.IsMap()) {
      return Error(value,
                   "endpoint '" + name + "' must be a mapping {node, serial, port}, got " + Describe(value));
    }
    bool has_node = false;
    bool has_serial = false;
    bool has_port = false;
    Status s = ForEachKey(value, [&](const std::string& key, const YAML::Node& field) -> Status {
      if (key == "node") {
        has_node = true;
        return ReadName(field, "node", kMaxNameLength, &out->node);
      }
      if (key == "serial") {
        has_serial = true;
        return ReadName(field, "serial", kMaxNameLength, &out->serial);
      }
      if (key == "port") {
        has_port = true;
        uint64_t port = 0;
        Status ps = ReadUint(field, "port", static_cast<uint64_t>(options_.max_ports - 1), false, &port);
        out->port = static_cast<int>(port);
        return ps;
      }
      return Error(field,
                   "unknown key '" + key + "' in endpoint '" + name + "' (expected node, serial, port)");
    });
    if (!s.ok()) return s;
    const char* missing = !has_node ? "node" : !has_serial ? "serial" : !has_port ? "port" : nullptr;
    if (missing != nullptr) return Error(value, "endpoint '" + name + "' is missing '" + missing + "'");
    return Status::Ok();
  }

  Status ReadLink(const YAML::Node& entry, CabledLink* link) {
    link->line = LineOf(entry);
    if (!entry.IsMap()) return Error(entry, "a link must be a mapping {a, b, kind}, got " + Describe(entry));
    bool has_a = false;
    bool has_b = false;
    Status s = ForEachKey(entry, [&](const std::string& key, const YAML::Node& value) -> Status {
      if (key == "a") {
        has_a = true;
        return ReadEndpoint(value, "a", &link->a);
      }
      if (key == "b") {
        has_b = true;
        return ReadEndpoint(value, "b", &link->b);
      }
      if (key == "kind") return ReadName(value, "kind", kMaxKindLength, &link->kind);
      return Error(value, "unknown key '" + key + "' in link (expected a, b, kind)");
    });
    if (!s.ok()) return s;
    if (!has_a || !has_b)
      return Error(entry, std::string("link is missing endpoint '") + (has_a ? "b" : "a") + "'");
    if (link->a == link->b) return Error(entry, "self-link: both ends are " + Name(link->a));
    if (link->a.node == link->b.node && link->a.serial == link->b.serial) {
      return Error(entry, "card " + link->a.node + "/" + link->a.serial + " is cabled to itself (port " +
                              std::to_string(link->a.port) + " to port " + std::to_string(link->b.port) +
                              "): a loopback links the card to no other card; remove the entry");
    }
    for (const PortRef* end : {&link->a, &link->b}) {
      auto [used, fresh_port] = port_lines_.emplace(*end, link->line);
      if (!fresh_port) {
        return Error(entry,
                     Name(*end) + " is already used by the link at line " + std::to_string(used->second));
      }
      auto [owner, fresh_serial] = serial_nodes_.emplace(end->serial, std::make_pair(end->node, link->line));
      if (!fresh_serial && owner->second.first != end->node) {
        return Error(entry, "serial " + end->serial + " on node " + end->node + " is already on node " +
                                owner->second.first + " (line " + std::to_string(owner->second.second) + ")");
      }
    }
    return Status::Ok();
  }

  const CablingOptions& options_;
  std::map<PortRef, int> port_lines_;                                // port -> line of its link
  std::map<std::string, std::pair<std::string, int>> serial_nodes_;  // serial -> (node, first line)
};

}  // namespace

Result<Cabling> ParseCablingTree(std::string_view text, std::string_view source_name,
                                 const CablingOptions& options) {
  if (options.max_ports < 1 || options.max_depth < 1) {
    return InvalidArgument("cabling: max_ports and max_depth must be at least 1");
  }
  Result<YAML::Node> root = yaml_input::Load(text, source_name, options.max_bytes, options.max_depth);
  if (!root.ok()) return root.status();
  // Reading nodes does not throw for the accesses made here, but a library edge catches anyway.
  try {
    Cabling cabling;
    CablingReader reader(source_name, options);
    Status s = reader.Read(*root, &cabling);
    if (!s.ok()) return s;
    return cabling;
  } catch (const std::exception& e) {
    return InvalidArgument(Where(source_name, 0) + "cannot read: " + e.what());
  }
}

}  // namespace hyperaccel::hw::testing
