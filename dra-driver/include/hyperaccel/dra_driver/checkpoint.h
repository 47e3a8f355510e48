// The claim preparer's checkpoint: which claims this node prepared, with which devices and cards,
// and whether the preparation finished (two-phase: started -> completed). One JSON file on a
// hostPath, replaced atomically (temporary file, fsync, rename, fsync of the directory).
// docs/dra.md "Claim preparation" shows the format.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::dra {

inline constexpr int kCheckpointVersion = 1;

enum class PrepareState { kStarted, kCompleted };
const char* PrepareStateName(PrepareState state);  // "started" | "completed"

struct CheckpointDevice {
  std::string request;
  std::string pool;
  std::string device;              // "arc4-0"
  std::vector<std::string> cards;  // PCI addresses in link order
  std::vector<std::string> cdi_device_ids;
  friend bool operator==(const CheckpointDevice&, const CheckpointDevice&) = default;
};

struct CheckpointEntry {
  std::string ns;
  std::string name;
  PrepareState state = PrepareState::kStarted;
  std::vector<CheckpointDevice> devices;
  friend bool operator==(const CheckpointEntry&, const CheckpointEntry&) = default;
};

struct Checkpoint {
  std::map<std::string, CheckpointEntry> claims;  // by claim UID
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// Parses a checkpoint file. Any deviation from the format (not JSON, unknown version, a field of
// the wrong type, an unknown state, an empty UID) is an InvalidArgument error naming the field.
Result<Checkpoint> ParseCheckpoint(std::string_view text);

// The file content: deterministic (sorted by UID), ends with a newline.
std::string SerializeCheckpoint(const Checkpoint& checkpoint);

// Writes `content` to `path` durably: "<path>.tmp" is written and fsynced, renamed over `path`,
// then the directory is fsynced, so after a crash the file is either the old or the new content.
// Creates the directory when missing.
Status WriteFileDurable(const std::string& path, const std::string& content);

// The same without the two fsyncs: readers never see half a file, but after a power loss the
// file may be old or missing. For CDI specs, which live on tmpfs (/var/run/cdi) and are
// re-created on the next Prepare anyway.
Status WriteFileAtomic(const std::string& path, const std::string& content);

// Removes `path` (a missing file is fine) and fsyncs its directory.
Status RemoveFileDurable(const std::string& path);

}  // namespace hyperaccel::dra
