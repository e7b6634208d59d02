#include "net/dht_nat.h"

#include <algorithm>
#include <map>

#include "core/crypto.h"

namespace p2p::dht {

void NatSampler::add(const Address& seen_as) {
  samples_.push_back(seen_as);
  if (samples_.size() > kWindow) samples_.erase(samples_.begin());
}

std::optional<Address> NatSampler::address() const {
  if (samples_.empty()) return std::nullopt;
  size_t n = samples_.size();
  // nat-sampler's tolerance: all of the first few, then all but one to three.
  size_t threshold = n - (n < 4 ? 0 : n < 8 ? 1 : n < 12 ? 2 : 3);
  std::map<Address, size_t> exact;
  std::map<std::array<uint8_t, 4>, size_t> hosts;
  for (const auto& a : samples_) {
    exact[a]++;
    hosts[a.ip]++;
  }
  for (const auto& [a, count] : exact)
    if (count >= threshold) return a;
  for (const auto& [ip, count] : hosts)
    if (count >= threshold) return Address{ip, 0};
  return std::nullopt;
}

// --- NatAnalysis ---

NatAnalysis::NatAnalysis(bool open) : open_(open), firewall_(open ? Firewall::open : Firewall::unknown) {
  // A reachable node's socket needs no samples to be punched towards.
  if (open_) analyzed_ = true;
}

void NatAnalysis::count(std::vector<Sample>& samples, const Address& a) {
  auto it = std::find_if(samples.begin(), samples.end(), [&](const Sample& s) { return s.address == a; });
  if (it == samples.end()) {
    samples.push_back(Sample{a, 1});
    return;
  }
  it->hits++;
  // Keep the most hits first (earlier samples win ties, as nat.js).
  while (it != samples.begin() && std::prev(it)->hits < it->hits) {
    std::iter_swap(it, std::prev(it));
    --it;
  }
}

void NatAnalysis::add(const Address& seen_as, const Address& from) {
  if (sources_.size() >= kMaxSources || std::find(sources_.begin(), sources_.end(), from) != sources_.end()) return;
  sources_.push_back(from);
  count(hosts_, Address{seen_as.ip, 0});
  count(full_, seen_as);
  sampled_++;
  if ((sampled_ >= 3 || open_) && !frozen_) update();
  if (firewall_ == Firewall::consistent || firewall_ == Firewall::open || sampled_ >= kMinSamples) resolve();
}

void NatAnalysis::update() {
  if (open_) {
    firewall_ = Firewall::open;
  } else if (sampled_ >= 3) {
    size_t top = full_[0].hits;
    if (top >= 3) firewall_ = Firewall::consistent;
    else if (top == 1) firewall_ = Firewall::random;
    // Two hits: one host and a bad sample or two is random; two hosts seen
    // twice each (a multi-homed NAT) is consistent; undecided after all the
    // samples we expect is random.
    else if (hosts_.size() == 1 && sampled_ > 3) firewall_ = Firewall::random;
    else if (hosts_.size() > 1 && full_[1].hits > 1) firewall_ = Firewall::consistent;
    else if (sampled_ > 4) firewall_ = Firewall::random;
  }
  switch (firewall_) {
    case Firewall::unknown:
      addresses_.reset();
      break;
    case Firewall::random:
      addresses_ = std::vector<Address>{hosts_[0].address};  // the host; its ports are anyone's guess
      break;
    case Firewall::consistent:
    case Firewall::open:
      addresses_ = std::vector<Address>{};
      for (const auto& s : full_)
        if (s.hits >= 2 || addresses_->size() < 2) addresses_->push_back(s.address);
      break;
  }
}

bool NatAnalysis::has_address(const Address& a) const {
  return addresses_ && std::find(addresses_->begin(), addresses_->end(), a) != addresses_->end();
}

void NatAnalysis::when_analyzed(std::function<void()> fn) {
  if (analyzed_) return fn();
  waiters_.push_back(std::move(fn));
}

void NatAnalysis::resolve() {
  if (analyzed_) return;
  analyzed_ = true;
  // A waiter may end the puncher that owns us: nothing here touches `this` after.
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& fn : waiters) fn();
}

