// What the commands that use the DHT share: opening a node with the global
// --bootstrap (or P2P_BOOTSTRAP), joining, and waiting with a time limit.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/dht_runtime.h"
#include "tools/cli.h"

namespace p2p::cli {

// --bootstrap, else P2P_BOOTSTRAP, else (when default_public) the public nodes.
Result<std::vector<dht::Address>> bootstrap_nodes(const Context& ctx, bool default_public);
// Where known DHT nodes are remembered ("" when the home does not exist yet).
std::string dht_nodes_file(const Context& ctx);
// A client node; a long-running one uses the adaptive mode and becomes
// persistent when reachable.
Result<std::unique_ptr<dht::Runtime>> open_dht(Context& ctx, bool long_running);
// Runs until `done`; the timeout becomes an error naming `what` and `hint`;
// Ctrl-C exits 130.
Status wait_for(dht::Runtime& rt, double timeout_s, const std::function<bool()>& done, const std::string& what,
                const std::string& hint = "check --bootstrap (or P2P_BOOTSTRAP) and the network");
// Bootstraps; an error when no node answered.
Status join_dht(dht::Runtime& rt, double timeout_s);
// The identity's signing key pair (created with the home when missing).
Result<crypto::KeyPair> identity_key_pair(Context& ctx);

}  // namespace p2p::cli
