// Human and JSON renderings of a placement plan (`hyperaccel-topology-agent plan`).
#include <nlohmann/json.hpp>
#include <string>

#include "internal.h"

namespace hyperaccel::placement {
namespace {

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

std::string Value(int v) { return v < 0 ? "-" : std::to_string(v); }

nlohmann::json IdList(const CardGraph& graph, Mask m) { return graph.IdsOf(m); }

const char* StateAbbrev(hw::LinkState s) {
  switch (s) {
    case hw::LinkState::kUp: return "UP";
    case hw::LinkState::kDown: return "DN";
    case hw::LinkState::kMismatch: return "MM";
    case hw::LinkState::kUnknown: return "??";
  }
  return "??";
}

}  // namespace

std::string FormatLinkMatrix(size_t cards, const std::vector<LinkCell>& links) {
  std::vector<std::vector<std::string>> m(cards, std::vector<std::string>(cards, "."));
  for (size_t i = 0; i < cards; ++i) m[i][i] = "X";
  for (const auto& l : links) {
    if (l.a >= cards || l.b >= cards || l.a == l.b) continue;
    const std::string s = StateAbbrev(l.state);
    std::string& cell = m[l.a][l.b];
    if (cell == "." || s == "UP") cell = s;
    m[l.b][l.a] = cell;
  }
  std::string out = "Links";
  // Columns four characters wide, then a space (wider names push the row right).
  auto cell = [](const std::string& s, size_t width) {
    return s.size() >= width ? s + " " : Pad(s, width + 1);
  };
  for (size_t i = 0; i < cards; ++i) out += " " + cell("C" + std::to_string(i), 3);
  out += "\n";
  for (size_t i = 0; i < cards; ++i) {
    out += cell("C" + std::to_string(i), 4);
    for (size_t k = 0; k < cards; ++k) out += " " + cell(m[i][k], 3);
    out += "\n";
  }
  out +=
      "Legend: UP = link up, DN = down, MM = cabled to another port than the file says, ?? = unknown, "
      ". = no link\n";
  return out;
}

std::string FormatPlanTable(const CardGraph& graph, const Request& request, const Result<Choice>& choice) {
  std::string out = "request: " + std::to_string(request.size) + " of " +
                    std::to_string(internal::Count(request.available & graph.AllMask())) + " available cards";
  if (request.must_include != 0) {
    out += ", must include";
    for (const std::string& id : graph.IdsOf(request.must_include)) out += " " + id;
  }
  out += "\n";
  if (!choice.ok()) return out + "error: " + choice.status().ToString() + "\n";
  size_t id_width = 2;
  size_t serial_width = 6;
  for (int i : choice->order) {
    id_width = std::max(id_width, graph.ids[i].size());
    serial_width = std::max(serial_width, graph.serials[i].size());
  }
  out += "POS  IDX  " + Pad("ID", id_width) + "  " + Pad("SERIAL", serial_width) +
         "  NUMA  SWITCH  LINK-TO-NEXT\n";
  const std::vector<int>& order = choice->order;
  for (size_t p = 0; p < order.size(); ++p) {
    const int i = order[p];
    std::string link = "-";
    if (p + 1 < order.size()) {
      link = (graph.adj[i] & internal::Bit(order[p + 1])) != 0 ? "up" : "none";
    } else if (choice->score.cycle) {
      link = "up (closes ring)";
    }
    out += Pad(std::to_string(p), 5) + Pad(std::to_string(i), 5) + Pad(graph.ids[i], id_width) + "  " +
           Pad(graph.serials[i].empty() ? "-" : graph.serials[i], serial_width) + "  " +
           Pad(Value(graph.numa[i]), 6) + Pad(Value(graph.pcie_switch[i]), 8) + link + "\n";
  }
  const Score& s = choice->score;
  out += "score: components=" + std::to_string(s.components) + " connected=" + YesNo(s.connected) +
         " ordered=" + YesNo(s.ordered) + " cycle=" + YesNo(s.cycle) +
         " numa_nodes=" + std::to_string(s.numa_nodes) + " pcie_switches=" + std::to_string(s.pcie_switches) +
         " largest_free_after=" + std::to_string(s.largest_free_after) +
         " free_components_after=" + std::to_string(s.free_components_after) +
         " search=" + (choice->exact ? "exact" : "heuristic") + "\n";
  out += "why: " + s.explanation + "\n";
  return out;
}

std::string FormatPlanJson(const CardGraph& graph, const Request& request, const Result<Choice>& choice) {
  nlohmann::json doc;
  doc["request"] = {{"size", request.size},
                    {"available", IdList(graph, request.available)},
                    {"must_include", IdList(graph, request.must_include)}};
  doc["ok"] = choice.ok();
  if (!choice.ok()) {
    doc["error"] = {{"code", std::string(StatusCodeName(choice.status().code()))},
                    {"message", choice.status().message()}};
    return doc.dump();
  }
  nlohmann::json cards = nlohmann::json::array();
  for (int i : choice->order) {
    cards.push_back({{"index", i},
                     {"id", graph.ids[i]},
                     {"serial", graph.serials[i]},
                     {"numa", graph.numa[i]},
                     {"pcie_switch", graph.pcie_switch[i]}});
  }
  const Score& s = choice->score;
  doc["cards"] = std::move(cards);
  doc["score"] = {{"components", s.components},
                  {"connected", s.connected},
                  {"ordered", s.ordered},
                  {"cycle", s.cycle},
                  {"numa_nodes", s.numa_nodes},
                  {"pcie_switches", s.pcie_switches},
                  {"largest_free_after", s.largest_free_after},
                  {"free_components_after", s.free_components_after}};
  doc["exact"] = choice->exact;
  doc["explanation"] = s.explanation;
  return doc.dump();
}

}  // namespace hyperaccel::placement
