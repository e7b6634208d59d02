// p2p seed: serve cores, bees and drives to peers that connect over TCP.
#include <algorithm>
#include <iostream>

#include "core/identity.h"
#include "core/keys.h"
#include "net/remote.h"
#include "net/seeder.h"
#include "tools/cli.h"
#include "tools/dht_client.h"

namespace p2p::cli {

namespace {

struct SeedArgs {
  std::vector<std::string> targets;
  std::string listen;  // empty: the DHT only
  bool dht = false;     // --dht: the DHT as well as --listen
  std::vector<std::string> allow;
};

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void print_event(Context& ctx, const net::SeedEvent& e, size_t cores) {
  static const char* kinds[] = {"listening", "connected", "disconnected", "refused"};
  if (ctx.json) {
    nlohmann::json j = {{"event", kinds[e.kind]}, {"address", e.address}};
    if (e.kind == net::SeedEvent::listening) j["cores"] = cores;
    if (e.kind == net::SeedEvent::listening && e.address == "dht") j["publicKey"] = to_hex(e.remote_key);
    if (e.kind != net::SeedEvent::listening) j["peerKey"] = to_hex(e.remote_key);
    if (e.kind == net::SeedEvent::disconnected || e.kind == net::SeedEvent::refused) {
      j["blocksSent"] = e.blocks_sent;
      j["bytesSent"] = e.bytes_sent;
      j["bytesIn"] = e.bytes_in;
      j["bytesOut"] = e.bytes_out;
      if (!e.reason.empty()) j["reason"] = e.reason;
    }
    std::cout << j.dump() << std::endl;
    return;
  }
  switch (e.kind) {
    case net::SeedEvent::listening:
      std::cout << "seeding " << cores << (cores == 1 ? " core" : " cores") << " on "
                << (e.address == "dht" ? "the DHT as " + keys::to_z32(e.remote_key) : e.address) << std::endl;
      break;
    case net::SeedEvent::connected:
      std::cout << "peer " << e.address << " connected (" << keys::to_z32(e.remote_key) << ")" << std::endl;
      break;
    case net::SeedEvent::refused:
      std::cout << "peer " << e.address << " refused: " << e.reason << std::endl;
      break;
    case net::SeedEvent::disconnected:
      std::cout << "peer " << e.address << " left: sent " << e.blocks_sent << (e.blocks_sent == 1 ? " block (" : " blocks (") << human_bytes(e.bytes_sent)
                << "), " << human_bytes(e.bytes_out) << " out, " << human_bytes(e.bytes_in) << " in";
      if (!e.reason.empty()) std::cout << " (" << e.reason << ")";
      std::cout << std::endl;
      break;
  }
}

int seed(Context& ctx, const SeedArgs& a) {
  auto home = ctx.home();
  if (!home.ok()) return ctx.fail(home.status());
  net::SeedOptions options;
  options.listen = a.listen;
  options.dht = a.listen.empty() || a.dht;
  if (options.dht) {
    auto nodes = bootstrap_nodes(ctx, true);
    if (!nodes.ok()) return ctx.fail(nodes.status());
    options.bootstrap = std::move(*nodes);
    options.dht_nodes_file = dht_nodes_file(ctx);
  }
  for (const std::string& text : a.allow) {
    auto key = keys::parse(text);
    if (!key) return ctx.fail(invalid_argument("--allow '" + text + "' is not a public key; use " + keys::accepted_forms()));
    options.allow.push_back(*key);
  }
  for (const std::string& target : a.targets) {
    auto keys = (*home)->cores_to_share(target);
    if (!keys.ok()) return ctx.fail(keys.status());
    for (const Key32& k : *keys)
      if (std::find(options.cores.begin(), options.cores.end(), k) == options.cores.end()) options.cores.push_back(k);
  }
  size_t count = options.cores.size();
  if (options.cores.empty()) {
    auto all = (*home)->reader().list();
    if (!all.ok()) return ctx.fail(all.status());
    count = all->size();
    if (count == 0) ctx.info("the store has no cores yet; new ones are served as they appear");
  }
  std::optional<Key32> primary;
  auto pass = ctx.passphrase();
  if (!pass.ok()) return ctx.fail(pass.status());
  if (auto k = identity::load((*home)->path(), *pass); k.ok()) primary = *k;
  net::Seeder seeder((*home)->store(), net::connection_key_pair(primary), options,
                     [&ctx, count](const net::SeedEvent& e) { print_event(ctx, e, count); });
  if (Status s = seeder.listen(); !s.ok()) return ctx.fail(s);
  if (Status s = seeder.run(); !s.ok()) return ctx.fail(s);
  return kOk;
}

}  // namespace

void add_seed_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<SeedArgs>();
  auto* cmd = app.add_subcommand("seed", "Serve cores, key-value stores and drives to peers until interrupted");
  cmd->add_option("TARGET", a->targets,
                  "Names (a core, a --db store or a --drive) or keys to serve; none: every core in the store");
  cmd->add_option("--listen", a->listen,
                  "Accept peers over TCP on this address (HOST:PORT; port 0 picks a free one) instead of the DHT");
  cmd->add_flag("--dht", a->dht, "With --listen: announce on the DHT as well");
  cmd->add_option("--allow", a->allow, "Serve only peers with these Noise public keys (see 'p2p id'); repeatable");
  cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return seed(ctx, *a); }; });
}

}  // namespace p2p::cli
