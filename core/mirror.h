// One-way sync between a host folder and a drive, in either direction.
// Files are compared by kind, executable bit, size and then content, so an
// unchanged file costs reads but never a write.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/drive.h"

namespace p2p {

struct MirrorOptions {
  bool prune = false;    // also remove what the source lacks
  bool dry_run = false;  // report, write nothing
  // Skipped names: a pattern without '/' matches any path component
  // ("*" and "?" wildcards allowed); one with '/' matches a path from the root.
  std::vector<std::string> ignore;
};

struct MirrorChange {
  char op;  // '+' added, '~' changed, '-' removed
  std::string path;  // drive path
  uint64_t bytes = 0;
};

struct MirrorTotals {
  uint64_t added = 0, changed = 0, removed = 0, unchanged = 0, bytes = 0;
};

using MirrorVisitor = std::function<void(const MirrorChange&)>;

// `folder` -> the drive under `prefix` ("/" for the whole drive).
Result<MirrorTotals> mirror_to_drive(const std::string& folder, Drive& drive, const std::string& prefix,
                                     const MirrorOptions& options, const MirrorVisitor& visit);
// The drive under `prefix` -> `folder` (created when missing).
Result<MirrorTotals> mirror_to_folder(Drive& drive, const std::string& prefix, const std::string& folder,
                                      const MirrorOptions& options, const MirrorVisitor& visit, uint64_t at = 0);

// Helpers the CLI shares with mirroring.
// `progress` (optional) hears the bytes moved so far.
using Progress = std::function<void(uint64_t bytes)>;
Status put_file(Drive& drive, const std::string& host_path, const std::string& drive_path,
                const Progress& progress = nullptr);
Status get_file(Drive& drive, const DriveEntry& entry, const std::string& host_path,
                const Progress& progress = nullptr);
bool ignored(const std::string& drive_path, const std::vector<std::string>& patterns);

}  // namespace p2p
