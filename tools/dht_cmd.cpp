// p2p dht: run DHT nodes, announce and look up topics, put and get records.
#include <iostream>
#include <set>

#include "core/keys.h"
#include "tools/cli.h"
#include "tools/dht_client.h"

namespace p2p::cli {

namespace {

constexpr size_t kMaxDhtValue = 1000;              // a record travels in one UDP datagram
constexpr uint64_t kReannounceMs = 5 * 60 * 1000;  // well inside the 20-minute record lifetime
constexpr uint64_t kMaxSeq = (uint64_t{1} << 53) - 1;  // JavaScript peers cannot read more

struct DhtArgs {
  double timeout_s = 30;  // one-shot queries; the public DHT can take seconds
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string topic, target;
  std::optional<std::string> value;  // absent: stdin
  bool once = false, mutable_record = false;
  std::optional<uint64_t> seq;
};

Status wait(dht::Runtime& rt, const DhtArgs& a, const std::function<bool()>& done, const std::string& what,
            const std::string& hint = "check --bootstrap (or P2P_BOOTSTRAP) and the network") {
  return wait_for(rt, a.timeout_s, done, what, hint);
}

Status join(dht::Runtime& rt, const DhtArgs& a) { return join_dht(rt, a.timeout_s); }

nlohmann::json address_json(const dht::Address& a) { return {{"host", a.host()}, {"port", a.port}}; }

Result<Bytes> value_argument(const DhtArgs& a) {
  Bytes value;
  if (!a.value || *a.value == "-") {
    auto in = read_stdin(kMaxDhtValue);
    if (!in.ok()) return in.status();
    value = std::move(*in);
  } else {
    value = to_bytes(as_bytes(*a.value));
  }
  if (value.size() > kMaxDhtValue) {
    return invalid_argument("the value is " + std::to_string(value.size()) + " bytes; DHT records hold at most " +
                            std::to_string(kMaxDhtValue) + " (store larger data in a core and put its key)");
  }
  return value;
}

void print_value(Context& ctx, ByteView value, nlohmann::json j) {
  if (ctx.json) {
    put_value(j, "value", value);
    ctx.emit(j);
    return;
  }
  std::cout.write(reinterpret_cast<const char*>(value.data()), static_cast<std::streamsize>(value.size()));
  if (stdout_is_tty()) std::cout << "\n";
  std::cout.flush();
}

int run_bootstrap(Context& ctx, const DhtArgs& a) {
  auto ip = dht::parse_ipv4(a.host);
  if (!ip) return ctx.fail(invalid_argument("--host '" + a.host + "' is not an IPv4 address; give the address other nodes reach this one by"));
  auto nodes = bootstrap_nodes(ctx, false);
  if (!nodes.ok()) return ctx.fail(nodes.status());
  dht::RuntimeOptions o;
  // Listening on the loopback address only when that is the public one (as hyperdht's testnet).
  o.bind_host = a.host == "127.0.0.1" ? "127.0.0.1" : "0.0.0.0";
  o.port = a.port;
  o.bootstrap = std::move(*nodes);
  o.public_address = dht::Address{*ip, a.port};
  auto rt = dht::Runtime::open(std::move(o));
  if (!rt.ok()) return ctx.fail(rt.status());
  dht::Node& node = (*rt)->node();
  dht::Address self{*ip, (*rt)->local_address().port};
  if (ctx.json) ctx.emit({{"host", self.host()}, {"port", self.port}, {"id", to_hex(*node.id())}});
  else std::cout << self.to_string() << std::endl;
  bool joined = false;
  node.bootstrap([&] {
    joined = true;
    ctx.info("DHT node " + to_hex(*node.id()).substr(0, 16) + " on " + self.to_string() + ": " +
             std::to_string(node.table().size()) + " nodes known");
  });
  (*rt)->run_until([] { return false; }, 0);
  return kOk;
}

int run_ping(Context& ctx, const DhtArgs& a) {
  auto to = dht::resolve_bootstrap({a.target});
  if (!to.ok()) return ctx.fail(to.status());
  dht::RuntimeOptions o;
  auto rt = dht::Runtime::open(std::move(o));
  if (!rt.ok()) return ctx.fail(rt.status());
  bool done = false;
  std::optional<dht::Reply> reply;
  (*rt)->node().ping(to->front(), [&](const dht::Reply* r) {
    if (r) reply = *r;
    done = true;
  });
  if (Status s = wait(**rt, a, [&] { return done; }, "pinging " + a.target, "check that a DHT node runs there"); !s.ok())
    return ctx.fail(s);
  if (!reply) return ctx.fail(error(ErrorCode::io, "no answer from " + a.target + " (is a DHT node running there?)"));
  if (ctx.json) {
    nlohmann::json j = address_json(reply->from);
    j["id"] = reply->from_id ? nlohmann::json(to_hex(*reply->from_id)) : nlohmann::json(nullptr);
    j["rtt"] = reply->rtt_ms;
    j["you"] = address_json(reply->to);
    ctx.emit(j);
  } else {
    std::cout << reply->from.to_string() << " answered in " << reply->rtt_ms << " ms"
              << (reply->from_id ? " (node " + to_hex(*reply->from_id).substr(0, 16) + ")" : " (ephemeral)") << std::endl;
  }
  return kOk;
}

int run_lookup(Context& ctx, const DhtArgs& a) {
  auto rt = open_dht(ctx, false);
  if (!rt.ok()) return ctx.fail(rt.status());
  if (Status s = join(**rt, a); !s.ok()) return ctx.fail(s);
  Hash32 topic = dht::topic_from_text(a.topic);
  std::set<Key32> seen;
  bool done = false;
  (*rt)->dht().lookup(
      topic,
      [&](const dht::FoundPeer& p) {
        if (!seen.insert(p.peer.public_key).second) return;
        if (ctx.json) {
          nlohmann::json relays = nlohmann::json::array();
          for (const auto& r : p.peer.relay_addresses) relays.push_back(address_json(r));
          ctx.emit({{"publicKey", to_hex(p.peer.public_key)}, {"relayAddresses", relays}, {"from", address_json(p.from)}});
          std::cout.flush();
          return;
        }
        std::cout << to_hex(p.peer.public_key);
        for (size_t i = 0; i < p.peer.relay_addresses.size(); i++)
          std::cout << (i ? "," : " ") << p.peer.relay_addresses[i].to_string();
        std::cout << std::endl;
      },
      [&](const dht::QueryResult&) { done = true; });
  if (Status s = wait(**rt, a, [&] { return done; }, "looking up the topic"); !s.ok()) return ctx.fail(s);
  if (seen.empty()) return ctx.fail(not_found("no peers found for topic " + to_hex(topic)));
  return kOk;
}

Status announce_once(dht::Runtime& rt, const DhtArgs& a, const Hash32& topic, const crypto::KeyPair& kp, size_t& nodes) {
  bool done = false;
  dht::PutResult result;
  rt.dht().announce(topic, kp, {}, [&](const dht::PutResult& r) {
    result = r;
    done = true;
  });
  if (Status s = wait(rt, a, [&] { return done; }, "announcing"); !s.ok()) return s;
  if (!result.ok) return error(ErrorCode::io, "announce failed: " + result.message);
  nodes = result.nodes;
  return Status::ok_status();
}

Status unannounce(dht::Runtime& rt, const DhtArgs& a, const Hash32& topic, const crypto::KeyPair& kp, size_t& nodes) {
  bool done = false;
  rt.dht().unannounce(topic, kp, [&](const dht::PutResult& r) {
    nodes = r.nodes;
    done = true;
  });
  return wait(rt, a, [&] { return done; }, "unannouncing");
}

int run_announce(Context& ctx, const DhtArgs& a) {
  auto kp = identity_key_pair(ctx);
  if (!kp.ok()) return ctx.fail(kp.status());
  auto rt = open_dht(ctx, !a.once);
  if (!rt.ok()) return ctx.fail(rt.status());
  Hash32 topic = dht::topic_from_text(a.topic);
  if (ctx.json) ctx.emit({{"publicKey", to_hex(kp->public_key)}, {"topic", to_hex(topic)}});
  else std::cout << to_hex(kp->public_key) << std::endl;
  if (Status s = join(**rt, a); !s.ok()) return ctx.fail(s);
  for (;;) {
    size_t nodes = 0;
    if (Status s = announce_once(**rt, a, topic, *kp, nodes); !s.ok()) return ctx.fail(s);
    if (ctx.json) ctx.emit({{"event", "announced"}, {"topic", to_hex(topic)}, {"nodes", nodes}});
    else ctx.info("announced " + to_hex(topic).substr(0, 16) + "... on " + std::to_string(nodes) + " nodes");
    if (a.once) return kOk;
    if ((*rt)->run_until([] { return false; }, kReannounceMs) == dht::Runtime::Stop::signal) break;
  }
  // Stopped: take the record down rather than leave it for 20 minutes.
  DhtArgs bounded = a;
  bounded.timeout_s = std::min(a.timeout_s, 10.0);
  size_t removed = 0;
  if (Status s = unannounce(**rt, bounded, topic, *kp, removed); !s.ok()) return ctx.fail(s);
  ctx.info("unannounced from " + std::to_string(removed) + " nodes");
  return kOk;
}

int run_unannounce(Context& ctx, const DhtArgs& a) {
  auto kp = identity_key_pair(ctx);
  if (!kp.ok()) return ctx.fail(kp.status());
  auto rt = open_dht(ctx, false);
  if (!rt.ok()) return ctx.fail(rt.status());
  if (Status s = join(**rt, a); !s.ok()) return ctx.fail(s);
  Hash32 topic = dht::topic_from_text(a.topic);
  size_t removed = 0;
  if (Status s = unannounce(**rt, a, topic, *kp, removed); !s.ok()) return ctx.fail(s);
  if (ctx.json) ctx.emit({{"topic", to_hex(topic)}, {"nodes", removed}});
  else ctx.info("unannounced from " + std::to_string(removed) + " nodes");
  return kOk;
}

std::string seq_error(uint64_t code) {
  if (code == dht::kErrorSeqReused) return "this sequence number already holds a different value; use a higher --seq";
  if (code == dht::kErrorSeqTooLow) return "the DHT holds a higher sequence number; use a higher --seq";
  return "no DHT node stored it";
}

int run_put(Context& ctx, const DhtArgs& a) {
  auto value = value_argument(a);
  if (!value.ok()) return ctx.fail(value.status());
  std::optional<crypto::KeyPair> kp;
  if (a.mutable_record) {
    auto k = identity_key_pair(ctx);
    if (!k.ok()) return ctx.fail(k.status());
    kp = *k;
  }
  auto rt = open_dht(ctx, false);
  if (!rt.ok()) return ctx.fail(rt.status());
  if (Status s = join(**rt, a); !s.ok()) return ctx.fail(s);
  dht::HyperDht& d = (*rt)->dht();
  bool done = false;
  dht::PutResult result;
  if (!a.mutable_record) {
    Hash32 hash{};
    d.immutable_put(*value, [&](const Hash32& h, const dht::PutResult& r) {
      hash = h;
      result = r;
      done = true;
    });
    if (Status s = wait(**rt, a, [&] { return done; }, "storing the value"); !s.ok()) return ctx.fail(s);
    if (!result.ok) return ctx.fail(error(ErrorCode::io, "no DHT node stored the value: " + result.message));
    if (ctx.json) ctx.emit({{"hash", to_hex(hash)}, {"nodes", result.nodes}});
    else std::cout << to_hex(hash) << std::endl;
    ctx.info("stored on " + std::to_string(result.nodes) + " nodes");
    return kOk;
  }
  uint64_t seq = 0;
  if (a.seq) {
    seq = *a.seq;
  } else {
    // Next after the highest the DHT holds, so repeated puts just work.
    std::optional<dht::MutableValue> current;
    d.mutable_get(kp->public_key, 0, [&](std::optional<dht::MutableValue> v) {
      current = std::move(v);
      done = true;
    });
    if (Status s = wait(**rt, a, [&] { return done; }, "reading the current sequence number"); !s.ok()) return ctx.fail(s);
    if (current && current->record.seq >= kMaxSeq) {
      return ctx.fail(invalid_argument("the DHT holds the highest sequence number there is; nothing can replace it"));
    }
    if (current) seq = current->record.seq + 1;
    done = false;
  }
  d.mutable_put(*kp, *value, seq, [&](const dht::PutResult& r) {
    result = r;
    done = true;
  });
  if (Status s = wait(**rt, a, [&] { return done; }, "storing the value"); !s.ok()) return ctx.fail(s);
  if (!result.ok || result.nodes == 0) return ctx.fail(error(ErrorCode::io, seq_error(result.error)));
  if (ctx.json) ctx.emit({{"publicKey", to_hex(kp->public_key)}, {"seq", seq}, {"nodes", result.nodes}});
  else std::cout << to_hex(kp->public_key) << std::endl;
  ctx.info("stored sequence " + std::to_string(seq) + " on " + std::to_string(result.nodes) + " nodes");
  return kOk;
}

int run_get(Context& ctx, const DhtArgs& a) {
  auto key = key_from_hex(a.target);
  if (!key && a.mutable_record) key = keys::parse(a.target);
  if (!key) {
    return ctx.fail(invalid_argument("'" + a.target + "' is not " +
                                     (a.mutable_record ? "a public key (64 hex characters)" : "a hash (64 hex characters, as 'p2p dht put' printed)")));
  }
  auto rt = open_dht(ctx, false);
  if (!rt.ok()) return ctx.fail(rt.status());
  if (Status s = join(**rt, a); !s.ok()) return ctx.fail(s);
  bool done = false;
  if (!a.mutable_record) {
    std::optional<Bytes> value;
    (*rt)->dht().immutable_get(*key, [&](std::optional<Bytes> v) {
      value = std::move(v);
      done = true;
    });
    if (Status s = wait(**rt, a, [&] { return done; }, "looking up the value"); !s.ok()) return ctx.fail(s);
    if (!value) return ctx.fail(not_found("no value with hash " + a.target + " on the DHT"));
    print_value(ctx, *value, {{"hash", to_hex(*key)}});
    return kOk;
  }
  std::optional<dht::MutableValue> value;
  (*rt)->dht().mutable_get(*key, a.seq.value_or(0), [&](std::optional<dht::MutableValue> v) {
    value = std::move(v);
    done = true;
  });
  if (Status s = wait(**rt, a, [&] { return done; }, "looking up the value"); !s.ok()) return ctx.fail(s);
  if (!value) return ctx.fail(not_found("no mutable value for " + to_hex(*key) + " on the DHT"));
  print_value(ctx, value->record.value,
              {{"publicKey", to_hex(*key)}, {"seq", value->record.seq}, {"signature", to_hex(value->record.signature)}});
  return kOk;
}

}  // namespace

void add_dht_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<DhtArgs>();
  auto* dht = app.add_subcommand("dht", "The distributed hash table: nodes, announces, lookups and records");
  dht->require_subcommand(1);
  auto timeout = [&](CLI::App* cmd) {
    cmd->add_option("--timeout", a->timeout_s, "Give up after this many seconds (0: no limit)")
        ->check(CLI::Validator(
            [](std::string& text) {
              char* end = nullptr;
              double v = std::strtod(text.c_str(), &end);
              return *end == '\0' && v >= 0 ? std::string() : "'" + text + "' is not a number of seconds (0: no limit)";
            },
            "SECONDS"))
        ->capture_default_str();
  };
  auto run = [&ctx, a](int (*fn)(Context&, const DhtArgs&)) {
    return [&ctx, a, fn] {
      ctx.run = [&ctx, a, fn] { return fn(ctx, *a); };
    };
  };

