// p2p kv put | get | del | list | import | export | version | diff | history | info
#include <unistd.h>

#include <iostream>

#include "core/bee.h"
#include "core/keys.h"
#include "core/kv_io.h"
#include "net/remote.h"
#include "tools/cli.h"

namespace p2p::cli {

namespace {

// Entries per committed batch on import.
constexpr size_t kImportBatch = 5000;
constexpr size_t kImportBatchBytes = 16 * 1024 * 1024;

struct KvOptions {
  std::string db = "default";
  std::string key;  // --key LINK: open someone's bee read-only
  uint64_t at = 0;  // --at VERSION
  RemoteOptions remote;  // --peer / --from
};

struct OpenBee {
  PeerConnection peer;  // first: outlives the core
  std::unique_ptr<Core> core;
  std::unique_ptr<Bee> bee;
  std::string label;  // for messages
};

Result<OpenBee> open_bee(Context& ctx, const KvOptions& o, bool write) {
  if (o.db.empty()) return invalid_argument("--db needs a name");
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  OpenBee out;
  if (o.remote.active()) {
    if (write) return invalid_argument("--peer and --from read someone's store; write to your own with --db");
    if (!o.key.empty() && !o.remote.from.empty() && o.key != o.remote.from)
      return invalid_argument("give the store with --key or --from, not both");
    auto peer = connect_remote(ctx, o.remote, o.key);
    if (!peer.ok()) return peer.status();
    out.peer = std::move(*peer);
    auto core = net::open_remote_core(*out.peer.client, (*home)->store(), out.peer.key);
    if (!core.ok()) return core.status();
    out.core = std::move(*core);
    out.label = keys::to_z32(out.peer.key);
  } else if (!o.key.empty()) {
    if (write) return invalid_argument("--key opens someone else's store read-only; write to your own with --db");
    auto key = keys::parse(o.key);
    if (!key) return invalid_argument("'" + o.key + "' is not a valid key; use " + keys::accepted_forms());
    auto core = (*home)->reader().open_key(*key);
    if (!core.ok()) return core.status();
    out.core = std::move(*core);
    out.label = keys::to_z32(*key);
  } else {
    std::string name = Home::kv_core_name(o.db);
    Result<std::unique_ptr<Core>> core = not_found("");
    if (write) {
      auto store = (*home)->writer();
      if (!store.ok()) return store.status();
      core = (*store)->get(name);
      ctx.note_identity_created();
    } else {
      core = (*home)->reader().open_name(name);
      if (core.status().is_not_found())
        return not_found("no key-value store named '" + o.db + "' (a first 'p2p kv put' creates it)");
    }
    if (!core.ok()) return core.status();
    out.core = std::move(*core);
    out.label = o.db;
  }
  out.bee = std::make_unique<Bee>(*out.core);
  return out;
}

void print_raw(ByteView b) {
  std::cout.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (stdout_is_tty()) std::cout << "\n";
  std::cout.flush();
}

nlohmann::json entry_json(const BeeEntry& e, bool with_value) {
  ByteView v = e.value ? ByteView(*e.value) : ByteView();
  auto j = nlohmann::json::parse(kv_io::json_line(e.key, with_value && e.value ? &v : nullptr));
  j["seq"] = e.seq;
  return j;
}

int put(Context& ctx, const KvOptions& o, const std::string& key, const std::optional<std::string>& value) {
  Bytes data;
  if (value && *value != "-") {
    data = to_bytes(as_bytes(*value));
  } else {
    auto in = read_stdin(kMaxBeeValueSize);
    if (!in.ok()) return ctx.fail(invalid_argument("the value on stdin is larger than the 8 MiB limit"));
    data = std::move(*in);
  }
  auto b = open_bee(ctx, o, true);
  if (!b.ok()) return ctx.fail(b.status());
  if (Status s = b->bee->put(as_bytes(key), data); !s.ok()) return ctx.fail(s);
  uint64_t version = b->core->length();
  if (ctx.json) {
    auto j = nlohmann::json::parse(kv_io::json_line(as_bytes(key), nullptr));
    j["version"] = version;
    ctx.emit(j);
  } else {
    ctx.info("put '" + kv_io::escape(as_bytes(key)) + "' in '" + b->label + "' (version " + std::to_string(version) + ")");
  }
  return kOk;
}

int get(Context& ctx, const KvOptions& o, const std::string& key) {
  auto b = open_bee(ctx, o, false);
  if (!b.ok()) return ctx.fail(b.status());
  if (b->peer.client) net::prefetch_bee_get(*b->peer.client, *b->core, o.at, as_bytes(key));
  auto e = b->bee->get(as_bytes(key), o.at);
  report_fetched(ctx, o.remote, b->peer);
  if (!e.ok()) return ctx.fail(e.status());
  if (!e->has_value()) return ctx.fail(not_found("not found: '" + key + "' in '" + b->label + "'"));
  if (ctx.json) ctx.emit(entry_json(**e, true));
  else print_raw(*(*e)->value);
  return kOk;
}

int del(Context& ctx, const KvOptions& o, const std::string& key, bool force) {
  auto b = open_bee(ctx, o, true);
  if (!b.ok()) return ctx.fail(b.status());
  auto found = b->bee->del(as_bytes(key));
  if (!found.ok()) return ctx.fail(found.status());
  if (!*found && !force) return ctx.fail(not_found("not found: '" + key + "' in '" + b->label + "'"));
  if (ctx.json) ctx.emit({{"key", key}, {"deleted", *found}, {"version", b->core->length()}});
  else if (*found) ctx.info("deleted '" + key + "' (version " + std::to_string(b->core->length()) + ")");
  return kOk;
}

struct ListArgs {
  std::string prefix;
  std::optional<std::string> gt, gte, lt, lte;
  int64_t limit = -1;
  bool reverse = false;
  bool keys_only = false;
};

// The first key after every key that starts with `prefix`, or none when there is none.
std::optional<Bytes> prefix_end(const std::string& prefix) {
  Bytes end = to_bytes(as_bytes(prefix));
  while (!end.empty() && end.back() == 0xff) end.pop_back();
  if (end.empty()) return std::nullopt;
  end.back()++;
  return end;
}

Status list_entries(Context& ctx, OpenBee& b, const ListArgs& a, uint64_t at, bool export_format) {
  BeeRange r;
  auto bytes = [](const std::optional<std::string>& s) {
    return s ? std::optional<Bytes>(to_bytes(as_bytes(*s))) : std::nullopt;
  };
  r.gt = bytes(a.gt);
  r.gte = bytes(a.gte);
  r.lt = bytes(a.lt);
  r.lte = bytes(a.lte);
  if (!a.prefix.empty()) {
    // The prefix narrows whatever bounds were given.
    Bytes p = to_bytes(as_bytes(a.prefix));
    if (!r.gt && (!r.gte || *r.gte < p)) r.gte = p;
    if (auto end = prefix_end(a.prefix); end && !r.lte && (!r.lt || *end < *r.lt)) r.lt = end;
  }
  r.reverse = a.reverse;
  r.limit = a.limit;
  if (b.peer.client) net::prefetch_bee_range(*b.peer.client, *b.core, at, r);
  std::string out;
  Status s = b.bee->range(r, [&](const BeeEntry& e) {
    ByteView v = *e.value;
    if (export_format || ctx.json) out += kv_io::json_line(e.key, a.keys_only ? nullptr : &v);
    else if (a.keys_only) out += kv_io::escape(e.key);
    else out += kv_io::tsv_line(e.key, v);
    out += '\n';
    if (out.size() > 1 << 16) {
      std::cout << out;
      out.clear();
    }
    return static_cast<bool>(std::cout);
  }, at);
  std::cout << out << std::flush;
  return s;
}

int list(Context& ctx, const KvOptions& o, const ListArgs& a, bool export_format) {
  if (a.gt && a.gte) return ctx.fail(invalid_argument("use --gt or --gte, not both"));
  if (a.lt && a.lte) return ctx.fail(invalid_argument("use --lt or --lte, not both"));
  auto b = open_bee(ctx, o, false);
  if (!b.ok()) {
    // Listing a store that was never written lists nothing.
    if (b.status().is_not_found() && o.key.empty() && !o.remote.active()) return kOk;
    return ctx.fail(b.status());
  }
  Status listed = list_entries(ctx, *b, a, o.at, export_format);
  report_fetched(ctx, o.remote, b->peer);
  if (!listed.ok()) return ctx.fail(listed);
  return kOk;
}

int import_entries(Context& ctx, const KvOptions& o) {
  auto b = open_bee(ctx, o, true);
  if (!b.ok()) return ctx.fail(b.status());
  uint64_t imported = 0, line_no = 0;
  std::unique_ptr<Bee::Batch> batch;
  size_t batch_bytes = 0;
  auto flush = [&]() -> Status {
    if (!batch) return {};
    size_t n = batch->pending();
    P2P_TRY(batch->flush());
    batch.reset();
    imported += n;
    batch_bytes = 0;
    // Under --json every committed batch is acknowledged, so a script (or a
    // crash test) knows exactly what is durable.
    if (ctx.json) {
      ctx.emit({{"committed", imported}, {"version", b->core->length()}});
      std::cout.flush();
    }
    return {};
  };
  auto add = [&](std::string_view line) -> Status {
    line_no++;
    if (line.empty() || line == "\r") return {};
    auto rec = kv_io::parse_line(line);
    if (!rec.ok()) return invalid_argument("line " + std::to_string(line_no) + ": " + rec.status().message());
    if (!batch) {
      auto nb = b->bee->batch();
      if (!nb.ok()) return nb.status();
      batch = std::move(*nb);
    }
    Status s = batch->put(rec->key, rec->value);
    if (!s.ok()) return error(s.code(), "line " + std::to_string(line_no) + ": " + s.message());
    batch_bytes += rec->key.size() + rec->value.size();
    if (batch->pending() >= kImportBatch || batch_bytes >= kImportBatchBytes) return flush();
    return {};
  };

  std::string carry;
  char buf[1 << 16];
  Status status;
  const size_t max_line = 2 * kMaxBeeValueSize + 4 * kMaxBeeKeySize;
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = io_error("cannot read standard input");
      break;
    }
    if (n == 0) break;
    carry.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    while (status.ok() && (nl = carry.find('\n', start)) != std::string::npos) {
      status = add(std::string_view(carry).substr(start, nl - start));
      start = nl + 1;
    }
    carry.erase(0, start);
    if (!status.ok()) break;
    if (carry.size() > max_line) {
      status = invalid_argument("line " + std::to_string(line_no + 1) + " is longer than any entry can be");
      break;
    }
  }
  if (status.ok() && !carry.empty()) status = add(carry);
  if (status.ok()) status = flush();
  uint64_t version = std::max<uint64_t>(1, b->core->length());
  if (!status.ok()) {
    // Every batch before the failing one is committed: say how far we got.
    ctx.info("imported " + std::to_string(imported) + " entries before the error (version " +
             std::to_string(version) + ")");
    return ctx.fail(status);
  }
  if (ctx.json) ctx.emit({{"imported", imported}, {"version", version}});
  else ctx.info("imported " + std::to_string(imported) + " entries into '" + b->label + "' (version " +
                std::to_string(version) + ")");
  return kOk;
}

