// p2p core append | get | info | list | verify
#include <unistd.h>

#include <iostream>

#include "core/keys.h"
#include "net/remote.h"
#include "tools/cli.h"

namespace p2p::cli {

namespace {

// Blocks per committed batch when appending many lines.
constexpr size_t kBatchBlocks = 4096;
constexpr size_t kBatchBytes = 16 * 1024 * 1024;

nlohmann::json describe(Core& core, const std::string& name) {
  nlohmann::json d = {{"key", to_hex(core.key())},
                      {"id", keys::to_z32(core.key())},
                      {"link", keys::link(core.key())},
                      {"discoveryKey", to_hex(core.discovery_key())},
                      {"length", core.length()},
                      {"byteLength", core.byte_length()},
                      {"fork", core.fork()},
                      {"writable", core.writable()},
                      {"treeHash", to_hex(core.tree_hash())},
                      {"signature", to_hex(core.signature())}};
  if (!name.empty()) d["name"] = name;
  return d;
}

Result<std::unique_ptr<Core>> open_for_append(Context& ctx, const std::string& name) {
  if (keys::looks_like_key(name))
    return invalid_argument("'" + name + "' looks like a key; 'core append' writes to a core by NAME");
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  auto store = (*home)->writer();
  if (!store.ok()) return store.status();
  auto core = (*store)->get(name);
  ctx.note_identity_created();
  return core;
}

// Appends `blocks` and resets them; one transaction per call.
Status flush(Core& core, std::vector<Bytes>& blocks) {
  std::vector<ByteView> views(blocks.begin(), blocks.end());
  auto r = core.append(views);
  blocks.clear();
  return r.status();
}

// Splits `input` into lines (no trailing newline kept) and appends them in batches.
Status append_lines(Core& core, ByteView input, std::vector<Bytes>& pending, size_t& pending_bytes, bool last) {
  size_t start = 0;
  for (size_t i = 0; i < input.size(); i++) {
    if (input[i] != '\n') continue;
    pending.emplace_back(input.begin() + start, input.begin() + i);
    pending_bytes += i - start;
    start = i + 1;
    if (pending.size() >= kBatchBlocks || pending_bytes >= kBatchBytes) {
      P2P_TRY(flush(core, pending));
      pending_bytes = 0;
    }
  }
  if (last && start < input.size()) pending.emplace_back(input.begin() + start, input.end());
  return {};
}

Status append_stdin_lines(Core& core) {
  std::vector<Bytes> pending;
  size_t pending_bytes = 0;
  Bytes carry;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read standard input");
    if (n == 0) break;
    carry.insert(carry.end(), buf, buf + n);
    size_t cut = carry.size();
    while (cut > 0 && carry[cut - 1] != '\n') cut--;
    if (cut == 0) {
      if (carry.size() > kMaxBlockSize) return invalid_argument("a line is longer than the block limit");
      continue;
    }
    P2P_TRY(append_lines(core, ByteView(carry.data(), cut), pending, pending_bytes, false));
    carry.erase(carry.begin(), carry.begin() + static_cast<ptrdiff_t>(cut));
  }
  P2P_TRY(append_lines(core, carry, pending, pending_bytes, true));
  if (!pending.empty()) P2P_TRY(flush(core, pending));
  return {};
}

int append(Context& ctx, const std::string& name, const std::optional<std::string>& data, bool lines) {
  auto core = open_for_append(ctx, name);
  if (!core.ok()) return ctx.fail(core.status());
  uint64_t before = (*core)->length();
  if (data && *data != "-") {
    if (lines) {
      std::vector<Bytes> pending;
      size_t bytes = 0;
      if (Status s = append_lines(**core, as_bytes(*data), pending, bytes, true); !s.ok()) return ctx.fail(s);
      if (Status s = flush(**core, pending); !s.ok()) return ctx.fail(s);
    } else if (auto r = (*core)->append(as_bytes(*data)); !r.ok()) {
      return ctx.fail(r.status());
    }
  } else if (lines) {
    if (Status s = append_stdin_lines(**core); !s.ok()) return ctx.fail(s);
  } else {
    auto input = read_stdin(kMaxBlockSize);
    if (!input.ok())
      return ctx.fail(invalid_argument(input.status().message() +
                                       " (one block holds at most 16 MiB; use --lines to append one block per line)"));
    if (auto r = (*core)->append(*input); !r.ok()) return ctx.fail(r.status());
  }
  uint64_t after = (*core)->length();
  uint64_t added = after - before;
  if (ctx.json) {
    nlohmann::json d = describe(**core, name);
    d["appended"] = added;
    if (added) d["firstIndex"] = before;
    ctx.emit(d);
  } else if (added == 1) {
    ctx.info("appended block " + std::to_string(before) + " to '" + name + "' (length " + std::to_string(after) + ")");
  } else {
    ctx.info("appended " + std::to_string(added) + " blocks to '" + name + "' (length " + std::to_string(after) + ")");
  }
  return kOk;
}

Result<std::unique_ptr<Core>> open_existing(Context& ctx, const std::string& name_or_key) {
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  auto core = (*home)->open_core(name_or_key);
  if (core.status().is_not_found() && !keys::looks_like_key(name_or_key))
    return not_found("no core named '" + name_or_key + "' (see 'p2p core list'; 'p2p core append " + name_or_key +
                     " DATA' creates it)");
  return core;
}

// The core to read: from the local store, or a replica fed by --peer.
struct Source {
  PeerConnection peer;  // declared first: outlives the core
  std::unique_ptr<Core> core;
};

Result<Source> open_source(Context& ctx, const std::string& target, const RemoteOptions& r) {
  Source src;
  if (!r.active()) {
    auto core = open_existing(ctx, target);
    if (!core.ok()) return core.status();
    src.core = std::move(*core);
    return src;
  }
  auto peer = connect_remote(ctx, r, target);
  if (!peer.ok()) return peer.status();
  src.peer = std::move(*peer);
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  auto core = net::open_remote_core(*src.peer.client, (*home)->store(), src.peer.key);
  if (!core.ok()) return core.status();
  src.core = std::move(*core);
  return src;
}

int get(Context& ctx, const std::string& target, uint64_t index, const RemoteOptions& r) {
  auto src = open_source(ctx, target, r);
  if (!src.ok()) return ctx.fail(src.status());
  auto& core = src->core;
  auto block = core->get(index);
  report_fetched(ctx, r, src->peer);
  if (!block.ok()) return ctx.fail(block.status());
  if (ctx.json) {
    nlohmann::json d = {{"index", index}};
    put_value(d, "value", *block);
    ctx.emit(d);
    return kOk;
  }
  std::cout.write(reinterpret_cast<const char*>(block->data()), static_cast<std::streamsize>(block->size()));
  if (stdout_is_tty()) std::cout << "\n";
  std::cout.flush();
  return std::cout ? kOk : kFailure;
}

int download(Context& ctx, const std::string& target, const RemoteOptions& r, uint64_t start,
             std::optional<uint64_t> end) {
  if (!r.active()) return ctx.fail(invalid_argument("download needs --peer HOST:PORT or --from LINK (where to fetch from)"));
  int64_t started = now_ms();
  auto src = open_source(ctx, target, r);
  if (!src.ok()) return ctx.fail(src.status());
  Core& core = *src->core;
  net::RemoteCore* remote = src->peer.client->remote(core);
  uint64_t last = std::min(end.value_or(core.length()), core.length());
  if (start > last) return ctx.fail(invalid_argument("--start is past the end (" + std::to_string(last) + ")"));
  // The bar counts bytes: the whole core's when the range is all of it.
  uint64_t expected_bytes = start == 0 && last == core.length() ? core.byte_length() : 0;
  ProgressBar bar("download " + core.label(), expected_bytes, ctx.progress_allowed());
  uint64_t before = remote->blocks_fetched();
  uint64_t bytes_before = remote->bytes_fetched();
  Status s = remote->download(start, last, [&](uint64_t, uint64_t) { bar.update(remote->bytes_fetched() - bytes_before); });
  uint64_t fetched = remote->blocks_fetched() - before;
  if (!s.ok()) return ctx.fail(s);
  int64_t ms = now_ms() - started;
  if (ctx.json) {
    ctx.emit({{"key", to_hex(core.key())}, {"length", core.length()}, {"start", start}, {"end", last},
              {"fetched", fetched}, {"bytes", remote->bytes_fetched()}, {"had", last - start - fetched}, {"ms", ms}});
  } else {
    ctx.info("downloaded blocks " + std::to_string(start) + ".." + std::to_string(last) + " of " + core.label() + ": " +
             std::to_string(fetched) + " fetched, " + std::to_string(last - start - fetched) + " already here (" +
             std::to_string(ms) + " ms)");
  }
  return kOk;
}

int info(Context& ctx, const std::string& target, const RemoteOptions& r) {
  auto src = open_source(ctx, target, r);
  if (!src.ok()) return ctx.fail(src.status());
  report_fetched(ctx, r, src->peer);
  auto* core = &src->core;
  std::string name = keys::looks_like_key(target) || r.active() ? "" : target;
  nlohmann::json d = describe(**core, name);
  if (ctx.json) {
    ctx.emit(d);
    return kOk;
  }
  if (!name.empty()) std::cout << "name:          " << name << "\n";
  std::cout << "key:           " << d["id"].get<std::string>() << "\n"
            << "key (hex):     " << d["key"].get<std::string>() << "\n"
            << "link:          " << d["link"].get<std::string>() << "\n"
            << "discovery key: " << d["discoveryKey"].get<std::string>() << "\n"
            << "length:        " << (*core)->length() << "\n"
            << "byte length:   " << (*core)->byte_length() << "\n"
            << "fork:          " << (*core)->fork() << "\n"
            << "writable:      " << ((*core)->writable() ? "yes" : "no") << "\n";
  return kOk;
}

int list(Context& ctx) {
  auto home = ctx.home();
  if (!home.ok()) return ctx.fail(home.status());
  auto cores = (*home)->reader().list();
  if (!cores.ok()) return ctx.fail(cores.status());
  for (const NamedCore& c : *cores) {
    if (ctx.json) {
      nlohmann::json d = {{"key", to_hex(c.key)}, {"id", keys::to_z32(c.key)}, {"length", c.length},
                          {"byteLength", c.byte_length}};
      if (!c.name.empty()) d["name"] = c.name;
      if (!c.problem.empty()) d["problem"] = c.problem;
      ctx.emit(d);
    } else {
      std::cout << keys::to_z32(c.key) << "  " << c.length << "  " << (c.name.empty() ? "-" : c.name);
      if (!c.problem.empty()) std::cout << "  (" << c.problem << ")";
      std::cout << "\n";
    }
  }
  return kOk;
}

int verify(Context& ctx, const std::string& target) {
  auto core = open_existing(ctx, target);
  if (!core.ok()) return ctx.fail(core.status());
  if (Status s = (*core)->verify(); !s.ok()) return ctx.fail(s);
  if (ctx.json)
    ctx.emit({{"key", to_hex((*core)->key())}, {"length", (*core)->length()}, {"verified", true}});
  else
    std::cout << "ok: " << (*core)->length() << ((*core)->length() == 1 ? " block verifies" : " blocks verify")
              << " against the signed roots\n";
  return kOk;
}

}  // namespace