  auto* boot = dht->add_subcommand("bootstrap", "Run a DHT node others can bootstrap from, until interrupted");
  boot->add_option("--host", a->host, "The IPv4 address other nodes reach this one by")->capture_default_str();
  boot->add_option("--port", a->port, "UDP port (0 picks a free one; the first output line names it)")->capture_default_str();
  boot->callback(run(run_bootstrap));

  auto* ann = dht->add_subcommand("announce", "Announce this identity on a topic, re-announcing until interrupted");
  ann->add_option("TOPIC", a->topic, "64 hex characters, or any text (hashed with BLAKE2b-256)")->required();
  ann->add_flag("--once", a->once, "Announce once and exit (the record lives 20 minutes)");
  timeout(ann);
  ann->callback(run(run_announce));

  auto* unann = dht->add_subcommand("unannounce", "Remove this identity's announce from a topic");
  unann->add_option("TOPIC", a->topic, "64 hex characters, or any text (hashed with BLAKE2b-256)")->required();
  timeout(unann);
  unann->callback(run(run_unannounce));

  auto* lookup = dht->add_subcommand("lookup", "Find the peers announced on a topic");
  lookup->add_option("TOPIC", a->topic, "64 hex characters, or any text (hashed with BLAKE2b-256)")->required();
  timeout(lookup);
  lookup->callback(run(run_lookup));

