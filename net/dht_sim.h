// A simulated UDP network and clock in one process, driven event by event:
// packets are delayed, reordered, lost and duplicated from a seeded PRNG, so
// a test of hundreds of DHT nodes runs in milliseconds and the same every time.
#pragma once

#include <map>
#include <memory>
#include <queue>
#include <random>
#include <unordered_map>

#include "net/dht_transport.h"

namespace p2p::dht {

struct SimConditions {
  double loss = 0;       // probability a datagram is dropped
  double duplicate = 0;  // probability it arrives twice
  uint64_t min_delay_ms = 1, max_delay_ms = 20;  // uniform: different delays reorder
  // What sockets report as their link MTU, and the largest IP datagram the
  // path carries (bigger ones vanish, as with Don't Fragment and no ICMP).
  size_t link_mtu = 1500, path_mtu = 1500;
};

class SimNetwork : public Clock {
 public:
  explicit SimNetwork(uint64_t seed, SimConditions conditions = {});
  ~SimNetwork() override;

  void set_conditions(SimConditions c) { conditions_ = c; }
  // A socket at `address` (an unused one). Destroying it takes it off the network.
  // A firewalled socket only receives from addresses it has sent to (a NAT
  // that keeps the port but filters unsolicited packets: a "consistent" NAT).
  std::unique_ptr<DatagramSocket> open_socket(const Address& address, bool firewalled = false);
  // A socket behind a "random" NAT: each destination sees it at a new port
  // of its host, which passes in only that destination's packets.
  std::unique_ptr<DatagramSocket> open_random_nat_socket(const Address& address);
  // Injects a datagram as if `from` had sent it (for hostile-input tests).
  void inject(const Address& from, const Address& to, ByteView datagram);

  uint64_t now_ms() const override { return now_; }
  TimerId start_timer(uint64_t delay_ms, std::function<void()> fn) override;
  void cancel_timer(TimerId id) override;

  // Runs events in time order until `done()` holds or `max_ms` of simulated
  // time pass; true when done() held.
  bool run_until(const std::function<bool()>& done, uint64_t max_ms);
  void run_for(uint64_t ms) { run_until([] { return false; }, ms); }

  uint64_t delivered() const { return delivered_; }
  uint64_t dropped() const { return dropped_; }

 private:
  class Socket;
  struct Event {
    uint64_t at, seq;
    TimerId timer;  // 0: a packet
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct Packet {
    Address from, to;
    Bytes bytes;
  };
  void send(const Address& from, const Address& to, ByteView datagram);
  size_t link_mtu() const { return conditions_.link_mtu; }
  void schedule_packet(Packet p, uint64_t delay);

  SimConditions conditions_;
  std::mt19937_64 rng_;
  uint64_t now_ = 0, next_seq_ = 0;
  TimerId next_timer_ = 1;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::unordered_map<TimerId, std::function<void()>> timers_;
  std::map<uint64_t, Packet> packets_;  // by event seq
  std::map<Address, Socket*> sockets_;
  uint64_t delivered_ = 0, dropped_ = 0;
  uint16_t next_nat_port_ = 20000;
};

}  // namespace p2p::dht