// --- Holepuncher ---

namespace {

// An open NAT is punched like a consistent one; anything above consistent
// (random, or a number we do not know) is not.
uint64_t coerce(uint64_t firewall) {
  return firewall == static_cast<uint64_t>(Firewall::open) ? static_cast<uint64_t>(Firewall::consistent) : firewall;
}

constexpr size_t kMaxContacted = 16;
const uint8_t kProbe[1] = {0};

// splitmix64: random ports from a seed, so that simulations repeat.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Holepuncher::Holepuncher(Clock& clock, DatagramSocket& socket, ProbeRouter& router, bool initiator,
                         uint64_t remote_firewall, bool open, PunchShared* shared)
    : clock_(clock),
      socket_(socket),
      router_(router),
      initiator_(initiator),
      nat_(std::make_shared<NatAnalysis>(open)),
      remote_firewall_(remote_firewall),
      shared_(shared) {
  router_.add(this);
  if (shared_ && shared_->seed) rng_state_ = shared_->seed++;  // each puncher its own sequence
  else crypto::random_bytes(reinterpret_cast<uint8_t*>(&rng_state_), sizeof rng_state_);
}

Holepuncher::~Holepuncher() {
  stop();
  router_.remove(this);
  for (auto& s : birthday_) s->owner = nullptr;
}

void Holepuncher::stop() {
  stopped_ = true;
  punching_ = false;
  clock_.cancel_timer(timer_);
  timer_ = 0;
  count_random(false);
}

// hyperdht's _randomPunches / _lastRandomPunch: the interval runs from the
// end of the last random punch, whichever way it ended.
void Holepuncher::count_random(bool on) {
  if (!shared_ || on == randomized_) return;
  randomized_ = on;
  if (on) {
    shared_->random_active++;
  } else {
    shared_->random_active--;
    shared_->last_random_end = clock_.now_ms();
  }
}

void Holepuncher::update_remote(bool punching, uint64_t firewall, const std::optional<std::vector<Address>>& addresses,
                                const std::optional<std::array<uint8_t, 4>>& verified_host) {
  auto was_verified = [&](const Address& a) {
    return std::any_of(remote_.begin(), remote_.end(), [&](const Remote& r) { return r.verified && r.address.ip == a.ip; });
  };
  std::vector<Remote> fresh;
  if (addresses) {
    for (const auto& a : *addresses) {
      if (fresh.size() >= kMaxRemoteAddresses) break;
      fresh.push_back(Remote{a, (verified_host && *verified_host == a.ip) || was_verified(a)});
    }
  }
  remote_ = std::move(fresh);
  remote_firewall_ = firewall;
  remote_punching_ = punching;
}

bool Holepuncher::stable() const {
  uint64_t random = static_cast<uint64_t>(Firewall::random);
  Firewall ours = nat_->firewall();
  if (ours == Firewall::unknown) return false;
  return !(remote_firewall_ >= random && static_cast<uint64_t>(ours) >= random);
}

void Holepuncher::send_probe(const Address& to, int ttl) {
  if (ttl == kDefaultTtl) socket_.send(to, ByteView(kProbe, 1));
  else socket_.send_ttl(to, ByteView(kProbe, 1), ttl);
  remember(to);
}

void Holepuncher::remember(const Address& a) {
  if (contacted_.size() < kMaxContacted && std::find(contacted_.begin(), contacted_.end(), a) == contacted_.end()) {
    contacted_.push_back(a);
  }
}

void Holepuncher::open_session(const Address& to) {
  if (!stopped_) send_probe(to, kLowTtl);
}

void Holepuncher::ping(const Address& to) {
  if (!stopped_) send_probe(to, kDefaultTtl);
}

const Holepuncher::Remote* Holepuncher::verified_remote(bool with_port) const {
  for (const auto& r : remote_)
    if (r.verified && (!with_port || r.address.port != 0)) return &r;
  return nullptr;
}