  auto* ping = dht->add_subcommand("ping", "Check that a DHT node answers");
  ping->add_option("ADDRESS", a->target, "HOST:PORT of the node")->required();
  timeout(ping);
  ping->callback(run(run_ping));

  auto* put = dht->add_subcommand("put", "Store a value on the DHT (immutable: by its hash; --mutable: under your key)");
  put->add_option("VALUE", a->value, "The value (at most 1000 bytes); absent or '-': read stdin");
  put->add_flag("--mutable", a->mutable_record, "Store under the identity's public key, signed, with a sequence number");
  put->add_option("--seq", a->seq, "Sequence number for --mutable (default: one above the highest stored)")
      ->check(CLI::Range(uint64_t{0}, kMaxSeq));
  timeout(put);
  put->callback(run(run_put));

  auto* get = dht->add_subcommand("get", "Read a value from the DHT by hash, or with --mutable by public key");
  get->add_option("KEY", a->target, "The hash 'p2p dht put' printed, or with --mutable a public key")->required();
  get->add_flag("--mutable", a->mutable_record, "Read the signed value stored under a public key");
  get->add_option("--seq", a->seq, "With --mutable: only a value with at least this sequence number")
      ->check(CLI::Range(uint64_t{0}, kMaxSeq));
  timeout(get);
  get->callback(run(run_get));
}

}  // namespace p2p::cli
