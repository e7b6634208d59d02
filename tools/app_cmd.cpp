// p2p init | stage | info | run: apps and datasets.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "core/app.h"
#include "core/keys.h"
#include "net/remote.h"
#include "net/static_server.h"
#include "tools/cli.h"

namespace p2p::cli {

namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// While a terminal app runs, termination signals sent to p2p are passed on to it.
volatile pid_t g_child = 0;
void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}

std::string absolute(const std::string& dir) {
  std::error_code ec;
  auto p = fs::absolute(dir, ec);
  return (ec ? fs::path(dir) : p).lexically_normal().string();
}

// The channel drive of the app in `dir`, opened for writing (stage) or reading.
Result<std::unique_ptr<Drive>> channel_drive(Context& ctx, const app::Manifest& m, const std::string& channel, bool write) {
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  Hash32 ns = app::channel_namespace(m.name, channel);
  if (write) {
    auto store = (*home)->writer();
    if (!store.ok()) return store.status();
    auto d = Drive::open_writable(**store, ns);
    ctx.note_identity_created();
    return d;
  }
  auto db = (*home)->reader().open_name("db", ns);
  if (!db.ok()) {
    if (db.status().is_not_found())
      return not_found("channel '" + channel + "' of " + m.name + " was never staged (run 'p2p stage " + channel + "')");
    return db.status();
  }
  return Drive::open_by_key((*home)->store(), (*db)->key());
}

// Where a link's drive comes from: the local store, or --peer.
struct DriveSource {
  RemoteOptions remote;
  PeerConnection peer;  // kept while the drive is read
  bool full = false;  // fetch every block up front (run checks an app out whole)
};

Result<std::unique_ptr<Drive>> drive_by_link(Context& ctx, const std::string& link, DriveSource& src) {
  auto key = keys::parse(link);
  if (!key) return invalid_argument("'" + link + "' is not a valid key; use " + keys::accepted_forms());
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  if (src.remote.active()) {
    auto peer = connect_remote(ctx, src.remote, link);
    if (!peer.ok()) return peer.status();
    src.peer = std::move(*peer);
    auto d = net::open_remote_drive(*src.peer.client, (*home)->store(), src.peer.key);
    if (d.ok() && src.full) P2P_TRY(net::download_drive(*src.peer.client, **d));
    return d;
  }
  auto d = Drive::open_by_key((*home)->store(), *key);
  if (!d.status().is_not_found()) return d;
  // Not here: look for a peer holding it on the DHT, as --from would.
  src.remote.from = link;
  auto fetched = drive_by_link(ctx, link, src);
  if (fetched.status().is_not_found())
    return not_found("the drive " + keys::link(*key) + " is not in the local store, and " + fetched.status().message());
  return fetched;
}

int init(Context& ctx, const std::string& type, const std::string& dir, std::string name) {
  if (name.empty()) {
    fs::path p = absolute(dir);
    name = (p.has_filename() ? p.filename() : p.parent_path().filename()).string();  // "dir/" too
  }
  if (Status s = app::init(dir, type, name); !s.ok()) return ctx.fail(s);
  if (ctx.json) ctx.emit({{"dir", absolute(dir)}, {"name", name}, {"type", type}});
  else std::cout << "created " << type << " app '" << name << "' in " << absolute(dir) << " (edit p2p.json, then 'p2p stage')\n";
  return kOk;
}

int stage(Context& ctx, const std::string& channel, const std::string& dir, bool dry_run) {
  if (channel.empty()) return ctx.fail(invalid_argument("a channel needs a name"));
  auto m = app::read_manifest(dir);
  if (!m.ok()) return ctx.fail(m.status());
  // A dry run never creates the channel: compare with the staged drive, or with an empty one in memory.
  auto scratch = storage::open_memory();
  Corestore scratch_store(*scratch, crypto::random_key());
  Result<std::unique_ptr<Drive>> drive = dry_run ? channel_drive(ctx, *m, channel, false) : channel_drive(ctx, *m, channel, true);
  if (dry_run && drive.status().is_not_found()) drive = Drive::open_writable(scratch_store, kDefaultNamespace);
  if (!drive.ok()) return ctx.fail(drive.status());
  auto totals = app::stage(dir, *m, **drive, dry_run, [&](const MirrorChange& c) {
    if (ctx.json) ctx.emit({{"op", std::string(1, c.op)}, {"path", c.path}, {"size", c.bytes}});
    else std::cout << c.op << " " << c.path << "\n";
  });
  if (!totals.ok()) return ctx.fail(totals.status());
  auto version = (*drive)->version();
  if (!version.ok()) return ctx.fail(version.status());
  const Key32& key = (*drive)->db().key();
  if (ctx.json) {
    ctx.emit({{"name", m->name}, {"channel", channel}, {"key", to_hex(key)}, {"id", keys::to_z32(key)},
              {"link", keys::link(key)}, {"version", *version}, {"added", totals->added},
              {"changed", totals->changed}, {"removed", totals->removed}, {"dryRun", dry_run}});
  } else {
    std::cout << (dry_run ? "would stage " : "staged ") << m->name << " (" << channel << "): " << totals->added
              << " added, " << totals->changed << " changed, " << totals->removed << " removed, version " << *version
              << "\n"
              << keys::link(key) << "\n";
  }
  return kOk;
}