int version(Context& ctx, const KvOptions& o) {
  auto b = open_bee(ctx, o, false);
  uint64_t v = 1;
  if (b.ok()) {
    auto got = b->bee->version();
    if (!got.ok()) return ctx.fail(got.status());
    v = *got;
  } else if (!(b.status().is_not_found() && o.key.empty() && !o.remote.active())) {
    return ctx.fail(b.status());
  }
  if (ctx.json) ctx.emit({{"version", v}});
  else std::cout << v << "\n";
  return kOk;
}

int diff(Context& ctx, const KvOptions& o, uint64_t v1, uint64_t v2) {
  auto b = open_bee(ctx, o, false);
  if (!b.ok()) return ctx.fail(b.status());
  Status s = b->bee->diff(v2, v1, [&](const BeeChange& c) {
    if (c.newer && c.older && c.newer->value == c.older->value) return true;  // rewritten, same value
    const BeeEntry& e = c.newer ? *c.newer : *c.older;
    const char* op = c.newer && c.older ? "change" : c.newer ? "add" : "remove";
    if (ctx.json) {
      nlohmann::json j = entry_json(e, c.newer.has_value());
      j.erase("seq");
      j["op"] = op;
      if (c.older && c.newer) {
        nlohmann::json prev = entry_json(*c.older, true);
        j["previous"] = prev["value"];
        if (prev.contains("encoding")) j["previousEncoding"] = prev["encoding"];
      }
      ctx.emit(j);
    } else {
      char mark = c.newer && c.older ? '~' : c.newer ? '+' : '-';
      std::cout << mark << " " << (c.newer ? kv_io::tsv_line(e.key, *e.value) : kv_io::escape(e.key)) << "\n";
    }
    return static_cast<bool>(std::cout);
  });
  if (!s.ok()) return ctx.fail(s);
  return kOk;
}

