#include "net/dht_rpc.h"

#include <algorithm>
#include <map>

#include "core/crypto.h"
#include "core/encoding.h"
#include "net/dht_query.h"

namespace p2p::dht {
namespace {

constexpr int kRefreshTicks = 60;   // refresh about every 5 minutes when idle
constexpr uint64_t kRecentNode = 12;  // heard from less than a minute ago
constexpr uint64_t kOldNode = 360;    // around for more than 30 minutes
constexpr int kMaxChecks = 10;
constexpr uint64_t kFirewallRecheckTicks = 60;  // five minutes

}  // namespace

struct Node::Inflight {
  Address to;
  std::optional<Hash32> to_id;  // set when `to` may be in our table
  Bytes packet;
  int sent = 0;
  int retries = 3;
  uint64_t sent_at = 0;
  Clock::TimerId timer = 0;
  bool waiting = false;  // held back by the congestion window
  DatagramSocket* socket = nullptr;  // it went out on
  ReplyCallback callback;
  std::function<void()> on_cycle;
};

Node::Node(Clock& clock, DatagramSocket& socket, NodeConfig config, DatagramSocket* client_socket)
    : clock_(clock),
      socket_(socket),
      client_socket_(client_socket),
      config_(std::move(config)),
      rng_state_(config_.seed),
      table_(config_.public_address ? node_id(*config_.public_address) : random_hash(), config_.k) {
  uint16_t start = 0;
  random_fill(reinterpret_cast<uint8_t*>(&start), sizeof start);
  next_tid_ = start;
  secrets_[0] = random_hash();
  secrets_[1] = random_hash();
  persistent_ = config_.public_address.has_value();
  firewalled_ = !persistent_;
  stable_ticks_left_ = config_.stable_ticks;
  socket_.set_receiver([this](const Address& from, ByteView d) { on_datagram(socket_, from, d); });
  if (client_socket_) {
    client_socket_->set_receiver([this](const Address& from, ByteView d) { on_datagram(*client_socket_, from, d); });
  }
  tick_timer_ = clock_.start_timer(kTickMs, [this] { tick(); });
  drain_timer_ = clock_.start_timer(kDrainMs, [this] { drain(); });
  for (const auto& a : config_.known_nodes) add_node(a);
}

Node::~Node() { close(); }

void Node::close() {
  if (closed_) return;
  closed_ = true;
  socket_.set_receiver(nullptr);
  if (client_socket_) client_socket_->set_receiver(nullptr);
  clock_.cancel_timer(tick_timer_);
  clock_.cancel_timer(drain_timer_);
  for (auto& [tid, f] : inflight_) clock_.cancel_timer(f->timer);
  inflight_.clear();
  waiting_.clear();
  for (auto& [n, t] : delayed_pings_) clock_.cancel_timer(t);
  delayed_pings_.clear();
  for (const auto& q : queries_) q->cancel();
  queries_.clear();
}

void Node::random_fill(uint8_t* out, size_t n) {
  if (config_.seed == 0) return crypto::random_bytes(out, n);
  for (size_t i = 0; i < n; i++) {
    // splitmix64, one byte per step: plenty for tests.
    uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    out[i] = static_cast<uint8_t>(z ^ (z >> 31));
  }
}

Hash32 Node::random_hash() {
  Hash32 h;
  random_fill(h.data(), h.size());
  return h;
}

std::optional<Hash32> Node::id() const {
  if (!persistent()) return std::nullopt;
  return table_.id();
}

// --- sending ---

void Node::request(const Address& to, const OutboundRequest& req, ReplyCallback cb, int retries,
                   std::function<void()> on_cycle) {
  if (closed_) return;
  Request msg;
  msg.tid = next_tid_++;
  msg.to = to;
  DatagramSocket& out = request_socket();
  // Only the main socket's address matches our id.
  if (persistent_ && &out == &socket_) msg.id = table_.id();
  msg.token = req.token;
  msg.internal = req.internal;
  msg.command = req.command;
  msg.target = req.target;
  msg.value = req.value;

  auto f = std::make_unique<Inflight>();
  f->to = to;
  f->to_id = node_id(to);
  f->packet = encode_request(msg);
  f->retries = retries;
  f->socket = &out;
  f->callback = std::move(cb);
  f->on_cycle = std::move(on_cycle);
  inflight_[msg.tid] = std::move(f);
  stats_.requests++;
  transmit(msg.tid);
}

void Node::relay_request(const Address& to, const Request& original, ByteView value) {
  Request msg = original;
  msg.to = to;
  msg.id = persistent_ ? std::optional<Hash32>(table_.id()) : std::nullopt;
  msg.token.reset();
  msg.value = to_bytes(value);
  stats_.packets_sent++;
  socket_.send(to, encode_request(msg));
}

void Node::ping(const Address& to, ReplyCallback cb) {
  request(to, OutboundRequest{.internal = true, .command = kPing}, std::move(cb));
}

void Node::transmit(uint16_t tid) {
  auto it = inflight_.find(tid);
  if (it == inflight_.end()) return;
  Inflight& f = *it->second;
  bool full = window_total_ >= 2 * config_.max_window || window_[window_slot_] >= config_.max_window;
  if (full) {
    if (!f.waiting) waiting_.push_back(tid);
    f.waiting = true;
    return;
  }
  f.waiting = false;
  f.sent++;
  f.sent_at = clock_.now_ms();
  window_[window_slot_]++;
  window_total_++;
  stats_.packets_sent++;
  f.socket->send(f.to, f.packet);
  clock_.cancel_timer(f.timer);
  f.timer = clock_.start_timer(config_.request_timeout_ms, [this, tid] { on_request_timeout(tid); });
}

void Node::on_request_timeout(uint16_t tid) {
  auto it = inflight_.find(tid);
  if (it == inflight_.end()) return;
  Inflight& f = *it->second;
  f.timer = 0;
  if (f.on_cycle) f.on_cycle();
  it = inflight_.find(tid);  // on_cycle may have started other requests
  if (it == inflight_.end()) return;
  if (it->second->sent > it->second->retries) {
    auto done = std::move(it->second);
    inflight_.erase(it);
    stats_.timeouts++;
    if (done->to_id && table_.get(*done->to_id)) table_.remove(*done->to_id);
    if (done->callback) done->callback(nullptr);
    return;
  }
  stats_.retries++;
  transmit(tid);
}

void Node::drain() {
  drain_timer_ = clock_.start_timer(kDrainMs, [this] { drain(); });
  if (--drains_until_rotation_ == 0) {
    // secret[0] <- secret[1]; secret[1] <- H(old secret[0]).
    drains_until_rotation_ = 10;
    Hash32 old = secrets_[0];
    secrets_[0] = secrets_[1];
    secrets_[1] = crypto::hash({old});
  }
  window_slot_ = (window_slot_ + 1) & 3;
  window_total_ -= window_[window_slot_];
  window_[window_slot_] = 0;
  auto queue = std::move(waiting_);
  waiting_.clear();
  for (uint16_t tid : queue) {
    auto it = inflight_.find(tid);
    if (it != inflight_.end()) {
      it->second->waiting = false;
      transmit(tid);
    }
  }
}

// --- receiving ---

void Node::on_datagram(DatagramSocket& socket, const Address& from, ByteView datagram) {
  if (closed_ || datagram.size() < 2 || from.port == 0) return;
  stats_.packets_received++;
  if (datagram[0] == kRequestByte) {
    auto msg = decode_request(datagram);
    if (!msg) {
      stats_.malformed++;
      return;
    }
    on_request(socket, from, std::move(*msg));
  } else if (datagram[0] == kResponseByte) {
    auto msg = decode_response(datagram);
    if (!msg) {
      stats_.malformed++;
      return;
    }
    on_response(socket, from, std::move(*msg));
  }
}

Hash32 Node::token_for(const Address& addr, int secret) const {
  // The requester's IP only: a token survives a port change.
  return crypto::hash({as_bytes(addr.host())}, secrets_[secret]);
}

void Node::on_request(DatagramSocket& socket, const Address& from, Request msg) {
  InboundRequest in{.from = from, .from_id = std::nullopt, .message = std::move(msg), .on_main_socket = &socket == &socket_};
  if (in.message.id && *in.message.id == node_id(from)) in.from_id = in.message.id;
  if (in.message.token && *in.message.token != token_for(from, 1) && *in.message.token != token_for(from, 0)) {
    send_reply(socket, from, in.message, Answer{.error = kErrorInvalidToken, .token = true});
    return;
  }
  if (in.from_id) add_from_network(from, in.from_id, in.message.to);
  if (in.message.internal) {
    if (!handle_internal(socket, in)) {
      send_reply(socket, from, in.message, Answer{.error = kErrorUnknownCommand, .token = false});
    }
    return;
  }
  std::optional<Answer> answer = handler_ ? handler_(in) : std::nullopt;
  if (!answer) answer = Answer{.error = kErrorUnknownCommand, .token = false};
  if (!answer->drop) send_reply(socket, from, in.message, *answer);
}

bool Node::handle_internal(DatagramSocket& socket, const InboundRequest& in) {
  const Request& req = in.message;
  const Answer plain{.token = false, .closer_nodes = false};
  switch (req.command) {
    case kPing:
      send_reply(socket, in.from, req, plain);
      return true;
    case kPingNat: {
      // Answer to the port the requester names, to show whether it is reachable.
      if (!req.value || req.value->size() < 2) return true;
      uint16_t port = static_cast<uint16_t>((*req.value)[0] | ((*req.value)[1] << 8));
      if (port == 0) return true;
      Address to = in.from;
      to.port = port;
      send_reply(socket, to, req, plain);
      return true;
    }
    case kFindNode:
      if (!req.target) return true;
      send_reply(socket, in.from, req, Answer{.token = false, .closer_nodes = true});
      return true;
    case kDownHint: {
      if (!req.value || req.value->size() < 6) return true;
      if (checks_ < kMaxChecks) {
        Hash32 id = crypto::hash({ByteView(*req.value).first(6)});
        if (NodeEntry* n = table_.get(id); n && (n->pinged < tick_ || n->down_hints == 0)) {
          n->down_hints++;
          check(id);
        }
      }
      send_reply(socket, in.from, req, plain);
      return true;
    }
    case kDelayedPing: {
      if (!req.value || req.value->size() < 4) return true;
      const Bytes& v = *req.value;
      uint64_t delay = v[0] | (v[1] << 8) | (v[2] << 16) | (uint64_t{v[3]} << 24);
      if (delay > config_.max_ping_delay_ms) return true;
      uint64_t n = next_delayed_++;
      delayed_pings_[n] = clock_.start_timer(delay, [this, n, &socket, from = in.from, req] {
        delayed_pings_.erase(n);
        send_reply(socket, from, req, Answer{.token = false, .closer_nodes = false});
      });
      return true;
    }
  }
  return false;
}

void Node::send_reply(DatagramSocket& socket, const Address& to, const Request& req, const Answer& a) {
  Response r;
  r.tid = req.tid;
  r.to = to;
  if (persistent_ && &socket == &socket_) r.id = table_.id();
  if (a.token) r.token = token_for(to, 1);
  if (req.target && a.closer_nodes) {
    for (const auto& n : table_.closest(*req.target, table_.k())) r.closer_nodes.push_back(n.address);
  }
  r.error = a.error;
  r.value = a.value;
  stats_.packets_sent++;
  socket.send(to, encode_response(r));
}

void Node::on_response(DatagramSocket& socket, const Address& from, Response msg) {
  auto it = inflight_.find(msg.tid);
  // Only the node we asked may answer: a tid alone is easy to guess. A
  // PING_NAT answer comes to the main socket whichever socket asked.
  if (it == inflight_.end() || it->second->to != from) return;
  bool expected_socket = &socket == it->second->socket;
  auto f = std::move(it->second);
  inflight_.erase(it);
  clock_.cancel_timer(f->timer);
  if (window_[window_slot_] > 0) {
    window_[window_slot_]--;
    window_total_--;
  }
  stats_.responses++;
  Reply r{.from = from,
          .from_id = std::nullopt,
          .to = msg.to,
          .token = msg.token,
          .closer_nodes = std::move(msg.closer_nodes),
          .error = msg.error,
          .value = std::move(msg.value),
          .rtt_ms = clock_.now_ms() - f->sent_at,
          .on_main_socket = &socket == &socket_};
  if (msg.id && *msg.id == node_id(from)) r.from_id = msg.id;
  if (expected_socket) add_from_network(from, r.from_id, r.to);
  if (f->callback) f->callback(&r);
}

// --- routing table upkeep ---

void Node::add_node(const Address& address) {
  insert(NodeEntry{.id = node_id(address), .address = address});
}

void Node::insert(NodeEntry entry) {
  if (entry.id == table_.id() || table_.get(entry.id)) return;
  entry.added = entry.pinged = entry.seen = tick_;
  if (table_.add(entry) == RoutingTable::Added::row_full) on_full_row(entry);
}

void Node::add_from_network(const Address& from, const std::optional<Hash32>& id, const Address& to) {
  if (!id) {
    // Ephemeral nodes (a network's first bootstrap node among them) still
    // tell us our address: one sample each from as many as we have bootstrap nodes.
    size_t limit = std::max<size_t>(1, config_.bootstrap.size());
    if (nat_samples_from_.size() < limit &&
        std::find(nat_samples_from_.begin(), nat_samples_from_.end(), from) == nat_samples_from_.end()) {
      nat_samples_from_.push_back(from);
      nat_.add(to);
    }
    return;
  }
  if (NodeEntry* n = table_.get(*id)) {
    // One sample per node, renewed when it is old news.
    if (n->sampled == 0 || tick_ - n->sampled >= kOldNode) {
      n->sampled = tick_;
      nat_.add(to);
    }
    n->pinged = n->seen = tick_;
    return;
  }
  nat_.add(to);
  insert(NodeEntry{.id = *id, .address = from, .sampled = std::max<uint64_t>(tick_, 1)});
}

void Node::on_full_row(const NodeEntry& fresh) {
  // Kademlia keeps old nodes: replace the least recently pinged one only if it
  // does not answer a ping.
  if (!bootstrapped_ || repinging_ >= 3) return;
  const NodeEntry* oldest = nullptr;
  for (const auto& n : table_.row_of(fresh.id)) {
    if (n.pinged == tick_) continue;
    if (!oldest || n.pinged < oldest->pinged || (n.pinged == oldest->pinged && n.added < oldest->added)) oldest = &n;
  }
  if (!oldest) return;
  if (tick_ - oldest->pinged < kRecentNode && tick_ - oldest->added > kOldNode) return;
  Hash32 old_id = oldest->id;
  uint64_t last_seen = oldest->seen;
  table_.get(old_id)->pinged = tick_;
  repinging_++;
  ping(oldest->address, [this, old_id, last_seen, fresh](const Reply* r) {
    repinging_--;
    const NodeEntry* old = table_.get(old_id);
    if (r && old && old->seen > last_seen) return;
    table_.remove(old_id);
    insert(fresh);
  });
}

void Node::check(const Hash32& id) {
  NodeEntry* n = table_.get(id);
  if (!n) return;
  n->pinged = tick_;
  uint64_t last_seen = n->seen;
  checks_++;
  ping(n->address, [this, id, last_seen](const Reply* r) {
    checks_--;
    const NodeEntry* node = table_.get(id);
    if (node && (!r || node->seen <= last_seen)) table_.remove(id);
  });
}

void Node::ping_some() {
  std::vector<NodeEntry> nodes = table_.all();
  if (nodes.empty()) {
    refresh();
    return;
  }
  std::sort(nodes.begin(), nodes.end(), [](const NodeEntry& a, const NodeEntry& b) { return a.pinged < b.pinged; });
  size_t count = inflight_.size() > 2 ? 3 : 5;
  if (tick_ - nodes.front().pinged < kRecentNode) count = 2;
  for (size_t i = 0; i < std::min(count, nodes.size()); i++) {
    if (nodes[i].pinged != tick_) check(nodes[i].id);
  }
}

void Node::refresh() {
  refresh_ticks_ = kRefreshTicks;
  Hash32 target = table_.id();
  if (table_.size() > 0) {
    size_t pick = 0;
    random_fill(reinterpret_cast<uint8_t*>(&pick), sizeof pick);
    target = table_.nth(pick % table_.size())->id;
  }
  query(QuerySpec{.internal = true, .command = kFindNode, .target = target});
}

void Node::tick() {
  tick_timer_ = clock_.start_timer(kTickMs, [this] { tick(); });
  tick_++;
  down_hints_sent_ = 0;
  if (!bootstrapped_) return;
  if (config_.adaptive && !persistent_) {
    if (firewalled_) {
      if (tick_ % kFirewallRecheckTicks == 0) check_firewall();
    } else if (stable_ticks_left_ == 0 || --stable_ticks_left_ == 0) {
      auto nat = nat_.address();
      if (nat && nat->port == socket_.local_address().port) become_persistent(*nat);
    }
  }
  if ((tick_ & 7) == 0) ping_some();
  if (((tick_ & 63) == 0 && table_.size() < table_.k()) || --refresh_ticks_ <= 0) refresh();
}

std::vector<Address> Node::known_addresses(size_t limit) const {
  std::vector<NodeEntry> nodes = table_.all();
  std::sort(nodes.begin(), nodes.end(), [](const NodeEntry& a, const NodeEntry& b) { return a.seen > b.seen; });
  std::vector<Address> out;
  for (size_t i = 0; i < nodes.size() && out.size() < limit; i++) out.push_back(nodes[i].address);
  return out;
}

// --- reachability (adaptive mode) ---

Firewall Node::firewall() const {
  if (!firewalled_) return Firewall::open;
  auto nat = nat_.address();
  if (!nat) return Firewall::unknown;
  return nat->port == 0 ? Firewall::random : Firewall::consistent;
}

void Node::check_firewall() {
  if (checking_firewall_ || !client_socket_ || !firewalled_ || closed_) return;
  auto nat = nat_.address();
  if (!nat || nat->port == 0) return;  // a consistent address first
  std::vector<Address> nodes = known_addresses(5);
  for (const auto& b : config_.bootstrap) {
    if (nodes.size() < 5 && std::find(nodes.begin(), nodes.end(), b) == nodes.end()) nodes.push_back(b);
  }
  if (nodes.empty()) return;
  struct Probe {
    size_t pending = 0, answers = 0;
    NatSampler seen;
  };
  auto probe = std::make_shared<Probe>();
  probe->pending = nodes.size();
  size_t required = nodes.size() >= 5 ? 3 : 1;
  uint16_t port = socket_.local_address().port;
  Bytes value{static_cast<uint8_t>(port), static_cast<uint8_t>(port >> 8)};
  checking_firewall_ = true;
  for (const auto& n : nodes) {
    // Asked from the client socket, answered to the main one: only an
    // unsolicited packet can arrive there, which a firewall would stop.
    request(n, OutboundRequest{.internal = true, .command = kPingNat, .value = value},
            [this, probe, required, port, host = nat->ip](const Reply* r) {
              if (r && r->on_main_socket) {
                probe->answers++;
                probe->seen.add(r->to);
              }
              if (--probe->pending > 0) return;
              checking_firewall_ = false;
              auto seen = probe->seen.address();
              if (probe->answers < required || !seen || seen->ip != host || seen->port != port) return;
              firewalled_ = false;
              nat_ = probe->seen;  // from now on the main socket's address is the one that counts
            });
  }
}

void Node::become_persistent(const Address& address) {
  Hash32 id = node_id(address);
  if (id != table_.id()) {
    // Our id follows our address: the same nodes, rows counted from the new id.
    std::vector<NodeEntry> nodes = table_.all();
    table_ = RoutingTable(id, config_.k);
    for (const auto& n : nodes)
      if (n.id != id) table_.add(n);
  }
  persistent_ = true;
  config_.public_address = address;
  refresh();
}

// --- queries ---

void Node::bootstrap(std::function<void()> done) {
  if (bootstrapped_) {
    if (done) done();
    return;
  }
  bool first = on_bootstrapped_.empty();
  if (done) on_bootstrapped_.push_back(std::move(done));
  if (!first) return;
  query(QuerySpec{.internal = true,
                  .command = kFindNode,
                  .target = table_.id(),
                  .on_done = [this](const QueryResult&) {
                    bootstrapped_ = true;
                    if (config_.adaptive) check_firewall();
                    auto callbacks = std::move(on_bootstrapped_);
                    on_bootstrapped_.clear();
                    for (auto& cb : callbacks) cb();
                  }});
}

std::shared_ptr<Query> Node::query(QuerySpec spec) {
  refresh_ticks_ = kRefreshTicks;
  auto q = std::make_shared<Query>(*this, std::move(spec));
  queries_.insert(q);
  q->start();
  return q;
}

void Node::query_finished(Query* q) {
  for (auto it = queries_.begin(); it != queries_.end(); ++it) {
    if (it->get() == q) {
      queries_.erase(it);
      return;
    }
  }
}

void Node::send_down_hint(const Address& to, const Address& down) {
  if (down_hints_sent_ >= config_.down_hints_per_tick) return;
  down_hints_sent_++;
  enc::Encoder e;
  e.ipv4_address(down.ip, down.port);
  request(to, OutboundRequest{.internal = true, .command = kDownHint, .value = e.take()}, nullptr);
}

}  // namespace p2p::dht
