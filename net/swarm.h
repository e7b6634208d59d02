// Peers by topic, as Hyperswarm finds them: join a topic as a server
// (announce this key with its relays, accept connections) and/or a client
// (look the topic up, dial the peers found), one connection per remote key.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "net/dht_connect.h"

namespace p2p::dht {

struct SwarmOptions {
  size_t max_peers = 64;
  uint64_t lookup_interval_ms = 30'000;    // clients look again this often...
  uint64_t eager_lookup_ms = 5'000;        // ...or this often during the first minute of a join
  uint64_t announce_interval_ms = 300'000;  // servers re-announce (records live 20 min)
};

class Swarm {
 public:
  // A new connection; the handler owns it from here. Its `how` says whether it
  // is direct, relayed or holepunched.
  using OnConnection = std::function<void(Established&& connection)>;

  Swarm(Connector& connector, HyperDht& dht, crypto::KeyPair key_pair, SwarmOptions options = {});
  ~Swarm();
  Swarm(const Swarm&) = delete;
  Swarm& operator=(const Swarm&) = delete;

  void set_on_connection(OnConnection handler) { on_connection_ = std::move(handler); }
  // An incoming connection replaces one we hold for the same key (its
  // process restarted): the owner closes the old one.
  void set_on_replace(std::function<void(const Key32&)> handler) { on_replace_ = std::move(handler); }
  // Failed dials and refused duplicates, for -v style reporting.
  void set_on_notice(std::function<void(const std::string&)> handler) { on_notice_ = std::move(handler); }
  void join(const Hash32& topic, bool server, bool client);
  // The owner says a connection ended: the key may be dialled again.
  void disconnected(const Key32& remote);
  size_t connections() const { return connected_.size(); }

 private:
  struct Topic {
    bool server = false, client = false;
  };
  void announce(const Hash32& topic);
  void lookup(const Hash32& topic);
  void dial(const Key32& remote, std::vector<Address> relays);
  void accept(Established&& e);
  bool wins_tie(const Key32& remote, bool we_initiate) const;
  bool admit(const Key32& remote);
  void schedule();

  Connector& connector_;
  HyperDht& dht_;
  crypto::KeyPair key_pair_;
  SwarmOptions options_;
  OnConnection on_connection_;
  std::function<void(const std::string&)> on_notice_;
  std::function<void(const Key32&)> on_replace_;
  std::map<Key32, uint64_t> connected_at_;
  // Handshakes we admitted whose connections have not come yet: not dialled
  // meanwhile, or each side could keep a different connection.
  std::map<Key32, uint64_t> accepting_;
  uint64_t joined_at_ = 0;
  std::map<Hash32, Topic> topics_;
  std::set<Key32> connected_, dialing_;
  std::map<Key32, int> failures_;
  bool listening_ = false;
  Clock::TimerId lookup_timer_ = 0, announce_timer_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2p::dht