void add_core_commands(CLI::App& app, Context& ctx) {
  auto* core = app.add_subcommand("core", "Signed append-only logs (Hypercore), by name or key");
  core->require_subcommand(1);
  const std::string target_help = std::string("A core name, or a key: ") + keys::accepted_forms();

  struct AppendArgs {
    std::string name;
    std::optional<std::string> data;
    bool lines = false;
  };
  auto a = std::make_shared<AppendArgs>();
  auto* append_cmd = core->add_subcommand("append", "Append DATA (or stdin) to the core NAME, creating it on first use");
  append_cmd->add_option("NAME", a->name, "The core's name (its key derives from your identity)")->required();
  append_cmd->add_option("DATA", a->data, "The block; absent or '-': read stdin");
  append_cmd->add_flag("--lines", a->lines, "One block per line instead of one block in all");
  append_cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return append(ctx, a->name, a->data, a->lines); }; });

  struct GetArgs {
    std::vector<std::string> args;  // CORE INDEX, or INDEX alone with --from
    RemoteOptions remote;
  };
  auto g = std::make_shared<GetArgs>();
  auto* get_cmd = core->add_subcommand("get", "Print block INDEX of a core (raw bytes)");
  get_cmd->add_option("CORE INDEX", g->args, target_help + "; then the block index, from 0 (CORE is left out with --from)")
      ->required()
      ->expected(1, 2);
  add_remote_options(get_cmd, g->remote);
  get_cmd->callback([&ctx, g] {
    ctx.run = [&ctx, g] {
      bool with_core = g->args.size() == 2;
      if (!with_core && g->remote.from.empty())
        return ctx.fail(invalid_argument("give CORE and INDEX (or --from LINK and INDEX)"));
      const std::string& index_text = g->args.back();
      char* end = nullptr;
      errno = 0;
      unsigned long long index = std::strtoull(index_text.c_str(), &end, 10);
      if (index_text.empty() || *end != 0 || errno != 0 || index_text[0] == '-')
        return ctx.fail(invalid_argument("INDEX must be a block number, not '" + index_text + "'"));
      return get(ctx, with_core ? g->args[0] : "", index, g->remote);
    };
  });

  struct InfoArgs {
    std::string target;
    RemoteOptions remote;
  };
  auto inf = std::make_shared<InfoArgs>();
  auto* info_cmd = core->add_subcommand("info", "Show a core's key, discovery key, length, byte length and fork");
  info_cmd->add_option("CORE", inf->target, target_help + " (left out with --from)");
  add_remote_options(info_cmd, inf->remote);
  info_cmd->callback([&ctx, inf] {
    ctx.run = [&ctx, inf] {
      if (inf->target.empty() && inf->remote.from.empty()) return ctx.fail(invalid_argument("which core? give CORE or --from LINK"));
      return info(ctx, inf->target, inf->remote);
    };
  });

  struct DownloadArgs {
    std::string target;
    RemoteOptions remote;
    uint64_t start = 0;
    std::optional<uint64_t> end;
  };
  auto dl = std::make_shared<DownloadArgs>();
  auto* download_cmd = core->add_subcommand("download", "Fetch a core's blocks from --peer into the local store");
  download_cmd->add_option("CORE", dl->target, "The core's key (left out with --from)");
  add_remote_options(download_cmd, dl->remote);
  download_cmd->add_option("--start", dl->start, "First block (default 0)");
  download_cmd->add_option("--end", dl->end, "Stop before this block (default: the peer's length)");
  download_cmd->callback([&ctx, dl] {
    ctx.run = [&ctx, dl] { return download(ctx, dl->target, dl->remote, dl->start, dl->end); };
  });

  auto* list_cmd = core->add_subcommand("list", "List the cores in the local store");
  list_cmd->callback([&ctx] { ctx.run = [&ctx] { return list(ctx); }; });

  auto verify_target = std::make_shared<std::string>();
  auto* verify_cmd = core->add_subcommand("verify", "Rehash every block and check the signed roots");
  verify_cmd->add_option("CORE", *verify_target, target_help)->required();
  verify_cmd->callback([&ctx, verify_target] { ctx.run = [&ctx, verify_target] { return verify(ctx, *verify_target); }; });
}

}  // namespace p2p::cli