bool Holepuncher::punch() {
  if (punch_result_) return *punch_result_;
  punch_result_ = false;  // the answer stays, whatever it is
  if (stopped_ || connected_ || remote_.empty()) return false;
  const uint64_t consistent = static_cast<uint64_t>(Firewall::consistent), random = static_cast<uint64_t>(Firewall::random);
  uint64_t local = coerce(static_cast<uint64_t>(nat_->firewall())), remote = coerce(remote_firewall_);
  if (local == consistent && remote == consistent) {
    punch_result_ = punching_ = true;
    // The initiator starts at once; the other side's fast-mode ping has just
    // gone out, so it waits a second first.
    if (initiator_) tick();
    else timer_ = clock_.start_timer(kPunchIntervalMs, [this] { tick(); });
    return true;
  }
  if (!shared_) return false;
  if (local == consistent && remote >= random) {
    const Remote* r = verified_remote(false);
    if (!r) return false;
    random_target_ = Address{r->address.ip, 0};
    punch_result_ = punching_ = true;
    count_random(true);
    random_tick();
    return true;
  }
  if (local >= random && remote == consistent) {
    const Remote* r = verified_remote(true);
    if (!r || !shared_->open_socket) return false;
    random_target_ = r->address;
    if (!open_birthday_sockets(r->address)) return false;
    punch_result_ = punching_ = true;
    count_random(true);
    // hyperdht slows down after the burst that opened the sockets.
    timer_ = clock_.start_timer(kBirthdayPauseMs, [this] { birthday_tick(); });
    return true;
  }
  return false;
}

// Each socket's receiver asks its owner (while there is one) or goes
// straight to its streams. A socket's last owner drops it on a later turn
// of the loop: never inside its own receive callback.
bool Holepuncher::open_birthday_sockets(const Address& to) {
  while (birthday_.size() < kBirthdaySockets) {
    auto socket = shared_->open_socket();
    if (!socket) break;  // out of ports or descriptors: punch with what there is
    Clock& clock = clock_;
    std::shared_ptr<PunchSocket> s(new PunchSocket, [&clock](PunchSocket* p) {
      std::shared_ptr<PunchSocket> last(p);
      clock.start_timer(0, [last] {});
    });
    s->socket = std::move(socket);
    s->streams = std::make_unique<udx::Mux>(clock_, *s->socket);
    if (shared_->main_streams) s->streams->borrow_from(shared_->main_streams);
    s->owner = this;
    s->alive = shared_->alive;
    PunchSocket* raw = s.get();
    s->socket->set_receiver([raw](const Address& from, ByteView d) {
      if (!*raw->alive) return;
      if (raw->owner) raw->owner->on_socket_datagram(*raw, from, d);
      else raw->streams->handle(from, d);
    });
    s->socket->send_ttl(to, ByteView(kProbe, 1), kLowTtl);
    birthday_.push_back(std::move(s));
  }
  return !birthday_.empty();
}

void Holepuncher::on_socket_datagram(PunchSocket& s, const Address& from, ByteView datagram) {
  if (datagram.size() != 1 || datagram[0] != 0) {
    s.streams->handle(from, datagram);
    return;
  }
  if (!random_target_ || from.ip != random_target_->ip) return;  // only the peer knows this socket
  auto it = std::find_if(birthday_.begin(), birthday_.end(), [&](const auto& p) { return p.get() == &s; });
  if (it != birthday_.end()) on_probe(from, *it);
}

std::shared_ptr<PunchSocket> Holepuncher::take_socket(const udx::Mux& streams) {
  auto it = std::find_if(birthday_.begin(), birthday_.end(), [&](const auto& p) { return p->streams.get() == &streams; });
  if (it == birthday_.end()) return nullptr;
  auto s = std::move(*it);
  birthday_.erase(it);
  s->owner = nullptr;
  return s;
}

void Holepuncher::tick() {
  timer_ = 0;
  if (!punching_) return;
  if (tries_ >= kConsistentTries) return give_up();
  tries_++;
  for (const auto& r : remote_) {
    if (r.verified || (tries_ & 3) == 0) send_probe(r.address, kDefaultTtl);
  }
  timer_ = clock_.start_timer(kPunchIntervalMs, [this] { tick(); });
}