// A link, or a channel of the app in `dir`.
Result<std::unique_ptr<Drive>> resolve_drive(Context& ctx, const std::string& target, const std::string& dir,
                                             DriveSource& src) {
  if (src.remote.active()) {
    if (!src.remote.from.empty() && !target.empty() && target != src.remote.from)
      return invalid_argument("give the app as TARGET or with --from, not both");
    return drive_by_link(ctx, src.remote.from.empty() ? target : src.remote.from, src);
  }
  if (target.empty()) return invalid_argument("which app? give a link, a channel or a folder (or --from LINK)");
  if (keys::looks_like_key(target)) return drive_by_link(ctx, target, src);
  auto m = app::read_manifest(dir);
  if (!m.ok()) return m.status();
  return channel_drive(ctx, *m, target, false);
}

int info(Context& ctx, const std::string& target, const std::string& dir, DriveSource& src) {
  auto drive = resolve_drive(ctx, target, dir, src);
  if (!drive.ok()) return ctx.fail(drive.status());
  Drive& d = **drive;
  auto version = d.version();
  if (!version.ok()) return ctx.fail(version.status());
  auto stats = d.stats();
  report_fetched(ctx, src.remote, src.peer);
  if (!stats.ok()) return ctx.fail(stats.status());
  const auto [files, bytes] = *stats;
  const Core& db = d.db();
  nlohmann::json j = {{"key", to_hex(db.key())},      {"id", keys::to_z32(db.key())},
                      {"link", keys::link(db.key())}, {"discoveryKey", to_hex(db.discovery_key())},
                      {"version", *version},          {"files", files},
                      {"bytes", bytes}};
  if (ctx.json) {
    ctx.emit(j);
    return kOk;
  }
  std::cout << "key:           " << j["id"].get<std::string>() << "\n"
            << "link:          " << j["link"].get<std::string>() << "\n"
            << "discovery key: " << j["discoveryKey"].get<std::string>() << "\n"
            << "version:       " << *version << "\n"
            << "files:         " << files << "\n"
            << "bytes:         " << bytes << "\n";
  return kOk;
}

// Runs `main` from `folder` with `args`; returns its exit code (128+N when killed by signal N).
Result<int> run_terminal(const std::string& folder, const app::Manifest& m, const std::vector<std::string>& args) {
  auto rel = normalize_drive_path(m.main);
  if (!rel.ok()) return rel.status();
  std::string path = folder + *rel;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return not_found("the app's main file " + m.main + " is missing");
  std::vector<std::string> argv;
  auto ends = [&](const char* ext) { return path.size() > std::strlen(ext) && path.ends_with(ext); };
  if (st.st_mode & S_IXUSR) argv = {path};
  else if (ends(".sh")) argv = {"/bin/sh", path};
  else if (ends(".js") || ends(".mjs")) argv = {"node", path};
  else if (ends(".py")) argv = {"python3", path};
  else return invalid_argument("the app's main file " + m.main + " is not executable and has no known interpreter");
  argv.insert(argv.end(), args.begin(), args.end());
  std::cout.flush();
  pid_t pid = ::fork();
  if (pid < 0) return io_error("cannot start the app");
  if (pid == 0) {
    ::setenv("P2P_APP_DIR", folder.c_str(), 1);
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    ::execvp(cargs[0], cargs.data());
    std::cerr << "p2p: cannot run " << argv[0] << ": " << std::strerror(errno) << "\n";
    ::_exit(127);
  }
  // Ctrl-C reaches the app (same process group); we only wait for it.
  g_child = pid;
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, forward_signal);
  std::signal(SIGHUP, forward_signal);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

