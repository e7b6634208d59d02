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
#include "net/udx.h"

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

// A socket of our own opened to punch a random NAT of ours (a "birthday"
// socket), with the UDX streams on it. The one that gets through carries the
// connection: its stream holds it (udx::Stream::hold).
struct PunchSocket {
  std::unique_ptr<DatagramSocket> socket;
  std::unique_ptr<udx::Mux> streams;  // after `socket`: goes first
  class Holepuncher* owner = nullptr;  // who hears its probes; none once handed over
  std::shared_ptr<bool> alive;         // PunchShared's: false once its DHT is going
};

// What the punchers of one DHT share (hyperdht keeps it on the DHT): random
// punches (hundreds of probes, or hundreds of sockets) go one at a time and
// kRandomPunchIntervalMs apart; sockets for a random NAT of ours come from
// `open_socket` (none: ours is not punched when random), and their UDX
// packets may reach streams made on the main socket (`main_streams`).
struct PunchShared {
  static constexpr uint64_t kRandomPunchIntervalMs = 20'000;
  std::function<std::unique_ptr<DatagramSocket>()> open_socket;
  udx::Mux* main_streams = nullptr;
  // Cleared as the DHT goes: a socket closed late (on a later turn of the
  // loop) then takes nothing more in.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  uint64_t seed = 0;  // for the random ports (0: from the system's randomness)
  int random_active = 0;
  std::optional<uint64_t> last_random_end;
  bool random_allowed(uint64_t now) const {
    return random_active == 0 && (!last_random_end || now - *last_random_end >= kRandomPunchIntervalMs);
  }
};

// One side of one connection's holepunching (hyperdht holepuncher.js). Our
// punching socket is the main DHT socket itself, the one the UDX streams
// use: one socket, so its NAT analysis samples that socket and the probes
// of every puncher arrive there (ProbeRouter hands each to its punchers).
//
// Strategies by the two NATs (an open node counts as consistent):
// - both consistent: 0x00 to each of the peer's addresses once a second, 10
//   tries, addresses the peer's token did not verify only every 4th try; the
//   server (not the initiator) waits 1 s first, as its "fast mode" ping has
//   just gone out;
// - ours consistent, theirs random: 0x00 to a random port (1000..65535) of
//   the peer's verified host every 20 ms, kRandomTries times: one of them
//   finds a port the peer's NAT opened towards us;
// - ours random, theirs consistent: up to kBirthdaySockets sockets of our
//   own (PunchShared::open_socket), each opening its NAT towards the peer's
//   verified address with a low-TTL probe, then probes from each in turn
//   every 20 ms (kRandomTries). Our streams may move to the one that gets
//   through (on_connect's `via`).
// Random punches count in PunchShared. The initiator's first probe from the
// peer completes it (on_connect); the other side echoes every probe (at most
// kMaxEchoes). Bounded: the tries above, then it gives up (on_abort).
class Holepuncher {
 public:
  static constexpr int kLowTtl = 5, kDefaultTtl = 64;
  static constexpr int kConsistentTries = 10;
  static constexpr uint64_t kPunchIntervalMs = 1000;
  static constexpr int kRandomTries = 1750;  // about 35 s
  static constexpr uint64_t kRandomIntervalMs = 20;
  static constexpr uint64_t kBirthdayPauseMs = 100;  // after opening the sockets
  static constexpr size_t kBirthdaySockets = 256;
  static constexpr uint16_t kMinRandomPort = 1000;
  static constexpr size_t kMaxRemoteAddresses = 8;
  static constexpr size_t kMaxEchoes = 32;

  // `shared` null: no random punching.
  Holepuncher(Clock& clock, DatagramSocket& socket, ProbeRouter& router, bool initiator, uint64_t remote_firewall,
              bool open, PunchShared* shared = nullptr);
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
  // Whether a stream from `from` came the way we punched.
  bool punched(const Address& from) const;
  void on_probe(const Address& from) { on_probe(from, nullptr); }
  // Our socket whose streams are `streams`, taken from this puncher (it then
  // outlives it), or null.
  std::shared_ptr<PunchSocket> take_socket(const udx::Mux& streams);
  size_t sockets() const { return birthday_.size(); }

  // The initiator's first probe from the peer: on the main socket (`via`
  // null) or on one of our birthday sockets, now the caller's.
  std::function<void(const Address& from, std::shared_ptr<PunchSocket> via)> on_connect;
  std::function<void()> on_abort;  // punching ended, not connected

 private:
  struct Remote {
    Address address;
    bool verified = false;
  };
  void send_probe(const Address& to, int ttl);
  void remember(const Address& a);
  void tick();
  void random_tick();
  void birthday_tick();
  bool open_birthday_sockets(const Address& to);
  void on_probe(const Address& from, const std::shared_ptr<PunchSocket>& via);
  void on_socket_datagram(PunchSocket& s, const Address& from, ByteView datagram);
  void count_random(bool on);
  const Remote* verified_remote(bool with_port) const;
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
  PunchShared* shared_;
  bool randomized_ = false;  // counted in shared_->random_active
  std::optional<Address> random_target_;  // the peer's verified host (port 0) or address
  std::vector<std::shared_ptr<PunchSocket>> birthday_;
  size_t next_socket_ = 0;
  bool low_ttl_round_ = true;
  uint64_t rng_state_ = 0;
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