int history(Context& ctx, const KvOptions& o, uint64_t since, bool reverse, int64_t limit) {
  auto b = open_bee(ctx, o, false);
  if (!b.ok()) return ctx.fail(b.status());
  int64_t left = limit;
  Status s = b->bee->history(since, UINT64_MAX, reverse, [&](const BeeEntry& e) {
    if (left == 0) return false;
    if (left > 0) left--;
    if (ctx.json) {
      nlohmann::json j = entry_json(e, true);
      j["op"] = e.value ? "put" : "del";
      ctx.emit(j);
    } else {
      std::cout << e.seq << "\t" << (e.value ? "put\t" + kv_io::tsv_line(e.key, *e.value) : "del\t" + kv_io::escape(e.key)) << "\n";
    }
    return static_cast<bool>(std::cout);
  });
  if (!s.ok()) return ctx.fail(s);
  return kOk;
}

int info(Context& ctx, const KvOptions& o) {
  auto b = open_bee(ctx, o, false);
  if (!b.ok()) return ctx.fail(b.status());
  auto v = b->bee->version();
  if (!v.ok()) return ctx.fail(v.status());
  Core& c = *b->core;
  nlohmann::json d = {{"key", to_hex(c.key())},         {"id", keys::to_z32(c.key())},
                      {"link", keys::link(c.key())},    {"discoveryKey", to_hex(c.discovery_key())},
                      {"version", *v},                  {"length", c.length()},
                      {"byteLength", c.byte_length()},  {"writable", c.writable()}};
  if (o.key.empty()) d["db"] = o.db;
  if (ctx.json) {
    ctx.emit(d);
    return kOk;
  }
  if (o.key.empty() && !o.remote.active()) std::cout << "db:            " << o.db << "\n";
  std::cout << "key:           " << d["id"].get<std::string>() << "\n"
            << "key (hex):     " << d["key"].get<std::string>() << "\n"
            << "link:          " << d["link"].get<std::string>() << "\n"
            << "discovery key: " << d["discoveryKey"].get<std::string>() << "\n"
            << "version:       " << *v << "\n"
            << "length:        " << c.length() << " blocks, " << c.byte_length() << " bytes\n"
            << "writable:      " << (c.writable() ? "yes" : "no") << "\n";
  return kOk;
}

}  // namespace

