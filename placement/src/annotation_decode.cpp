// DecodeTopology: the reader of the topology annotation, on simdjson (the bridge decodes every
// node's annotation in a session). In a file of its own so that a binary that only encodes the
// annotation (the topology agent) does not link simdjson, whose library Debian ships only shared.
#include <simdjson.h>

#include <algorithm>

#include "hyperaccel/placement/annotation.h"

namespace hyperaccel::placement {
namespace {

Result<hw::LinkState> ParseLinkState(std::string_view s) {
  if (s == "up") return hw::LinkState::kUp;
  if (s == "down") return hw::LinkState::kDown;
  if (s == "mismatch") return hw::LinkState::kMismatch;
  if (s == "unknown") return hw::LinkState::kUnknown;
  return InvalidArgument("unknown link state '" + std::string(s) + "'");
}

Status Err(const std::string& where, const std::string& what) {
  return InvalidArgument("topology annotation: " + where + " " + what);
}

// Reads one endpoint object {"node"?,"serial","port"}.
Status DecodeEnd(simdjson::dom::element e, const std::string& where, hw::PortRef* out) {
  simdjson::dom::object o;
  if (e.get(o)) return Err(where, "is not an object");
  std::string_view serial;
  if (o["serial"].get(serial)) return Err(where + ".serial", "missing or not a string");
  out->serial = std::string(serial);
  int64_t port = 0;
  if (o["port"].get(port) || port < 0 || port > 255) return Err(where + ".port", "missing or out of range");
  out->port = static_cast<int>(port);
  std::string_view node;
  auto n = o["node"];
  if (!n.error() && !n.is_null()) {
    if (n.get(node)) return Err(where + ".node", "is not a string");
    out->node = std::string(node);
  }
  return Status::Ok();
}

}  // namespace

Result<NodeTopology> DecodeTopology(std::string_view json) {
  // One parser per thread: simdjson parsers reuse their buffers across documents.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root)) {
    return InvalidArgument(std::string("topology annotation: not valid JSON: ") +
                           simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (root.get(obj)) return InvalidArgument("topology annotation: not a JSON object");
  NodeTopology t;
  int64_t version = 0;
  if (obj["v"].get(version)) return InvalidArgument("topology annotation: \"v\" missing or not a number");
  if (version != kTopologyVersion) {
    return InvalidArgument("topology annotation: version " + std::to_string(version) +
                           " not supported (want " + std::to_string(kTopologyVersion) + ")");
  }
  std::string_view domain;
  auto d = obj["domain"];
  if (!d.error() && !d.is_null()) {
    if (d.get(domain)) return InvalidArgument("topology annotation: \"domain\" is not a string");
    t.domain = std::string(domain);
  }
  simdjson::dom::array cards;
  auto cards_el = obj["cards"];
  if (!cards_el.error() && !cards_el.is_null()) {
    if (cards_el.get(cards)) return InvalidArgument("topology annotation: \"cards\" is not an array");
    size_t i = 0;
    for (simdjson::dom::element ce : cards) {
      std::string where = "cards[" + std::to_string(i++) + "]";
      simdjson::dom::object co;
      if (ce.get(co)) return Err(where, "is not an object");
      TopologyCard c;
      std::string_view sv;
      if (co["id"].get(sv) || sv.empty()) return Err(where + ".id", "missing or not a string");
      c.id = std::string(sv);
      if (!co["serial"].get(sv)) c.serial = std::string(sv);
      int64_t num = 0;
      if (!co["numa"].get(num)) c.numa = static_cast<int>(std::clamp<int64_t>(num, -1, 1 << 20));
      if (!co["switch"].get(num)) c.pcie_switch = static_cast<int>(std::clamp<int64_t>(num, -1, 1 << 20));
      bool b = false;
      if (!co["healthy"].get(b)) c.healthy = b;
      if (!co["allocated"].get(b)) c.allocated = b;
      t.cards.push_back(std::move(c));
    }
  }
  if (t.cards.size() > static_cast<size_t>(kMaxCards)) {
    return InvalidArgument("topology annotation: " + std::to_string(t.cards.size()) + " cards, at most " +
                           std::to_string(kMaxCards) + " supported");
  }
  std::sort(t.cards.begin(), t.cards.end(),
            [](const TopologyCard& x, const TopologyCard& y) { return x.id < y.id; });
  for (size_t i = 1; i < t.cards.size(); ++i) {
    if (t.cards[i].id == t.cards[i - 1].id) return Err("card " + t.cards[i].id, "listed twice");
  }
  simdjson::dom::array links;
  auto links_el = obj["links"];
  if (!links_el.error() && !links_el.is_null()) {
    if (links_el.get(links)) return InvalidArgument("topology annotation: \"links\" is not an array");
    size_t i = 0;
    for (simdjson::dom::element le : links) {
      std::string where = "links[" + std::to_string(i++) + "]";
      simdjson::dom::object lo;
      if (le.get(lo)) return Err(where, "is not an object");
      TopologyLink l;
      for (auto [key, end] : {std::pair{"a", &l.a}, std::pair{"b", &l.b}}) {
        simdjson::dom::element ee;
        if (lo[key].get(ee)) return Err(where + "." + key, "missing");
        if (Status s = DecodeEnd(ee, where + "." + key, end); !s.ok()) return s;
      }
      std::string_view st;
      if (lo["state"].get(st)) return Err(where + ".state", "missing or not a string");
      auto state = ParseLinkState(st);
      if (!state.ok()) return Err(where + ".state", state.status().message());
      l.state = *state;
      t.links.push_back(std::move(l));
    }
  }
  return t;
}

}  // namespace hyperaccel::placement
