// NATs: our address as other nodes see it, from the `to` field of their
// replies (as nat-sampler does); what one socket's NAT does (hyperdht's
// nat.js classification: open, consistent, random); and holepunching on that
// socket (hyperdht's holepuncher.js): 1-byte probes that open both NATs'
// mappings towards each other.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "net/dht_messages.h"
#include "net/dht_transport.h"

namespace p2p::dht {

enum class Firewall { unknown = 0, open = 1, consistent = 2, random = 3 };  // hyperdht's numbers

class NatSampler {
 public:
  void add(const Address& seen_as);
  size_t size() const { return samples_.size(); }
  // Set when enough samples agree; port 0 when only the host does.
  std::optional<Address> address() const;

 private:
  static constexpr size_t kWindow = 16;
  std::vector<Address> samples_;  // newest last
};

// One socket's NAT, from what a few nodes saw (hyperdht nat.js): each node
// counts once; with 3 or more samples, the top address seen 3 times is a
// consistent NAT (it keeps one public port whoever we send to), seen once a
// random one; two hits are decided by how many hosts and samples there are.
// Addresses are the consistent mapping(s) to punch, or the host alone when
// random. The analysis ends as soon as the NAT is consistent, at 4 samples,
// or when sampling is over.
class NatAnalysis {
 public:
  static constexpr size_t kMinSamples = 4;
  // `open`: the node is reachable, so the socket needs no punching.
  explicit NatAnalysis(bool open);

  void add(const Address& seen_as, const Address& from);
  Firewall firewall() const { return firewall_; }
  // nullopt while unknown (absent on the wire).
  const std::optional<std::vector<Address>>& addresses() const { return addresses_; }
  bool has_address(const Address& a) const;
  size_t sampled() const { return sampled_; }
  // What we told the peer stays what we tell it.
  void freeze() { frozen_ = true; }

  bool analyzed() const { return analyzed_; }
  // Runs `fn` once the analysis ends (now, if it has); dropped with this object.
  void when_analyzed(std::function<void()> fn);
  // Sampling is over: no more answers will come.
  void settle() { resolve(); }

 private:
  struct Sample {
    Address address;
    size_t hits = 0;
  };
  static void count(std::vector<Sample>& samples, const Address& a);
  void update();
  void resolve();

  static constexpr size_t kMaxSources = 32;
  bool open_;
  Firewall firewall_;
  std::optional<std::vector<Address>> addresses_;
  std::vector<Sample> full_, hosts_;  // most hits first
  std::vector<Address> sources_;
  size_t sampled_ = 0;
  bool frozen_ = false, analyzed_ = false;
  std::vector<std::function<void()>> waiters_;
};

class ProbeRouter;

// One side of one connection's holepunching (hyperdht holepuncher.js). Our
// punching socket is the main DHT socket itself, the one the UDX streams
// use: one socket, so its NAT analysis samples that socket and the probes
// of every puncher arrive there (ProbeRouter hands each to its punchers).
//
// The consistent strategy only (both NATs keep one public port, an open node
// counts as consistent): 0x00 to each of the peer's addresses once a second,
// 10 tries, addresses the peer's token did not verify only every 4th try;
// the server (not the initiator) waits 1 s first, as its "fast mode" ping has
// just gone out. A random NAT on either side is not punched here (hyperdht
// sprays random ports or opens 256 "birthday" sockets): punch() says no.
// The initiator's first probe from the peer completes it (on_connect); the
// other side echoes every probe (at most kMaxEchoes). Bounded: a puncher
// probes at most 10 times and then gives up (on_abort).
class Holepuncher {
 public:
  static constexpr int kLowTtl = 5, kDefaultTtl = 64;
  static constexpr int kConsistentTries = 10;
  static constexpr uint64_t kPunchIntervalMs = 1000;
  static constexpr size_t kMaxRemoteAddresses = 8;
  static constexpr size_t kMaxEchoes = 32;

  Holepuncher(Clock& clock, DatagramSocket& socket, ProbeRouter& router, bool initiator, uint64_t remote_firewall,
              bool open);
  ~Holepuncher();
  Holepuncher(const Holepuncher&) = delete;
  Holepuncher& operator=(const Holepuncher&) = delete;

  NatAnalysis& nat() { return *nat_; }
  // For sampling callbacks that may outlive the puncher.
  std::weak_ptr<NatAnalysis> nat_handle() const { return nat_; }

  // What the peer's latest holepunch message said; `verified_host` is the
  // host its token proved (the addresses on it count as verified).
  void update_remote(bool punching, uint64_t firewall, const std::optional<std::vector<Address>>& addresses,
                     const std::optional<std::array<uint8_t, 4>>& verified_host);
  uint64_t remote_firewall() const { return remote_firewall_; }
  bool remote_punching() const { return remote_punching_; }
  // hyperdht's "stable": our NAT is known, and not both NATs are random.
  bool stable() const;

  // A probe with a TTL too low to reach the peer's NAT: opens ours ("openSession").
  void open_session(const Address& to);
  void ping(const Address& to);
  // Starts punching; false when no strategy applies (the answer stays the same).
  bool punch();
  bool punching() const { return punching_; }
  bool connected() const { return connected_; }
  // Stops quietly (no on_abort).
  void stop();

  // Whether a probe from `from` is ours: from an address of the peer's
  // (exactly), or from its host.
  bool knows(const Address& from, bool exact) const;
  void on_probe(const Address& from);

  std::function<void(const Address& from)> on_connect;  // initiator: the first probe
  std::function<void()> on_abort;                       // punching ended, not connected

 private:
  struct Remote {
    Address address;
    bool verified = false;
  };
  void send_probe(const Address& to, int ttl);
  void remember(const Address& a);
  void tick();
  void give_up();

  Clock& clock_;
  DatagramSocket& socket_;
  ProbeRouter& router_;
  bool initiator_;
  std::shared_ptr<NatAnalysis> nat_;
  uint64_t remote_firewall_;
  bool remote_punching_ = false;
  std::vector<Remote> remote_;
  std::vector<Address> contacted_;  // where we sent probes (their answers are ours too)
  std::optional<bool> punch_result_;
  bool punching_ = false, connected_ = false, stopped_ = false;
  int tries_ = 0;
  size_t echoes_ = 0;
  Clock::TimerId timer_ = 0;
};

// The probes that reach the main socket, to the punchers they belong to:
// those that know the sender's exact address, else the only one that knows
// its host. Others are dropped (the main socket is public: it echoes only
// for a punch under way).
class ProbeRouter {
 public:
  void add(Holepuncher* p) { punchers_.push_back(p); }
  void remove(Holepuncher* p);
  void on_probe(const Address& from);
  size_t size() const { return punchers_.size(); }

 private:
  std::vector<Holepuncher*> punchers_;
};

}  // namespace p2p::dht
