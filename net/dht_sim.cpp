#include "net/dht_sim.h"

#include <set>

namespace p2p::dht {

class SimNetwork::Socket : public DatagramSocket {
 public:
  enum class Nat { none, consistent, random };
  Socket(SimNetwork& net, Address address, Nat nat) : net_(net), address_(address), nat_(nat) {}
  ~Socket() override {
    net_.sockets_.erase(address_);
    for (const auto& [to, alias] : mapped_) net_.sockets_.erase(alias);
  }
  void send(const Address& to, ByteView datagram) override {
    if (nat_ != Nat::none) contacted_.insert(to);
    net_.send(nat_ == Nat::random ? alias_for(to) : address_, to, datagram);
  }
  Address local_address() const override { return address_; }
  size_t link_mtu(const Address&) const override { return net_.link_mtu(); }
  void set_receiver(Receiver r) override { receiver_ = std::move(r); }
  // False when the firewall stopped it; `to` is the address it was sent to.
  bool deliver(const Address& from, const Address& to, ByteView d) {
    if (nat_ != Nat::none && !contacted_.count(from)) return false;
    if (nat_ == Nat::random && (to == address_ || mapped_.at(from) != to)) return false;
    if (receiver_) receiver_(from, d);
    return true;
  }

 private:
  // The public address a destination sees us at: a fresh port per destination.
  Address alias_for(const Address& to) {
    auto it = mapped_.find(to);
    if (it != mapped_.end()) return it->second;
    Address alias{address_.ip, net_.next_nat_port_++};
    while (net_.sockets_.count(alias)) alias.port = net_.next_nat_port_++;
    net_.sockets_[alias] = this;
    return mapped_[to] = alias;
  }

  SimNetwork& net_;
  Address address_;
  Nat nat_;
  std::set<Address> contacted_;
  std::map<Address, Address> mapped_;  // destination -> our public address for it
  Receiver receiver_;
};

SimNetwork::SimNetwork(uint64_t seed, SimConditions conditions) : conditions_(conditions), rng_(seed) {}

SimNetwork::~SimNetwork() {
  // Timers that never ran go first: what they hold (a socket closed late)
  // may still need the network.
  auto timers = std::move(timers_);
  timers.clear();
  for (auto& [a, s] : sockets_) s->set_receiver(nullptr);
}

std::unique_ptr<DatagramSocket> SimNetwork::open_socket(const Address& address, bool firewalled) {
  auto s = std::make_unique<Socket>(*this, address, firewalled ? Socket::Nat::consistent : Socket::Nat::none);
  sockets_[address] = s.get();
  return s;
}

std::unique_ptr<DatagramSocket> SimNetwork::open_random_nat_socket(const Address& address) {
  auto s = std::make_unique<Socket>(*this, address, Socket::Nat::random);
  sockets_[address] = s.get();
  return s;
}

Clock::TimerId SimNetwork::start_timer(uint64_t delay_ms, std::function<void()> fn) {
  TimerId id = next_timer_++;
  timers_[id] = std::move(fn);
  events_.push(Event{now_ + delay_ms, next_seq_++, id});
  return id;
}

void SimNetwork::cancel_timer(TimerId id) { timers_.erase(id); }

void SimNetwork::send(const Address& from, const Address& to, ByteView datagram) {
  std::uniform_real_distribution<double> chance(0, 1);
  constexpr size_t kIpUdpHeaders = 28;
  if (datagram.size() + kIpUdpHeaders > conditions_.path_mtu || chance(rng_) < conditions_.loss) {
    dropped_++;
    return;
  }
  std::uniform_int_distribution<uint64_t> delay(conditions_.min_delay_ms, conditions_.max_delay_ms);
  bool twice = chance(rng_) < conditions_.duplicate;
  schedule_packet(Packet{from, to, to_bytes(datagram)}, delay(rng_));
  if (twice) schedule_packet(Packet{from, to, to_bytes(datagram)}, delay(rng_));
}

void SimNetwork::inject(const Address& from, const Address& to, ByteView datagram) {
  schedule_packet(Packet{from, to, to_bytes(datagram)}, 0);
}

void SimNetwork::schedule_packet(Packet p, uint64_t delay) {
  uint64_t seq = next_seq_++;
  packets_.emplace(seq, std::move(p));
  events_.push(Event{now_ + delay, seq, 0});
}

bool SimNetwork::run_until(const std::function<bool()>& done, uint64_t max_ms) {
  uint64_t end = now_ + max_ms;
  while (!done()) {
    if (events_.empty() || events_.top().at > end) {
      now_ = end;
      return done();
    }
    Event e = events_.top();
    events_.pop();
    now_ = e.at;
    if (e.timer != 0) {
      auto it = timers_.find(e.timer);
      if (it == timers_.end()) continue;  // cancelled
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
      continue;
    }
    auto p = packets_.extract(e.seq);
    auto s = sockets_.find(p.mapped().to);
    if (s == sockets_.end()) {
      dropped_++;  // nobody there (a killed node)
      continue;
    }
    if (s->second->deliver(p.mapped().from, p.mapped().to, p.mapped().bytes)) delivered_++;
    else dropped_++;
  }
  return true;
}

}  // namespace p2p::dht