void add_kv_commands(CLI::App& app, Context& ctx) {
  auto* kv = app.add_subcommand("kv", "A signed, versioned key-value store (Hyperbee)");
  kv->require_subcommand(1);
  auto o = std::make_shared<KvOptions>();
  kv->add_option("--db", o->db, "Which of your stores (default 'default')");
  kv->add_option("--key", o->key, "Read someone's store by key (read-only): z-base-32, hex, p2p:// or pear://");
  add_remote_options(kv, o->remote);

  auto key = std::make_shared<std::string>();
  auto value = std::make_shared<std::optional<std::string>>();
  auto* put_cmd = kv->add_subcommand("put", "Set KEY to VALUE (or stdin when VALUE is absent or '-')");
  put_cmd->add_option("KEY", *key, "The key")->required();
  put_cmd->add_option("VALUE", *value, "The value; absent or '-': read stdin (binary-safe)");
  put_cmd->callback([&ctx, o, key, value] { ctx.run = [&ctx, o, key, value] { return put(ctx, *o, *key, *value); }; });

  auto* get_cmd = kv->add_subcommand("get", "Print KEY's value (raw bytes); exit 1 when absent");
  get_cmd->add_option("KEY", *key, "The key")->required();
  get_cmd->add_option("--at", o->at, "Read an older VERSION")->check(CLI::PositiveNumber);
  get_cmd->callback([&ctx, o, key] { ctx.run = [&ctx, o, key] { return get(ctx, *o, *key); }; });

  auto force = std::make_shared<bool>(false);
  auto* del_cmd = kv->add_subcommand("del", "Delete KEY; exit 1 when absent unless --force");
  del_cmd->add_option("KEY", *key, "The key")->required();
  del_cmd->add_flag("--force", *force, "Succeed even when KEY is absent");
  del_cmd->callback([&ctx, o, key, force] { ctx.run = [&ctx, o, key, force] { return del(ctx, *o, *key, *force); }; });

  auto a = std::make_shared<ListArgs>();
  auto* list_cmd = kv->add_subcommand("list", "Entries in key order: KEY<tab>VALUE (escaped), or JSON lines with --json");
  list_cmd->add_option("--prefix", a->prefix, "Only keys starting with P");
  list_cmd->add_option("--gt", a->gt, "Keys greater than K");
  list_cmd->add_option("--gte", a->gte, "Keys greater than or equal to K");
  list_cmd->add_option("--lt", a->lt, "Keys less than K");
  list_cmd->add_option("--lte", a->lte, "Keys less than or equal to K");
  list_cmd->add_option("--limit", a->limit, "At most N entries")->check(CLI::NonNegativeNumber);
  list_cmd->add_flag("--reverse", a->reverse, "Descending key order");
  list_cmd->add_flag("--keys", a->keys_only, "Keys only");
  list_cmd->add_option("--at", o->at, "List an older VERSION")->check(CLI::PositiveNumber);
  list_cmd->callback([&ctx, o, a] { ctx.run = [&ctx, o, a] { return list(ctx, *o, *a, false); }; });

  auto* export_cmd = kv->add_subcommand("export", "Every entry as JSON lines {\"key\":…,\"value\":…} (what import reads)");
  export_cmd->add_option("--at", o->at, "Export an older VERSION")->check(CLI::PositiveNumber);
  export_cmd->callback([&ctx, o] { ctx.run = [&ctx, o] { return list(ctx, *o, ListArgs{}, true); }; });

  auto* import_cmd = kv->add_subcommand("import", "Read JSON lines or KEY<tab>VALUE lines from stdin, in atomic batches");
  import_cmd->callback([&ctx, o] { ctx.run = [&ctx, o] { return import_entries(ctx, *o); }; });

  auto* version_cmd = kv->add_subcommand("version", "Print the store's version (its core length)");
  version_cmd->callback([&ctx, o] { ctx.run = [&ctx, o] { return version(ctx, *o); }; });

  auto versions = std::make_shared<std::pair<uint64_t, uint64_t>>();
  auto* diff_cmd = kv->add_subcommand("diff", "Changes from version V1 to V2: + added, - removed, ~ changed");
  diff_cmd->add_option("V1", versions->first, "The older version")->required()->check(CLI::PositiveNumber);
  diff_cmd->add_option("V2", versions->second, "The newer version")->required()->check(CLI::PositiveNumber);
  diff_cmd->callback([&ctx, o, versions] {
    ctx.run = [&ctx, o, versions] { return diff(ctx, *o, versions->first, versions->second); };
  });

  struct HistoryArgs {
    uint64_t since = 1;
    bool reverse = false;
    int64_t limit = -1;
  };
  auto h = std::make_shared<HistoryArgs>();
  auto* history_cmd = kv->add_subcommand("history", "Every put and delete, oldest first: SEQ<tab>put|del<tab>KEY[<tab>VALUE]");
  history_cmd->add_option("--since", h->since, "Start at block SEQ")->check(CLI::PositiveNumber);
  history_cmd->add_flag("--reverse", h->reverse, "Newest first");
  history_cmd->add_option("--limit", h->limit, "At most N entries")->check(CLI::NonNegativeNumber);
  history_cmd->callback([&ctx, o, h] { ctx.run = [&ctx, o, h] { return history(ctx, *o, h->since, h->reverse, h->limit); }; });

  auto* info_cmd = kv->add_subcommand("info", "The store's key, p2p:// link, version and size: what you share");
  info_cmd->callback([&ctx, o] { ctx.run = [&ctx, o] { return info(ctx, *o); }; });
}

}  // namespace p2p::cli