void Holepuncher::random_tick() {
  timer_ = 0;
  if (!punching_) return;
  if (tries_ >= kRandomTries) return give_up();
  tries_++;
  constexpr uint64_t kPorts = 65536 - kMinRandomPort;
  Address to{random_target_->ip, static_cast<uint16_t>(kMinRandomPort + next_random(rng_state_) % kPorts)};
  socket_.send(to, ByteView(kProbe, 1));  // not remembered: the peer's host is
  timer_ = clock_.start_timer(kRandomIntervalMs, [this] { random_tick(); });
}

// Round robin over our sockets, the first round with a low TTL (it only
// keeps our NAT open), then through to the peer.
void Holepuncher::birthday_tick() {
  timer_ = 0;
  if (!punching_) return;
  if (tries_ >= kRandomTries || birthday_.empty()) return give_up();
  tries_++;
  if (next_socket_ >= birthday_.size()) {
    next_socket_ = 0;
    low_ttl_round_ = false;
  }
  DatagramSocket& s = *birthday_[next_socket_++]->socket;
  if (low_ttl_round_) s.send_ttl(*random_target_, ByteView(kProbe, 1), kLowTtl);
  else s.send(*random_target_, ByteView(kProbe, 1));
  timer_ = clock_.start_timer(kRandomIntervalMs, [this] { birthday_tick(); });
}

void Holepuncher::give_up() {
  stop();
  if (connected_) return;
  auto cb = on_abort;  // may destroy us: the last thing done
  if (cb) cb();
}

bool Holepuncher::knows(const Address& from, bool exact) const {
  auto match = [&](const Address& a) { return exact ? a == from : a.ip == from.ip; };
  return std::any_of(remote_.begin(), remote_.end(), [&](const Remote& r) { return match(r.address); }) ||
         std::any_of(contacted_.begin(), contacted_.end(), match);
}

bool Holepuncher::punched(const Address& from) const {
  if (knows(from, true)) return true;
  // A random NAT's port for us is one we found by spraying its host.
  return random_target_ && random_target_->port == 0 && random_target_->ip == from.ip;
}

void Holepuncher::on_probe(const Address& from, const std::shared_ptr<PunchSocket>& via) {
  if (stopped_ || from.port == 0) return;
  if (!initiator_) {
    // The peer's probe got through our NAT; ours back tells it the way is open.
    if (echoes_ < kMaxEchoes) {
      echoes_++;
      if (via) via->socket->send(from, ByteView(kProbe, 1));
      else send_probe(from, kDefaultTtl);
    }
    return;
  }
  if (connected_) return;
  connected_ = true;
  std::shared_ptr<PunchSocket> winner = via;
  if (winner) take_socket(*winner->streams);
  stop();
  for (auto& s : birthday_) s->owner = nullptr;
  birthday_.clear();  // the others close
  auto cb = on_connect;  // may destroy us: the last thing done
  if (cb) cb(from, std::move(winner));
}

// --- ProbeRouter ---

void ProbeRouter::remove(Holepuncher* p) { std::erase(punchers_, p); }

void ProbeRouter::on_probe(const Address& from) {
  // Every puncher that knows the exact sender: two peers dialling each other
  // at once punch twice between the same two sockets (our dial's puncher
  // connects on it, our server's echoes it).
  std::vector<Holepuncher*> targets;
  for (auto* p : punchers_)
    if (p->knows(from, true)) targets.push_back(p);
  if (targets.empty()) {
    // A NAT that gave the peer another port for us: its host will do, when
    // only one punch knows it.
    for (auto* p : punchers_)
      if (p->knows(from, false)) targets.push_back(p);
    if (targets.size() != 1) return;
  }
  for (auto* p : targets) {
    // A callback may have ended a puncher on the list.
    if (std::find(punchers_.begin(), punchers_.end(), p) != punchers_.end()) p->on_probe(from);
  }
}

}  // namespace p2p::dht
