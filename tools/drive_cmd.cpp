// p2p drive put | get | ls | rm | info | mirror
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "core/drive.h"
#include "core/keys.h"
#include "core/mirror.h"
#include "net/remote.h"
#include "tools/cli.h"

namespace p2p::cli {

namespace {

namespace fs = std::filesystem;

struct DriveOptions {
  std::string name = "default";
  std::string key;  // --key LINK: someone's drive, read-only
  uint64_t at = 0;
  RemoteOptions remote;  // --peer / --from
  PeerConnection peer;   // set by open_drive with --peer: must outlive the drive's reads
};

Result<std::unique_ptr<Drive>> open_drive(Context& ctx, DriveOptions& o, bool write) {
  if (o.name.empty()) return invalid_argument("--drive needs a name");
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  if (o.remote.active()) {
    if (write) return invalid_argument("--peer and --from read someone's drive; write to your own with --drive");
    if (!o.key.empty() && !o.remote.from.empty() && o.key != o.remote.from)
      return invalid_argument("give the drive with --key or --from, not both");
    auto peer = connect_remote(ctx, o.remote, o.key);
    if (!peer.ok()) return peer.status();
    o.peer = std::move(*peer);
    return net::open_remote_drive(*o.peer.client, (*home)->store(), o.peer.key);
  }
  if (!o.key.empty()) {
    if (write) return invalid_argument("--key opens someone else's drive read-only; write to your own with --drive");
    auto key = keys::parse(o.key);
    if (!key) return invalid_argument("'" + o.key + "' is not a valid key; use " + keys::accepted_forms());
    return Drive::open_by_key((*home)->store(), *key);
  }
  if (!write) {
    // Reading must not create the drive: look its db core up by name first.
    auto db = (*home)->reader().open_name("db", Home::drive_namespace(o.name));
    if (!db.ok()) {
      if (db.status().is_not_found()) return not_found("no drive named '" + o.name + "' (a first 'p2p drive put' creates it)");
      return db.status();
    }
    if (!(*db)->writable()) return Drive::open_by_key((*home)->store(), (*db)->key());
  }
  auto store = (*home)->writer();
  if (!store.ok()) return store.status();
  auto d = Drive::open_writable(**store, Home::drive_namespace(o.name));
  ctx.note_identity_created();
  return d;
}

std::string mode_string(const DriveEntry& e) {
  if (e.linkname) return "l";
  return e.executable ? "x" : "-";
}

nlohmann::json entry_json(const DriveEntry& e) {
  nlohmann::json j = {{"path", e.path}, {"size", e.size()}, {"executable", e.executable}, {"seq", e.seq}};
  j["type"] = e.linkname ? "symlink" : "file";
  if (e.linkname) j["linkname"] = *e.linkname;
  if (e.metadata != "null") j["metadata"] = nlohmann::json::parse(e.metadata, nullptr, false);
  return j;
}

int put(Context& ctx, DriveOptions& o, const std::string& src, std::optional<std::string> dest) {
  auto drive = open_drive(ctx, o, true);
  if (!drive.ok()) return ctx.fail(drive.status());
  Drive& d = **drive;
  if (src == "-") {
    if (!dest) return ctx.fail(invalid_argument("reading stdin needs a DEST path in the drive"));
    ProgressBar bar("put " + *dest, 0, ctx.progress_allowed());
    uint64_t moved = 0;
    Status s = d.put(*dest, [&](uint8_t* buf, size_t n) -> Result<size_t> {
      for (;;) {
        ssize_t r = ::read(STDIN_FILENO, buf, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return io_error("cannot read standard input");
        moved += static_cast<uint64_t>(r);
        bar.update(moved);
        return static_cast<size_t>(r);
      }
    });
    if (!s.ok()) return ctx.fail(s);
    auto e = d.entry(*dest);
    if (ctx.json && e.ok() && e->has_value()) ctx.emit(entry_json(**e));
    else ctx.info("put " + *dest + " (" + std::to_string(moved) + " bytes)");
    return kOk;
  }
  std::error_code ec;
  auto st = fs::symlink_status(src, ec);
  if (ec || !fs::exists(st)) return ctx.fail(not_found(src + " does not exist"));
  std::string target = dest ? *dest : "";  // default: "/NAME" of SRC, also for "dir/"
  if (!dest) {
    fs::path name = fs::path(src).lexically_normal();
    target = "/" + (name.has_filename() ? name.filename() : name.parent_path().filename()).string();
  }
  if (fs::is_directory(st)) {
    auto folder = normalize_drive_folder(target);
    if (!folder.ok()) return ctx.fail(folder.status());
    MirrorOptions mo;
    auto totals = mirror_to_drive(src, d, *folder, mo,
                                  [&](const MirrorChange& c) {
                                    if (ctx.json) ctx.emit({{"op", std::string(1, c.op)}, {"path", c.path}, {"size", c.bytes}});
                                    else std::cout << c.op << " " << c.path << "\n";
                                  });
    if (!totals.ok()) return ctx.fail(totals.status());
    ctx.info("put " + std::to_string(totals->added + totals->changed) + " files (" + std::to_string(totals->bytes) +
             " bytes), " + std::to_string(totals->unchanged) + " unchanged");
    return kOk;
  }
  auto size = fs::is_regular_file(st) ? fs::file_size(src, ec) : 0;
  ProgressBar bar("put " + target, size, ctx.progress_allowed());
  Status s = put_file(d, src, target, [&](uint64_t done) { bar.update(done); });
  if (!s.ok()) return ctx.fail(s);
  auto e = d.entry(target);
  if (!e.ok() || !e->has_value()) return ctx.fail(e.ok() ? not_found(target) : e.status());
  if (ctx.json) ctx.emit(entry_json(**e));
  else ctx.info("put " + (*e)->path + " (" + std::to_string((*e)->size()) + " bytes)");
  return kOk;
}

int get(Context& ctx, DriveOptions& o, const std::string& path, const std::optional<std::string>& out) {
  auto drive = open_drive(ctx, o, false);
  if (!drive.ok()) return ctx.fail(drive.status());
  Drive& d = **drive;
  auto e = d.entry(path, o.at);
  if (!e.ok() && e.status().code() != ErrorCode::invalid_argument) return ctx.fail(e.status());
  if (e.ok() && e->has_value()) {
    const DriveEntry& entry = **e;
    if (!out || *out == "-") {
      if (entry.linkname) return ctx.fail(invalid_argument(entry.path + " is a symlink to " + *entry.linkname));
      Status s = d.read(entry, [&](ByteView chunk) {
        std::cout.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(chunk.size()));
        return static_cast<bool>(std::cout);
      });
      std::cout.flush();
      if (!s.ok()) return ctx.fail(s);
      return std::cout ? kOk : kFailure;
    }
    std::string target = *out;
    std::error_code ec;
    if (fs::is_directory(target, ec)) target = (fs::path(target) / fs::path(entry.path).filename()).string();
    ProgressBar bar("get " + entry.path, entry.size(), ctx.progress_allowed());
    Status s = get_file(d, entry, target, [&](uint64_t done) { bar.update(done); });
    if (!s.ok()) return ctx.fail(s);
    if (ctx.json) ctx.emit({{"path", entry.path}, {"out", target}, {"size", entry.size()}});
    else ctx.info("got " + entry.path + " -> " + target);
    return kOk;
  }
  // Not a file: a folder?
  auto folder = normalize_drive_folder(path);
  if (!folder.ok()) return ctx.fail(folder.status());
  bool any = false;
  if (Status s = d.list(*folder, [&](const DriveEntry&) { return !(any = true); }, o.at); !s.ok()) return ctx.fail(s);
  if (!any) return ctx.fail(not_found(path + " is not in the drive"));
  if (!out || *out == "-") return ctx.fail(invalid_argument(*folder + " is a folder: give an OUT folder to copy it into"));
  MirrorOptions mo;
  auto totals = mirror_to_folder(d, *folder, *out, mo, [&](const MirrorChange& c) {
    if (ctx.json) ctx.emit({{"op", std::string(1, c.op)}, {"path", c.path}, {"size", c.bytes}});
  }, o.at);
  if (!totals.ok()) return ctx.fail(totals.status());
  ctx.info("got " + std::to_string(totals->added + totals->changed) + " files (" + std::to_string(totals->bytes) +
           " bytes) into " + *out + ", " + std::to_string(totals->unchanged) + " already there");
  return kOk;
}

int ls(Context& ctx, DriveOptions& o, const std::string& path, bool long_format, bool recursive) {
  auto drive = open_drive(ctx, o, false);
  if (!drive.ok()) {
    if (drive.status().is_not_found() && o.key.empty() && !o.remote.active()) return kOk;  // a drive never written is empty
    return ctx.fail(drive.status());
  }
  Drive& d = **drive;
  auto folder = normalize_drive_folder(path);
  if (!folder.ok()) return ctx.fail(folder.status());
  // A file path lists just that file.
  if (*folder != "/") {
    auto e = d.entry(*folder, o.at);
    if (e.ok() && e->has_value()) {
      if (ctx.json) ctx.emit(entry_json(**e));
      else if (long_format)
        std::cout << mode_string(**e) << " " << (*e)->size() << "\t" << (*e)->path
                  << ((*e)->linkname ? " -> " + *(*e)->linkname : "") << "\n";
      else std::cout << (*e)->path << "\n";
      return kOk;
    }
  }
  Status s;
  if (recursive) {
    s = d.list(*folder, [&](const DriveEntry& e) {
      if (ctx.json) ctx.emit(entry_json(e));
      else if (long_format) std::cout << mode_string(e) << " " << e.size() << "\t" << e.path << (e.linkname ? " -> " + *e.linkname : "") << "\n";
      else std::cout << e.path << "\n";
      return static_cast<bool>(std::cout);
    }, o.at);
  } else {
    const std::string base = *folder == "/" ? "" : *folder;
    s = d.readdir(*folder, [&](const std::string& name, bool is_dir) {
      if (is_dir) {
        if (ctx.json) ctx.emit({{"path", base + "/" + name}, {"type", "folder"}});
        else std::cout << (long_format ? "d -\t" : "") << name << "/\n";
        return true;
      }
      if (!ctx.json && !long_format) {
        std::cout << name << "\n";
        return true;
      }
      auto e = d.entry(base + "/" + name, o.at);
      if (!e.ok() || !e->has_value()) return true;
      if (ctx.json) ctx.emit(entry_json(**e));
      else std::cout << mode_string(**e) << " " << (*e)->size() << "\t" << name << ((*e)->linkname ? " -> " + *(*e)->linkname : "") << "\n";
      return static_cast<bool>(std::cout);
    }, o.at);
  }
  if (!s.ok()) return ctx.fail(s);
  return kOk;
}

int rm(Context& ctx, DriveOptions& o, const std::string& path, bool recursive) {
  auto drive = open_drive(ctx, o, true);
  if (!drive.ok()) return ctx.fail(drive.status());
  Drive& d = **drive;
  auto e = d.entry(path);
  if (e.ok() && e->has_value()) {
    if (auto r = d.del(path); !r.ok()) return ctx.fail(r.status());
    if (ctx.json) ctx.emit({{"removed", (*e)->path}});
    else ctx.info("removed " + (*e)->path);
    return kOk;
  }
  auto folder = normalize_drive_folder(path);
  if (!folder.ok()) return ctx.fail(folder.status());
  std::vector<std::string> under;
  if (Status s = d.list(*folder, [&](const DriveEntry& x) {
        under.push_back(x.path);
        return true;
      }); !s.ok())
    return ctx.fail(s);
  if (under.empty()) return ctx.fail(not_found(path + " is not in the drive"));
  if (!recursive)
    return ctx.fail(invalid_argument(*folder + " is a folder of " + std::to_string(under.size()) +
                                     " files; use --recursive to remove them all"));
  for (const auto& p : under) {
    if (auto r = d.del(p); !r.ok()) return ctx.fail(r.status());
    if (ctx.json) ctx.emit({{"removed", p}});
  }
  ctx.info("removed " + std::to_string(under.size()) + " files under " + *folder);
  return kOk;
}

int info(Context& ctx, DriveOptions& o) {
  auto drive = open_drive(ctx, o, false);
  if (!drive.ok()) return ctx.fail(drive.status());
  Drive& d = **drive;
  auto version = d.version();
  if (!version.ok()) return ctx.fail(version.status());
  auto stats = d.stats(o.at);
  if (!stats.ok()) return ctx.fail(stats.status());
  const auto [files, bytes] = *stats;
  const Core& db = d.db();
  nlohmann::json j = {{"key", to_hex(db.key())},        {"id", keys::to_z32(db.key())},
                      {"link", keys::link(db.key())},   {"discoveryKey", to_hex(db.discovery_key())},
                      {"version", o.at ? o.at : *version}, {"files", files},
                      {"bytes", bytes},                 {"blobsKey", to_hex(d.blobs().key())},
                      {"writable", d.writable()}};
  if (o.key.empty() && !o.remote.active()) j["drive"] = o.name;
  if (ctx.json) {
    ctx.emit(j);
    return kOk;
  }
  if (o.key.empty() && !o.remote.active()) std::cout << "drive:         " << o.name << "\n";
  std::cout << "key:           " << j["id"].get<std::string>() << "\n"
            << "key (hex):     " << j["key"].get<std::string>() << "\n"
            << "link:          " << j["link"].get<std::string>() << "\n"
            << "discovery key: " << j["discoveryKey"].get<std::string>() << "\n"
            << "version:       " << j["version"] << "\n"
            << "files:         " << files << "\n"
            << "bytes:         " << bytes << "\n"
            << "writable:      " << (d.writable() ? "yes" : "no") << "\n";
  return kOk;
}

struct MirrorArgs {
  std::string dir;
  std::string prefix = "/";
  bool to_drive = false, to_folder = false, prune = false, dry_run = false;
  std::vector<std::string> ignore;
};

int mirror(Context& ctx, DriveOptions& o, const MirrorArgs& a) {
  if (a.to_drive && a.to_folder) return ctx.fail(invalid_argument("choose --to-drive or --to-folder, not both"));
  if (o.at && !a.to_folder) return ctx.fail(invalid_argument("--at reads an older version: it only goes with --to-folder"));
  bool to_folder = a.to_folder;
  auto drive = open_drive(ctx, o, !to_folder);
  if (!drive.ok()) return ctx.fail(drive.status());
  auto prefix = normalize_drive_folder(a.prefix);
  if (!prefix.ok()) return ctx.fail(prefix.status());
  std::error_code ec;
  if (!to_folder && !fs::is_directory(a.dir, ec)) return ctx.fail(not_found(a.dir + " is not a folder"));
  MirrorOptions mo{a.prune, a.dry_run, a.ignore};
  auto print = [&](const MirrorChange& c) {
    if (ctx.json) ctx.emit({{"op", std::string(1, c.op)}, {"path", c.path}, {"size", c.bytes}});
    else std::cout << c.op << " " << c.path << "\n";
  };
  auto totals = to_folder ? mirror_to_folder(**drive, *prefix, a.dir, mo, print, o.at)
                          : mirror_to_drive(a.dir, **drive, *prefix, mo, print);
  if (!totals.ok()) return ctx.fail(totals.status());
  const MirrorTotals& t = *totals;
  if (ctx.json) {
    ctx.emit({{"added", t.added}, {"changed", t.changed}, {"removed", t.removed}, {"unchanged", t.unchanged},
              {"bytes", t.bytes}, {"dryRun", a.dry_run}});
  } else {
    std::cout << (a.dry_run ? "would mirror: " : "mirrored: ") << t.added << " added, " << t.changed << " changed, "
              << t.removed << " removed, " << t.unchanged << " unchanged (" << t.bytes << " bytes)\n";
  }
  return kOk;
}

}  // namespace

void add_drive_commands(CLI::App& app, Context& ctx) {
  auto* drive = app.add_subcommand("drive", "A versioned file system (Hyperdrive): files, folders, symlinks");
  drive->require_subcommand(1);
  auto o = std::make_shared<DriveOptions>();
  drive->add_option("--drive", o->name, "Which of your drives (default 'default')");
  drive->add_option("--key", o->key, "Read someone's drive by key (read-only)");
  add_remote_options(drive, o->remote);

  auto src = std::make_shared<std::string>();
  auto dest = std::make_shared<std::optional<std::string>>();
  auto* put_cmd = drive->add_subcommand("put", "Copy a file or a folder (recursively) into the drive; '-' reads stdin");
  put_cmd->add_option("SRC", *src, "A file, a folder, or '-' for stdin")->required();
  put_cmd->add_option("DEST", *dest, "Path in the drive (default /NAME of SRC)");
  put_cmd->callback([&ctx, o, src, dest] { ctx.run = [&ctx, o, src, dest] { return put(ctx, *o, *src, *dest); }; });

  auto path = std::make_shared<std::string>();
  auto out = std::make_shared<std::optional<std::string>>();
  auto* get_cmd = drive->add_subcommand("get", "Copy a file to OUT (stdout when OUT is '-' or absent), or a folder into OUT");
  get_cmd->add_option("PATH", *path, "A file or folder in the drive")->required();
  get_cmd->add_option("OUT", *out, "Where to write it");
  get_cmd->add_option("--at", o->at, "Read an older VERSION")->check(CLI::PositiveNumber);
  get_cmd->callback([&ctx, o, path, out] {
    ctx.run = [&ctx, o, path, out] {
      int rc = get(ctx, *o, *path, *out);
      report_fetched(ctx, o->remote, o->peer);
      return rc;
    };
  });

  auto ls_path = std::make_shared<std::string>("/");
  auto long_format = std::make_shared<bool>(false);
  auto recursive = std::make_shared<bool>(false);
  auto* ls_cmd = drive->add_subcommand("ls", "List a folder (default /): names, or -l with type and size");
  ls_cmd->add_option("PATH", *ls_path, "A folder or file in the drive");
  ls_cmd->add_flag("-l", *long_format, "Type (- file, x executable, l symlink, d folder) and size");
  ls_cmd->add_flag("-r,--recursive", *recursive, "Every file below, with full paths");
  ls_cmd->add_option("--at", o->at, "List an older VERSION")->check(CLI::PositiveNumber);
  ls_cmd->callback([&ctx, o, ls_path, long_format, recursive] {
    ctx.run = [&ctx, o, ls_path, long_format, recursive] {
      int rc = ls(ctx, *o, *ls_path, *long_format, *recursive);
      report_fetched(ctx, o->remote, o->peer);
      return rc;
    };
  });

  auto rm_recursive = std::make_shared<bool>(false);
  auto* rm_cmd = drive->add_subcommand("rm", "Remove a file, or a folder with --recursive");
  rm_cmd->add_option("PATH", *path, "A file or folder in the drive")->required();
  rm_cmd->add_flag("-r,--recursive", *rm_recursive, "Remove a folder and everything in it");
  rm_cmd->callback([&ctx, o, path, rm_recursive] { ctx.run = [&ctx, o, path, rm_recursive] { return rm(ctx, *o, *path, *rm_recursive); }; });

  auto* info_cmd = drive->add_subcommand("info", "The drive's key, p2p:// link, version, files and bytes");
  info_cmd->add_option("--at", o->at, "Describe an older VERSION")->check(CLI::PositiveNumber);
  info_cmd->callback([&ctx, o] { ctx.run = [&ctx, o] { return info(ctx, *o); }; });

  auto m = std::make_shared<MirrorArgs>();
  auto* mirror_cmd = drive->add_subcommand("mirror", "One-way sync of DIR into the drive (default) or the drive into DIR");
  mirror_cmd->add_option("DIR", m->dir, "The host folder")->required();
  mirror_cmd->add_flag("--to-drive", m->to_drive, "DIR -> drive (the default)");
  mirror_cmd->add_flag("--to-folder", m->to_folder, "drive -> DIR");
  mirror_cmd->add_option("--path", m->prefix, "Folder in the drive (default /)");
  mirror_cmd->add_flag("--prune", m->prune, "Also remove what the source does not have");
  mirror_cmd->add_flag("--dry-run", m->dry_run, "Show what would change; change nothing");
  mirror_cmd->add_option("--ignore", m->ignore, "Skip names matching PATTERN (repeatable; * and ? wildcards)");
  mirror_cmd->add_option("--at", o->at, "Mirror an older VERSION (with --to-folder)")->check(CLI::PositiveNumber);
  mirror_cmd->callback([&ctx, o, m] { ctx.run = [&ctx, o, m] { return mirror(ctx, *o, *m); }; });
}

}  // namespace p2p::cli
