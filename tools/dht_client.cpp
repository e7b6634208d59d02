#include "tools/dht_client.h"

#include <sys/stat.h>

#include <cstdio>
#include <iostream>

#include "core/home.h"
#include "core/identity.h"
#include "storage/files.h"

namespace p2p::cli {
std::string dht_nodes_file(const Context& ctx) {
  std::string home = ctx.home_path.empty() ? storage::default_home() : ctx.home_path;
  struct stat st{};
  if (::stat(home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  return home + "/dht-nodes";
}

Result<std::vector<dht::Address>> bootstrap_nodes(const Context& ctx, bool default_public) {
  std::string list = ctx.bootstrap;
  if (list.empty())
    if (const char* env = std::getenv("P2P_BOOTSTRAP")) list = env;
  if (list.empty()) {
    if (!default_public) return std::vector<dht::Address>{};
    return dht::resolve_bootstrap(dht::kDefaultBootstrap);
  }
  return dht::resolve_bootstrap(dht::split_list(list));
}

Result<std::unique_ptr<dht::Runtime>> open_dht(Context& ctx, bool long_running) {
  auto nodes = bootstrap_nodes(ctx, true);
  if (!nodes.ok()) return nodes.status();
  dht::RuntimeOptions o;
  o.adaptive = long_running;
  o.bootstrap = std::move(*nodes);
  o.nodes_file = dht_nodes_file(ctx);
  return dht::Runtime::open(std::move(o));
}

Status wait_for(dht::Runtime& rt, double timeout_s, const std::function<bool()>& done, const std::string& what,
                const std::string& hint) {
  uint64_t ms = timeout_s <= 0 ? 0 : static_cast<uint64_t>(timeout_s * 1000);
  switch (rt.run_until(done, ms)) {
    case dht::Runtime::Stop::done:
      return Status::ok_status();
    case dht::Runtime::Stop::signal:
      // Ctrl-C on a one-shot command: the shell convention, 128 + SIGINT.
      std::cerr << "p2p: interrupted while " << what << "\n";
      std::exit(130);
    case dht::Runtime::Stop::timeout:
      break;
  }
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", timeout_s);
  return error(ErrorCode::io, what + " took longer than " + seconds + " s; " + hint + ", or raise --timeout");
}

Status join_dht(dht::Runtime& rt, double timeout_s) {
  bool joined = false;
  rt.node().bootstrap([&] { joined = true; });
  Status s = wait_for(rt, timeout_s, [&] { return joined; }, "joining the DHT");
  if (s.ok() && rt.node().table().size() == 0) {
    return error(ErrorCode::io, "no DHT node answered; check --bootstrap (or P2P_BOOTSTRAP) and the network");
  }
  return s;
}

Result<crypto::KeyPair> identity_key_pair(Context& ctx) {
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  auto primary = (*home)->primary_key();
  if (!primary.ok()) return primary.status();
  ctx.note_identity_created();
  return identity::signing_key_pair(*primary);
}

}  // namespace p2p::cli