int run(Context& ctx, const std::string& target, const std::string& dir, const std::vector<std::string>& args,
        uint16_t port, const std::string& out, DriveSource& src) {
  std::string folder;
  std::error_code ec;
  if (!src.remote.active() && fs::is_directory(target, ec) && fs::exists(fs::path(target) / app::kManifestFile, ec)) {
    folder = absolute(target);  // a local app folder runs in place
  } else {
    src.full = true;
    auto drive = resolve_drive(ctx, target, dir, src);
    if (!drive.ok()) return ctx.fail(drive.status());
    auto home = ctx.home();
    if (!home.ok()) return ctx.fail(home.status());
    folder = (*home)->path() + "/apps/" + to_hex((*drive)->db().key());
    auto totals = app::checkout(**drive, folder);
    report_fetched(ctx, src.remote, src.peer);  // now: the app may run until Ctrl-C
    if (!totals.ok()) return ctx.fail(totals.status());
    if (totals->added + totals->changed + totals->removed > 0)
      ctx.info("checked out " + std::to_string(totals->added + totals->changed) + " changed files into " + folder);
  }
  auto m = app::read_manifest(folder);
  if (!m.ok()) return ctx.fail(m.status());

  if (m->type == "dataset") {
    std::string dest = out.empty() ? folder : absolute(out);
    if (!out.empty() && dest != folder) {
      std::error_code e2;
      fs::create_directories(dest, e2);
      fs::copy(folder, dest, fs::copy_options::recursive | fs::copy_options::overwrite_existing |
                                 fs::copy_options::copy_symlinks, e2);
      if (e2) return ctx.fail(io_error("cannot copy the dataset into " + dest + ": " + e2.message()));
    }
    if (ctx.json) ctx.emit({{"name", m->name}, {"type", "dataset"}, {"path", dest}});
    else std::cout << dest << "\n";
    return kOk;
  }
  if (m->type == "web") {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    net::StaticServerOptions so;
    so.root = folder;
    so.port = port;
    auto index = normalize_drive_path(m->main);
    if (index.ok()) so.index = index->substr(1);
    Status s = net::serve_folder(so, [&](uint16_t bound) {
      std::string url = "http://127.0.0.1:" + std::to_string(bound) + "/";
      if (ctx.json) ctx.emit({{"name", m->name}, {"url", url}});
      else std::cout << url << "\n";
      std::cout.flush();
      ctx.info("serving " + m->name + " until Ctrl-C");
    }, g_stop);
    if (!s.ok()) return ctx.fail(s);
    return kOk;
  }
  auto code = run_terminal(folder, *m, args);
  if (!code.ok()) return ctx.fail(code.status());
  return *code;
}

}  // namespace

void add_app_commands(CLI::App& app, Context& ctx) {
  struct InitArgs {
    std::string type = "terminal", dir = ".", name;
  };
  auto i = std::make_shared<InitArgs>();
  auto* init_cmd = app.add_subcommand("init", "Create an app or dataset folder with a p2p.json manifest");
  init_cmd->add_option("DIR", i->dir, "The folder (default: the current one)");
  init_cmd->add_option("--type", i->type, "terminal, web or dataset")->check(CLI::IsMember({"terminal", "web", "dataset"}));
  init_cmd->add_option("--name", i->name, "The app's name (default: the folder's name)");
  init_cmd->callback([&ctx, i] { ctx.run = [&ctx, i] { return init(ctx, i->type, i->dir, i->name); }; });

  struct StageArgs {
    std::string channel = "dev", dir = ".";
    bool dry_run = false;
  };
  auto s = std::make_shared<StageArgs>();
  auto* stage_cmd = app.add_subcommand("stage", "Mirror the app folder into a channel's drive; print the diff and the link");
  stage_cmd->add_option("CHANNEL", s->channel, "The channel (default dev)");
  stage_cmd->add_option("DIR", s->dir, "The app folder (default: the current one)");
  stage_cmd->add_flag("--dry-run", s->dry_run, "Show what would change; change nothing");
  stage_cmd->callback([&ctx, s] { ctx.run = [&ctx, s] { return stage(ctx, s->channel, s->dir, s->dry_run); }; });

  struct TargetArgs {
    std::string target, dir = ".", out;
    std::vector<std::string> args;
    uint16_t port = 0;
    DriveSource source;
  };
  auto t = std::make_shared<TargetArgs>();
  auto* info_cmd = app.add_subcommand("info", "Key, discovery key, version, files and bytes of a link or a channel");
  info_cmd->add_option("TARGET", t->target, "A p2p:// link or key, or a channel of the app in --dir");
  info_cmd->add_option("--dir", t->dir, "The app folder for a channel (default: the current one)");
  add_remote_options(info_cmd, t->source.remote);
  info_cmd->callback([&ctx, t] { ctx.run = [&ctx, t] { return info(ctx, t->target, t->dir, t->source); }; });

  auto* run_cmd = app.add_subcommand("run", "Run an app: a folder, a channel, or a link (from the local store or --peer)");
  run_cmd->add_option("TARGET", t->target, "An app folder, a channel of the app in --dir, or a p2p:// link");
  run_cmd->add_option("ARGS", t->args, "Arguments for the app (after --)");
  run_cmd->add_option("--dir", t->dir, "The app folder for a channel (default: the current one)");
  run_cmd->add_option("--port", t->port, "Port for a web app (default: any free port)");
  run_cmd->add_option("--out", t->out, "Where to put a dataset (default: the cache folder)");
  add_remote_options(run_cmd, t->source.remote);
  run_cmd->callback([&ctx, t] {
    ctx.run = [&ctx, t] { return run(ctx, t->target, t->dir, t->args, t->port, t->out, t->source); };
  });
}

}  // namespace p2p::cli
