// Apps and datasets: a folder with a p2p.json manifest, staged into a drive
// per channel and checked out again to run.
#pragma once

#include <string>
#include <vector>

#include "core/drive.h"
#include "core/mirror.h"

namespace p2p::app {

constexpr const char* kManifestFile = "p2p.json";

struct Manifest {
  std::string name;
  std::string type = "terminal";  // terminal | web | dataset
  std::string main;
  std::string version;
  std::string description;
  std::vector<std::string> ignore;
};

Result<Manifest> read_manifest(const std::string& dir);
// Writes p2p.json and a small runnable template for `type`; refuses to
// overwrite an existing p2p.json.
Status init(const std::string& dir, const std::string& type, const std::string& name);

// The corestore namespace of an app's channel drive:
// JavaScript `new Hyperdrive(store.namespace('app/' + name + '/' + channel))`.
Hash32 channel_namespace(const std::string& name, const std::string& channel);
// Names never staged: version control, the store, and the manifest's own list.
std::vector<std::string> stage_ignores(const Manifest& m);
// Mirrors `dir` into the drive (pruning what the folder no longer has).
Result<MirrorTotals> stage(const std::string& dir, const Manifest& m, Drive& drive, bool dry_run,
                           const MirrorVisitor& visit);
// Brings `out` up to the drive's content, rewriting only what changed.
Result<MirrorTotals> checkout(Drive& drive, const std::string& out);

}  // namespace p2p::app
