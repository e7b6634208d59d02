#include "core/app.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/corestore.h"
#include "storage/files.h"

namespace p2p::app {

namespace fs = std::filesystem;

namespace {

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 214) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return n[0] != '.';
}

// Template files never replace what the folder already has.
Status write_text(const fs::path& path, const std::string& text, bool executable = false) {
  std::error_code ec;
  if (fs::exists(path, ec)) return {};
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) return io_error("cannot write " + path.string());
  out.close();
  if (executable) ::chmod(path.c_str(), 0755);
  return {};
}

}  // namespace

Result<Manifest> read_manifest(const std::string& dir) {
  std::string path = (fs::path(dir) / kManifestFile).string();
  auto bytes = storage::read_file(path, 1 << 20);
  if (!bytes.ok()) {
    if (bytes.status().is_not_found())
      return not_found("no " + std::string(kManifestFile) + " in " + dir + " (create one with 'p2p init')");
    return bytes.status();
  }
  auto j = nlohmann::json::parse(as_chars(*bytes), nullptr, false);
  auto bad = [&](const std::string& why) { return invalid_argument(path + ": " + why); };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  Manifest m;
  auto str = [&](const char* field, std::string& out, bool required) -> Status {
    auto it = j.find(field);
    if (it == j.end()) return required ? bad(std::string("\"") + field + "\" is missing") : Status{};
    if (!it->is_string()) return bad(std::string("\"") + field + "\" must be a string");
    out = it->get<std::string>();
    return {};
  };
  P2P_TRY(str("name", m.name, true));
  P2P_TRY(str("type", m.type, false));
  P2P_TRY(str("main", m.main, false));
  P2P_TRY(str("version", m.version, false));
  P2P_TRY(str("description", m.description, false));
  if (!valid_name(m.name)) return bad("\"name\" must be letters, digits, '-', '_' or '.'");
  if (m.type != "terminal" && m.type != "web" && m.type != "dataset")
    return bad("\"type\" must be \"terminal\", \"web\" or \"dataset\"");
  if (m.main.empty() && m.type != "dataset") m.main = m.type == "web" ? "index.html" : "main.sh";
  if (auto it = j.find("ignore"); it != j.end()) {
    if (!it->is_array()) return bad("\"ignore\" must be a list of patterns");
    for (const auto& p : *it) {
      if (!p.is_string()) return bad("\"ignore\" must be a list of patterns");
      m.ignore.push_back(p.get<std::string>());
    }
  }
  if (!m.main.empty()) {
    auto normalized = normalize_drive_path(m.main);
    if (!normalized.ok()) return bad("\"main\": " + normalized.status().message());
  }
  return m;
}

Status init(const std::string& dir, const std::string& type, const std::string& name) {
  if (type != "terminal" && type != "web" && type != "dataset")
    return invalid_argument("--type must be terminal, web or dataset");
  std::error_code ec;
  if (fs::exists(fs::path(dir) / kManifestFile, ec))
    return invalid_argument((fs::path(dir) / kManifestFile).string() + " already exists");
  if (!valid_name(name))
    return invalid_argument("'" + name + "' is not a usable app name: use letters, digits, '-', '_' or '.' (or --name)");
  fs::create_directories(dir, ec);
  if (ec) return io_error("cannot create " + dir + ": " + ec.message());
  fs::path manifest = fs::path(dir) / kManifestFile;
  nlohmann::ordered_json j = {{"name", name}, {"type", type}};
  if (type == "terminal") {
    j["main"] = "main.sh";
    P2P_TRY(write_text(fs::path(dir) / "main.sh",
                       "#!/bin/sh\n# Runs with the arguments given to 'p2p run'; its exit code is the app's.\n"
                       "echo \"hello from " + name + "\"\nfor arg in \"$@\"; do echo \"arg: $arg\"; done\n",
                       true));
  } else if (type == "web") {
    j["main"] = "index.html";
    P2P_TRY(write_text(fs::path(dir) / "index.html",
                       "<!doctype html>\n<html>\n<head><meta charset=\"utf-8\"><title>" + name +
                           "</title></head>\n<body>\n<h1>" + name + "</h1>\n<p>Served by p2p.</p>\n</body>\n</html>\n"));
  } else {
    P2P_TRY(write_text(fs::path(dir) / "README.md", "# " + name + "\n\nA dataset shared with p2p.\n"));
  }
  j["version"] = "0.1.0";
  j["description"] = "";
  j["ignore"] = nlohmann::json::array({"node_modules", "*.log"});
  return write_text(manifest, j.dump(2) + "\n");
}

Hash32 channel_namespace(const std::string& name, const std::string& channel) {
  return Corestore::child_namespace(kDefaultNamespace, "app/" + name + "/" + channel);
}

std::vector<std::string> stage_ignores(const Manifest& m) {
  std::vector<std::string> out = {".git", ".p2p"};
  out.insert(out.end(), m.ignore.begin(), m.ignore.end());
  return out;
}

Result<MirrorTotals> stage(const std::string& dir, const Manifest& m, Drive& drive, bool dry_run,
                           const MirrorVisitor& visit) {
  MirrorOptions o;
  o.prune = true;
  o.dry_run = dry_run;
  o.ignore = stage_ignores(m);
  return mirror_to_drive(dir, drive, "/", o, visit);
}

Result<MirrorTotals> checkout(Drive& drive, const std::string& out) {
  MirrorOptions o;
  o.prune = true;
  return mirror_to_folder(drive, "/", out, o, [](const MirrorChange&) {});
}

}  // namespace p2p::app
