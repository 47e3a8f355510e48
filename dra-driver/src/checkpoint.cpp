#include "hyperaccel/dra_driver/checkpoint.h"

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "hyperaccel/common/files.h"

namespace hyperaccel::dra {
namespace {

using Json = nlohmann::json;

Status Bad(const std::string& field, const std::string& what) {
  return InvalidArgument("checkpoint: " + field + ": " + what);
}

// Reads a required string member of `obj`.
Status StringField(const Json& obj, const char* key, const std::string& where, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return Bad(where + "." + key, "required string");
  *out = it->get<std::string>();
  return Status::Ok();
}

// Reads an optional list of strings.
Status StringList(const Json& obj, const char* key, const std::string& where, std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Bad(where + "." + key, "not a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string()) return Bad(where + "." + key + "[" + std::to_string(i) + "]", "not a string");
    out->push_back(v.get<std::string>());
  }
  return Status::Ok();
}

Status ParseDevice(const Json& d, const std::string& where, CheckpointDevice* out) {
  if (!d.is_object()) return Bad(where, "not an object");
  for (auto [key, dst] : {std::pair{"request", &out->request}, std::pair{"pool", &out->pool},
                          std::pair{"device", &out->device}}) {
    if (auto st = StringField(d, key, where, dst); !st.ok()) return st;
  }
  if (auto st = StringList(d, "cards", where, &out->cards); !st.ok()) return st;
  return StringList(d, "cdiDeviceIds", where, &out->cdi_device_ids);
}

Status ParseEntry(const Json& e, const std::string& where, CheckpointEntry* out) {
  if (!e.is_object()) return Bad(where, "not an object");
  if (auto st = StringField(e, "namespace", where, &out->ns); !st.ok()) return st;
  if (auto st = StringField(e, "name", where, &out->name); !st.ok()) return st;
  std::string state;
  if (auto st = StringField(e, "state", where, &state); !st.ok()) return st;
  if (state == "started") {
    out->state = PrepareState::kStarted;
  } else if (state == "completed") {
    out->state = PrepareState::kCompleted;
  } else {
    return Bad(where + ".state", "unknown state \"" + state + "\" (want started or completed)");
  }
  auto devs = e.find("devices");
  if (devs == e.end() || devs->is_null()) return Status::Ok();
  if (!devs->is_array()) return Bad(where + ".devices", "not a list");
  for (size_t i = 0; i < devs->size(); ++i) {
    CheckpointDevice d;
    if (auto st = ParseDevice((*devs)[i], where + ".devices[" + std::to_string(i) + "]", &d); !st.ok())
      return st;
    out->devices.push_back(std::move(d));
  }
  return Status::Ok();
}

// Writes through "<path>.tmp" and rename; with `durable`, fsyncs the file and the directory.
Status WriteFile(const std::string& path, const std::string& content, bool durable) {
  return files::WriteAtomic(path, content, durable ? files::Sync::kFileAndDirectory : files::Sync::kNone);
}

}  // namespace

const char* PrepareStateName(PrepareState state) {
  return state == PrepareState::kCompleted ? "completed" : "started";
}

Result<Checkpoint> ParseCheckpoint(std::string_view text) {
  Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument("checkpoint: not valid JSON (truncated or corrupt file?)");
  if (!doc.is_object()) return Bad("(top level)", "not an object");
  auto v = doc.find("version");
  if (v == doc.end() || !v->is_number_integer()) return Bad("version", "required integer");
  if (v->get<int64_t>() != kCheckpointVersion) {
    return Bad("version", "version " + v->dump() + " is not supported (this driver reads version " +
                              std::to_string(kCheckpointVersion) + ")");
  }
  Checkpoint out;
  auto claims = doc.find("claims");
  if (claims == doc.end() || claims->is_null()) return out;
  if (!claims->is_object()) return Bad("claims", "not an object");
  for (auto it = claims->begin(); it != claims->end(); ++it) {
    if (it.key().empty()) return Bad("claims", "empty claim UID");
    CheckpointEntry e;
    if (auto st = ParseEntry(it.value(), "claims[" + it.key() + "]", &e); !st.ok()) return st;
    out.claims.emplace(it.key(), std::move(e));
  }
  return out;
}

std::string SerializeCheckpoint(const Checkpoint& checkpoint) {
  Json claims = Json::object();
  for (const auto& [uid, e] : checkpoint.claims) {
    Json devices = Json::array();
    for (const auto& d : e.devices) {
      devices.push_back({{"request", d.request},
                         {"pool", d.pool},
                         {"device", d.device},
                         {"cards", d.cards},
                         {"cdiDeviceIds", d.cdi_device_ids}});
    }
    claims[uid] = {
        {"namespace", e.ns}, {"name", e.name}, {"state", PrepareStateName(e.state)}, {"devices", devices}};
  }
  Json doc = {{"version", kCheckpointVersion}, {"claims", claims}};
  return doc.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";
}

Status WriteFileDurable(const std::string& path, const std::string& content) {
  return WriteFile(path, content, /*durable=*/true);
}

Status WriteFileAtomic(const std::string& path, const std::string& content) {
  return WriteFile(path, content, /*durable=*/false);
}

Status RemoveFileDurable(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Unavailable("cannot remove " + path + ": " + ErrnoMessage(errno));
  }
  return files::SyncDirectory(std::filesystem::path(path).parent_path().string());
}

}  // namespace hyperaccel::dra
