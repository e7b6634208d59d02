// p2p relay: a blind relay on the DHT for peers that cannot reach each
// other (both behind random NATs, say); they name its key as relayThrough.
#include <iostream>

#include "net/relay_service.h"
#include "tools/dht_client.h"

namespace p2p::cli {
namespace {

struct RelayArgs {
  double timeout_s = 30;
};

nlohmann::json event_json(const net::RelayEvent& e) {
  static const char* kNames[] = {"connected", "disconnected", "paired", "ended"};
  nlohmann::json j{{"event", kNames[e.kind]}};
  if (e.kind == net::RelayEvent::paired || e.kind == net::RelayEvent::ended) {
    j["token"] = to_hex(e.key);
    if (e.kind == net::RelayEvent::ended) j["bytes"] = e.bytes;
  } else {
    j["publicKey"] = to_hex(e.key);
    j["address"] = e.address;
    if (!e.reason.empty()) j["reason"] = e.reason;
  }
  return j;
}

std::string event_line(const net::RelayEvent& e) {
  switch (e.kind) {
    case net::RelayEvent::connected:
      return "connected " + to_hex(e.key) + " " + e.address;
    case net::RelayEvent::disconnected:
      return "disconnected " + to_hex(e.key) + " " + e.address + (e.reason.empty() ? "" : ": " + e.reason);
    case net::RelayEvent::paired:
      return "paired " + to_hex(e.key).substr(0, 16);
    case net::RelayEvent::ended:
      return "ended " + to_hex(e.key).substr(0, 16) + " after " + std::to_string(e.bytes) + " bytes";
  }
  return "";
}

int relay(Context& ctx, const RelayArgs& a) {
  auto kp = identity_key_pair(ctx);
  if (!kp.ok()) return ctx.fail(kp.status());
  auto rt = open_dht(ctx, true);
  if (!rt.ok()) return ctx.fail(rt.status());
  dht::Runtime& r = **rt;
  if (Status s = join_dht(r, a.timeout_s); !s.ok()) return ctx.fail(s);
  // One line per event, each flushed: scripts watch the output as it comes.
  net::RelayService service(r, *kp, [&](const net::RelayEvent& e) {
    if (ctx.json) ctx.emit(event_json(e));
    else std::cout << event_line(e) << "\n";
    std::cout.flush();
  });
  if (ctx.json) ctx.emit({{"event", "listening"}, {"publicKey", to_hex(kp->public_key)}});
  else std::cout << "relaying as " << to_hex(kp->public_key) << "\n";
  std::cout.flush();
  ctx.info("peers use it with relayThrough set to this key; stop with Ctrl-C");
  r.run_until([] { return false; }, 0);
  return kOk;
}

}  // namespace

void add_relay_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<RelayArgs>();
  auto* cmd = app.add_subcommand(
      "relay", "Serve as a blind relay on the DHT for peers that cannot reach each other, until interrupted");
  cmd->add_option("--timeout", a->timeout_s, "Give up joining the DHT after this many seconds")->capture_default_str();
  cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return relay(ctx, *a); }; });
}

}  // namespace p2p::cli
