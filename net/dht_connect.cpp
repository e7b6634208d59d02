#include "net/dht_connect.h"

#include <sodium.h>

#include <algorithm>

namespace p2p::dht {
namespace {

// Bytes that arrive as soon as a stream connects (the peer's secret-stream
// header often beats the handshake reply) are kept until the owner reads.
std::shared_ptr<Bytes> hold_early_data(udx::Stream& stream) {
  auto held = std::make_shared<Bytes>();
  stream.on_data = [held](ByteView b) { held->insert(held->end(), b.begin(), b.end()); };
  return held;
}

constexpr size_t kServerRelays = 3;                     // hyperdht announces to the 3 closest
constexpr uint64_t kReannounceMs = 5 * 60 * 1000;       // records live 20 minutes
constexpr uint64_t kHandshakeMemoryMs = 10'000;         // hyperdht's handshakeClearWait
constexpr size_t kMaxRemembered = 256;                  // handshakes answered, for duplicates via other relays
constexpr size_t kMaxParallelHandshakes = 3;
constexpr uint64_t kPassiveWaitMs = 10'000;             // an open client waits this long for the server
constexpr uint64_t kUnknownFirewallPauseMs = 1000;      // a server still analysing its NAT gets this long
constexpr int kHolepunchRetries = 3;                    // PEER_HOLEPUNCH resends, 1 s apart
constexpr int kLanPingRetries = 1;
constexpr size_t kMaxWaitingReplies = 4;                // holepunch answers held for one NAT analysis
constexpr size_t kMaxPunchPeers = 4;

ByteView prologue() { return namespaces().peer_handshake; }

bool is_private(const Address& a) {
  return a.ip[0] == 127 || a.ip[0] == 10 || (a.ip[0] == 192 && a.ip[1] == 168) ||
         (a.ip[0] == 172 && (a.ip[1] & 0xf0) == 16) || (a.ip[0] == 169 && a.ip[1] == 254) || a.ip[0] == 0 ||
         (a.ip[0] == 100 && a.ip[1] >= 64 && a.ip[1] <= 127);
}

// bogon's isReserved for IPv4: never an address of a peer.
bool is_reserved(const Address& a) {
  const auto& ip = a.ip;
  return ip[0] == 0 || (ip[0] == 192 && ip[1] == 0 && (ip[2] == 0 || ip[2] == 2)) ||
         (ip[0] == 198 && (ip[1] == 18 || ip[1] == 19)) || (ip[0] == 198 && ip[1] == 51 && ip[2] == 100) ||
         (ip[0] == 203 && ip[1] == 0 && ip[2] == 113) || ip[0] >= 224;
}

// hyperdht's matchAddress: the peer's address sharing the longest prefix
// (whole dotted-quad segments) with one of ours; at least the first segment.
std::optional<Address> match_address(const std::vector<Address>& mine, const std::vector<Address>& theirs) {
  std::optional<Address> best;
  int best_segments = 1;
  for (const auto& a : mine) {
    for (const auto& b : theirs) {
      int same = 0;
      while (same < 3 && a.ip[same] == b.ip[same]) same++;
      if (same == 3) return b;
      if (same + 1 > best_segments) {
        best_segments = same + 1;
        best = b;
      }
    }
  }
  return best;
}

bool consistent_or_open(Firewall f) { return f == Firewall::consistent || f == Firewall::open; }

constexpr uint64_t kWireUnknown = static_cast<uint64_t>(Firewall::unknown);
constexpr uint64_t kWireRandom = static_cast<uint64_t>(Firewall::random);

// hyperdht's isRandom: a punch where either NAT is random (or unknown to us).
bool random_punch(Firewall ours, uint64_t theirs) {
  return static_cast<uint64_t>(ours) >= kWireRandom || theirs >= kWireRandom;
}

// The holepunch messages' secretbox (hyperdht secure-payload.js): nonce(24)
// || XSalsa20-Poly1305 of a holepunchPayload, under H(NS_PEER_HOLEPUNCH ; key
// = the IK handshake hash). Tokens H(ip ; key = a secret of ours) prove that a
// peer receives at the address a relay saw it at, once it echoes them.
class HolepunchBox {
 public:
  explicit HolepunchBox(const std::array<uint8_t, 64>& handshake_hash)
      : secret_(crypto::hash({namespaces().peer_holepunch}, handshake_hash)), local_(crypto::random_key()) {}

  Bytes seal(const HolepunchPayload& p) const {
    Bytes plain = encode_holepunch_payload(p);
    Bytes out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size());
    randombytes_buf(out.data(), crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out.data() + crypto_secretbox_NONCEBYTES, plain.data(), plain.size(), out.data(),
                          secret_.data());
    return out;
  }
  // nullopt unless it was sealed under this handshake's secret.
  std::optional<HolepunchPayload> open(ByteView box) const {
    constexpr size_t overhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
    if (box.size() <= overhead) return std::nullopt;
    Bytes plain(box.size() - overhead);
    if (crypto_secretbox_open_easy(plain.data(), box.data() + crypto_secretbox_NONCEBYTES,
                                   box.size() - crypto_secretbox_NONCEBYTES, box.data(), secret_.data()) != 0) {
      return std::nullopt;
    }
    return decode_holepunch_payload(plain);
  }
  Hash32 token(const Address& a) const { return crypto::hash({as_bytes(a.host())}, local_); }

 private:
  Hash32 secret_;
  Key32 local_;
};

}  // namespace

const char* to_string(How how) {
  switch (how) {
    case How::direct:
      return "direct";
    case How::relayed:
      return "relayed";
    case How::holepunched:
      return "holepunched";
    case How::blind_relay:
      return "blind-relay";
  }
  return "direct";
}

// A key we accept connections for.
struct Connector::Server {
  crypto::KeyPair key_pair;
  OnConnection on_connection;
  Admit admit;
  std::vector<Address> relays;
  std::vector<Address> holders;  // every node that took our record (relays: the first few)
  std::vector<Address> seen_as;  // us as each holder saw us
  // Answers already given, by the client's first handshake message: the same
  // message through a second relay gets the same answer and no second stream.
  struct Answered {
    Bytes reply_noise;
    uint64_t at;
  };
  std::map<Bytes, Answered> answered;
  // hyperdht's holepunch slots: the handshake whose index a client names in
  // PEER_HOLEPUNCH. Empty slots are reused.
  std::vector<std::shared_ptr<Handshake>> handshakes;
};

// One answered handshake on the server, until its stream is connected or it
// is given up, then kept kHandshakeClearMs for late holepunch messages.
struct Connector::Handshake {
  Clock& clock;
  Server& server;
  size_t id;
  HolepunchBox box;
  std::unique_ptr<udx::Stream> stream;  // until handed over
  std::shared_ptr<Bytes> early;
  net::HandshakeResult result;
  uint32_t remote_id = 0;
  Address client{};  // as the relay (or we) saw it
  bool direct = false;
  std::unique_ptr<Holepuncher> puncher;
  uint64_t round = 0;
  bool done = false;                 // connected or given up
  std::vector<Address> punch_peers;  // where relays saw the client's holepunch messages come from
  size_t waiting = 0;                // holepunch answers held for the NAT analysis
  Clock::TimerId wait_timer = 0, clear_timer = 0;
  // A blind relay (ours, named in our answer, or the client's).
  std::optional<RelayThroughInfo> relay_through;
  std::shared_ptr<void> relay;  // pairing under way while set and not done
  bool abort_after_relay = false;  // punching gave up: the relay is the last hope
  Clock::TimerId relay_timer = 0;

  Handshake(Clock& c, Server& s, size_t i, const net::HandshakeResult& r)
      : clock(c), server(s), id(i), box(r.hash), result(r) {}
  ~Handshake() {
    clock.cancel_timer(wait_timer);
    clock.cancel_timer(clear_timer);
    clock.cancel_timer(relay_timer);
  }
  // The stream came from where the client's holepunch messages and punch
  // addresses say it is: the path was punched.
  bool punched_from(const Address& from) const {
    if (punch_peers.empty()) return false;
    return (puncher && puncher->punched(from)) ||
           std::find(punch_peers.begin(), punch_peers.end(), from) != punch_peers.end();
  }
};

// What a relay answered to one of our PEER_HOLEPUNCH messages.
struct Connector::PunchReply {
  Address from, to;                // the relay; us as it saw us
  HolepunchPayload payload;
  Address peer_address;            // the server as the relay saw it
};

// One outgoing connection attempt.
struct Connector::Dial {
  crypto::KeyPair key_pair;
  Key32 remote;
  Hash32 target;
  std::unique_ptr<net::NoiseIK> noise;
  Bytes first_message;
  std::unique_ptr<udx::Stream> stream;
  std::optional<Address> first_sender;  // the server's first UDX packet came from here
  std::function<void(Result<Established>)> done;
  std::vector<Address> tried;
  size_t in_flight = 0;
  bool query_done = false, finished = false;
  Clock::TimerId timer = 0, wait_timer = 0;
  // Once the server answered:
  bool answered = false;
  NoisePayload payload;
  net::HandshakeResult result;
  std::shared_ptr<Bytes> early;
  bool relayed = false;
  Address relay{}, server_address{}, client_address{};  // the relay that answered; the server / us as it saw us
  std::optional<HolepunchBox> box;
  std::unique_ptr<Holepuncher> puncher;
  RelayInfo server_relay{};  // the relay the server asked holepunch messages to go through
  uint64_t round = 0;
  bool random_reserved = false;  // counted as a random punch while asking the server to punch
  // A blind relay: ours (named in our handshake), then the pairing under way.
  std::optional<RelayThroughInfo> relay_through;
  bool use_relay = true;
  std::shared_ptr<void> blind_relay;
  bool relay_pending = false;
  std::string punch_error;  // why punching failed while the relay may still pair us
  Clock::TimerId relay_timer = 0;
};

// Pinging a few nodes from the main socket for a puncher's NAT analysis.
struct Connector::Sampling {
  std::weak_ptr<NatAnalysis> nat;
  std::vector<Address> nodes;
  size_t next = 0, pending = 0;
  bool retried = false;
};

Connector::Connector(HyperDht& dht, udx::Mux& mux, UdpDemux& demux)
    : dht_(dht), mux_(mux), demux_(demux), requests_(dht.node().clock(), demux) {
  dht_.set_peer_handler([this](const InboundRequest& in) { return on_peer_request(in); });
  demux_.set_probe_handler([this](const Address& from) { probes_.on_probe(from); });
  punching_.main_streams = &mux_;
}

void Connector::set_socket_opener(std::function<std::unique_ptr<DatagramSocket>()> open, uint64_t seed) {
  punching_.open_socket = std::move(open);
  punching_.seed = seed;
}

void Connector::set_relay(RelayPairer* pairer, std::optional<Key32> relay_through) {
  pairer_ = pairer;
  relay_through_ = relay_through;
}

// Hyperswarm's default: our relay when our NAT is random (no punch between
// two random NATs works) or when asked; a fresh token each time.
std::optional<RelayThroughInfo> Connector::our_relay_through(bool force) const {
  if (!pairer_ || !relay_through_) return std::nullopt;
  if (!force && dht_.node().firewall() != Firewall::random) return std::nullopt;
  RelayThroughInfo r{.public_key = *relay_through_};
  crypto::random_bytes(r.token.data(), r.token.size());
  return r;
}

Connector::~Connector() {
  *punching_.alive = false;
  dht_.set_peer_handler(nullptr);
  demux_.set_probe_handler(nullptr);
  dht_.node().clock().cancel_timer(reannounce_timer_);
  servers_.clear();
  // Dials still referenced by pending callbacks stop here: no timer or
  // puncher of theirs may outlive us.
  for (auto& weak : dials_) {
    if (auto d = weak.lock()) {
      d->finished = true;
      release_random(*d);
      d->blind_relay.reset();
      dht_.node().clock().cancel_timer(d->relay_timer);
      dht_.node().clock().cancel_timer(d->timer);
      dht_.node().clock().cancel_timer(d->wait_timer);
      d->puncher.reset();
      if (d->stream && !d->stream->closed()) d->stream->attach(mux_);  // off a punching socket that goes
    }
  }
}

std::vector<Address> Connector::local_addresses() const {
  Address self = dht_.node().socket().local_address();
  if (self.ip == std::array<uint8_t, 4>{0, 0, 0, 0}) self.ip = {127, 0, 0, 1};
  return {self};
}

NoisePayload Connector::our_payload(uint32_t stream_id) const {
  Node& node = dht_.node();
  NoisePayload p;
  p.firewall = to_wire(node.firewall() == Firewall::open ? Firewall::open : Firewall::unknown);
  // Our public address only once it is the main socket's (while firewalled
  // the samples describe the client socket, which carries no streams).
  if (auto seen = node.observed_address(); seen && seen->port != 0 && node.firewall() == Firewall::open) {
    p.addresses4.push_back(*seen);
  }
  for (const auto& self : local_addresses()) {
    if (std::find(p.addresses4.begin(), p.addresses4.end(), self) == p.addresses4.end()) p.addresses4.push_back(self);
  }
  p.udx = UdxInfo{.id = stream_id};
  p.secret_stream = SecretStreamInfo{};
  return p;
}

// --- the main socket's NAT ---

// Our punching socket is the main socket (our one-socket design: streams,
// DHT and probes share it), so its NAT is sampled through it: a few nodes
// pinged from it, as hyperdht's nat.js samples a pooled puncher socket.
std::unique_ptr<Holepuncher> Connector::make_puncher(bool initiator, uint64_t remote_firewall) {
  bool open = dht_.node().firewall() == Firewall::open;
  auto p = std::make_unique<Holepuncher>(dht_.node().clock(), demux_.outbound(), probes_, initiator, remote_firewall,
                                         open, &punching_);
  if (open) return p;
  auto s = std::make_shared<Sampling>();
  s->nat = p->nat_handle();
  s->nodes = dht_.node().known_addresses(64);  // most recently heard first
  // nat.js skips the 5 newest of 8 or more (newcomers are the likeliest liars).
  if (s->nodes.size() >= 8) s->nodes.erase(s->nodes.begin(), s->nodes.begin() + 5);
  // The bootstrap nodes after them: the table can be short of nodes (a small
  // network, or nodes just dropped for not answering), and fewer than 3
  // samples leave the NAT unknown, which no punch survives.
  for (const auto& b : dht_.node().config().bootstrap) {
    if (std::find(s->nodes.begin(), s->nodes.end(), b) == s->nodes.end()) s->nodes.push_back(b);
  }
  sample_pass(s);
  return p;
}

void Connector::sample_pass(const std::shared_ptr<Sampling>& s) {
  auto nat = s->nat.lock();
  if (!nat) return;
  while (s->next < s->nodes.size() && nat->sampled() + s->pending < NatAnalysis::kMinSamples) {
    Address to = s->nodes[s->next++];
    bool sent = requests_.ping(to, [this, s](const Reply* r) {
      s->pending--;
      auto n = s->nat.lock();
      if (!n) return;
      if (r) n->add(r->to, r->from);
      if (s->pending == 0) sampling_over(s, *n);
    });
    if (!sent) break;
    s->pending++;
  }
  if (s->pending == 0) sampling_over(s, *nat);
}

void Connector::sampling_over(const std::shared_ptr<Sampling>& s, NatAnalysis& nat) {
  // One more pass over nodes not asked yet when too few answered, then done.
  if (nat.sampled() < NatAnalysis::kMinSamples && !s->retried && !nat.analyzed()) {
    s->retried = true;
    return sample_pass(s);
  }
  nat.settle();
}

// --- server ---

void Connector::listen(const crypto::KeyPair& key_pair, OnConnection on_connection,
                       std::function<void(const std::vector<Address>&)> done, Admit admit) {
  Hash32 target = crypto::hash({key_pair.public_key});
  auto server = std::make_unique<Server>();
  server->key_pair = key_pair;
  server->on_connection = std::move(on_connection);
  server->admit = std::move(admit);
  servers_[target] = std::move(server);
  announce_server(target);
  if (done) report_relays(target, std::move(done));
  if (reannounce_timer_ == 0) schedule_reannounce();
}

void Connector::report_relays(const Hash32& target, std::function<void(const std::vector<Address>&)> done) {
  // Once the first announce settled (its relays are known), or the server is gone.
  auto it = servers_.find(target);
  if (it == servers_.end() || !it->second->relays.empty()) {
    done(it == servers_.end() ? std::vector<Address>{} : it->second->relays);
    return;
  }
  dht_.node().clock().start_timer(20, [this, target, done = std::move(done)]() mutable {
    report_relays(target, std::move(done));
  });
}

void Connector::schedule_reannounce() {
  reannounce_timer_ = dht_.node().clock().start_timer(kReannounceMs, [this] {
    for (const auto& [t, s] : servers_) announce_server(t);
    schedule_reannounce();
  });
}

void Connector::announce_server(const Hash32& target) {
  auto it = servers_.find(target);
  if (it == servers_.end()) return;
  // The record names the nodes that hold it as relays (hyperdht lists the 3
  // closest); our own address goes first when we are reachable, so clients
  // can come straight to us.
  std::vector<Address> relays;
  if (dht_.node().firewall() == Firewall::open) {
    if (auto seen = dht_.node().observed_address(); seen && seen->port) relays.push_back(*seen);
  }
  dht_.announce(target, it->second->key_pair, relays, [this, target](const PutResult& r) {
    auto s = servers_.find(target);
    if (s == servers_.end()) return;
    std::vector<Address> relays = r.accepted;
    s->second->holders = relays;
    s->second->seen_as = r.seen_as;
    if (relays.size() > kServerRelays) relays.resize(kServerRelays);
    s->second->relays = std::move(relays);
  });
}

void Connector::unlisten(const Key32& public_key) { servers_.erase(crypto::hash({public_key})); }

std::vector<Address> Connector::relays(const Key32& public_key) const {
  auto it = servers_.find(crypto::hash({public_key}));
  return it == servers_.end() ? std::vector<Address>{} : it->second->relays;
}

std::optional<Answer> Connector::on_peer_request(const InboundRequest& in) {
  const Request& req = in.message;
  if (!req.target || !req.value) return Answer::dropped();
  auto server = servers_.find(*req.target);
  if (req.command == kPeerHandshake) {
    auto m = decode_handshake_message(*req.value);
    if (!m) return Answer::dropped();
    // A handshake sent straight to us is answered as the server only on the
    // main socket: the client's stream goes where the answer came from, and
    // our streams live on the main socket. At the client socket (which an
    // adaptive node asks from until it knows it is reachable, so where others
    // have seen it) the client gets closer nodes, and then comes through the
    // nodes that hold our record.
    bool as_server = server != servers_.end() && (in.on_main_socket || m->mode != kModeFromClient);
    if (as_server) return on_handshake_as_server(*server->second, in, *m);
    return on_handshake_as_relay(in, *m);
  }
  if (req.command == kPeerHolepunch) {
    auto m = decode_holepunch_message(*req.value);
    if (!m) return Answer::dropped();
    if (m->mode == kModeFromRelay) {
      if (server != servers_.end()) on_holepunch_as_server(*server->second, in, *m);
    } else {
      on_holepunch_as_relay(in, *m);
    }
  }
  return Answer::dropped();  // every answer goes out as a relayed message
}

std::optional<Answer> Connector::on_handshake_as_relay(const InboundRequest& in, const HandshakeMessage& m) {
  const Request& req = in.message;
  if (m.mode == kModeFromClient) {
    auto fwd = dht_.forward(*req.target);
    if (!fwd) return Answer{.token = false};  // not ours to relay: closer nodes only
    HandshakeMessage relayed{.mode = kModeFromRelay, .noise = m.noise, .peer_address = in.from};
    dht_.node().relay_request(fwd->server, req, encode_handshake_message(relayed));
    return Answer::dropped();
  }
  if (m.mode == kModeFromServer && m.peer_address) {
    // The server's answer: back to the client, naming where we saw the server.
    HandshakeMessage reply{.mode = kModeReply, .noise = m.noise, .peer_address = in.from};
    dht_.node().reply_to(*m.peer_address, req,
                         Answer{.value = encode_handshake_message(reply), .token = false, .closer_nodes = false});
    return Answer::dropped();
  }
  return Answer::dropped();
}

// PEER_HOLEPUNCH through us (router.js): a client's message to the server at
// the address it names (else where the server announced from), the server's
// answer back to the client. Unlike the reference, only for a server whose
// record we hold, and only to and from that server's host: a relay that
// relayed anything anywhere would send datagrams to any address it is told.
// (A server's holepunch relays are the nodes holding its record, and the
// address it names is on its own host, so real messages all pass.)
void Connector::on_holepunch_as_relay(const InboundRequest& in, const HolepunchMessage& m) {
  const Request& req = in.message;
  auto fwd = dht_.forward(*req.target);
  if (!fwd) return;
  if (m.mode == kModeFromClient) {
    Address to = m.peer_address && m.peer_address->ip == fwd->server.ip ? *m.peer_address : fwd->server;
    HolepunchMessage relayed{.mode = kModeFromRelay, .id = m.id, .payload = m.payload, .peer_address = in.from};
    dht_.node().relay_request(to, req, encode_holepunch_message(relayed));
  } else if (m.mode == kModeFromServer && m.peer_address && in.from.ip == fwd->server.ip) {
    HolepunchMessage reply{.mode = kModeReply, .id = m.id, .payload = m.payload, .peer_address = in.from};
    dht_.node().reply_to(*m.peer_address, req,
                         Answer{.value = encode_holepunch_message(reply), .token = false, .closer_nodes = false});
  }
}

// The first free holepunch slot (hyperdht reuses the lowest), or none when
// kMaxHandshakes are under way.
std::optional<size_t> Connector::free_handshake_slot(const Server& server) const {
  const auto& slots = server.handshakes;
  auto free = std::find(slots.begin(), slots.end(), nullptr);
  if (free != slots.end()) return static_cast<size_t>(free - slots.begin());
  if (slots.size() >= kMaxHandshakes) return std::nullopt;
  return slots.size();
}

// The relays that hold our record, each with our address as it saw us (our
// announce's source: through a random NAT, a port of its own for each).
std::vector<RelayInfo> Connector::holepunch_relays(const Server& server) const {
  std::vector<RelayInfo> out;
  for (size_t i = 0; i < server.relays.size() && i < server.seen_as.size(); i++) {
    if (server.seen_as[i].port != 0) out.push_back(RelayInfo{server.relays[i], server.seen_as[i]});
  }
  return out;
}

std::optional<Answer> Connector::on_handshake_as_server(Server& server, const InboundRequest& in, const HandshakeMessage& m) {
  const Request& req = in.message;
  bool direct = m.mode == kModeFromClient;
  if (!direct && m.mode != kModeFromRelay) return Answer::dropped();
  if (!direct && !m.peer_address) return Answer::dropped();
  Address client = direct ? in.from : *m.peer_address;
  uint64_t now = dht_.node().clock().now_ms();
  std::erase_if(server.answered, [&](const auto& kv) { return now - kv.second.at > kHandshakeMemoryMs; });

  auto answer = [&](const Bytes& noise) -> std::optional<Answer> {
    if (direct) {
      HandshakeMessage reply{.mode = kModeReply, .noise = noise};
      return Answer{.value = encode_handshake_message(reply), .token = false, .closer_nodes = false};
    }
    // From the main socket: the relay then tells the client where that is
    // (hyperdht answers from its puncher socket for the same reason).
    HandshakeMessage back{.mode = kModeFromServer, .noise = noise, .peer_address = client};
    dht_.node().relay_request(in.from, req, encode_handshake_message(back));
    return Answer::dropped();
  };
  if (auto it = server.answered.find(m.noise); it != server.answered.end()) return answer(it->second.reply_noise);
  if (server.answered.size() >= kMaxRemembered) return Answer::dropped();

  net::NoiseIK noise(false, server.key_pair, std::nullopt, prologue());
  auto payload_bytes = noise.read(m.noise);
  if (!payload_bytes.ok()) return Answer::dropped();  // not for us, or forged
  auto payload = decode_noise_payload(*payload_bytes);
  if (!payload) return Answer::dropped();

  auto stream = mux_.create_stream();
  NoisePayload ours = our_payload(stream->id());
  bool refused = server.admit && !server.admit(noise.remote_public_key());
  bool usable = payload->version == kConnectVersion && payload->udx && !refused;
  if (payload->version != kConnectVersion) ours.error = kConnectErrorVersionMismatch;
  else if (!payload->udx || refused) ours.error = kConnectErrorAborted;
  std::optional<size_t> id;
  if (usable) {
    id = free_handshake_slot(server);
    if (!id) return Answer::dropped();  // too many under way
    // Unreachable ourselves: the client may have to punch, through our relays.
    if (dht_.node().firewall() != Firewall::open) ours.holepunch = HolepunchInfo{*id, holepunch_relays(server)};
    ours.relay_through = our_relay_through(false);
  }
  auto reply = noise.write(encode_noise_payload(ours));
  if (!reply.ok()) return Answer::dropped();
  server.answered[m.noise] = Server::Answered{*reply, now};
  auto result = answer(*reply);
  if (!usable) return result;

  // The slot's box needs the handshake hash, known only now.
  auto slot = std::make_shared<Handshake>(dht_.node().clock(), server, *id, noise.result());
  if (*id == server.handshakes.size()) server.handshakes.push_back(nullptr);
  server.handshakes[*id] = slot;
  slot->stream = std::move(stream);
  slot->remote_id = static_cast<uint32_t>(payload->udx->id);
  slot->client = client;
  slot->direct = direct;
  slot->relay_through = ours.relay_through;
  start_server_path(slot, *payload, req.to);
  return result;
}

// hyperdht server.js after the reply: a client that asked us directly, or
// says it is open, is dialled at once. Otherwise we wait for its first
// packet: it is on our LAN (the relay saw it on our public IP, and it named a
// private address close to ours), or we are open; else we holepunch with it.
// Either way at most kHandshakeWaitMs unless punching starts.
void Connector::start_server_path(const std::shared_ptr<Handshake>& hs, const NoisePayload& client,
                                  const Address& seen_as) {
  udx::Stream* raw = hs->stream.get();
  hs->early = hold_early_data(*raw);
  if (hs->direct || client.firewall == to_wire(Firewall::open)) {
    raw->connect(hs->client, hs->remote_id);
    return emit(*hs, hs->client, hs->direct ? How::direct : How::relayed);
  }
  std::weak_ptr<Handshake> weak = hs;
  raw->on_firewall = [this, weak](const Address& from) {
    auto h = weak.lock();
    return h && on_first_packet(*h, from);
  };
  if (pairer_ && (client.relay_through || hs->relay_through)) start_server_relay(hs, client);
  bool lan = false;
  if (hs->client.ip == seen_as.ip) {
    std::vector<Address> theirs;
    for (const auto& a : client.addresses4)
      if (is_private(a)) theirs.push_back(a);
    lan = match_address(local_addresses(), theirs).has_value();
  }
  bool open = dht_.node().firewall() == Firewall::open;
  // A puncher answers the client's holepunch messages (a LAN client may fall
  // back to punching too).
  if (lan || !open) {
    hs->puncher = make_puncher(false, client.firewall);
    Handshake* h = hs.get();
    hs->puncher->on_abort = [this, h] { abort_handshake(*h); };
  }
  Handshake* h = hs.get();
  hs->wait_timer = dht_.node().clock().start_timer(kHandshakeWaitMs, [this, h] {
    h->wait_timer = 0;
    abort_handshake(*h);
  });
}

bool Connector::on_first_packet(Handshake& hs, const Address& from) {
  if (from.port == 0 || hs.done || !hs.stream) return false;
  How how = hs.punched_from(from) ? How::holepunched : How::relayed;
  // It came to one of our punching sockets (a random NAT of ours): the
  // stream keeps that socket.
  if (&hs.stream->mux() != &mux_) {
    auto socket = hs.puncher ? hs.puncher->take_socket(hs.stream->mux()) : nullptr;
    if (!socket) return false;
    hs.stream->hold(std::move(socket));
  }
  hs.stream->connect(from, hs.remote_id);
  emit(hs, from, how);
  return true;
}

// hyperdht server.js _relayConnection: pair through the relay the client
// named (or ours, when we named one), while punching goes on; the first
// path wins. Bounded by kRelayPairTimeoutMs.
void Connector::start_server_relay(const std::shared_ptr<Handshake>& hs, const NoisePayload& client) {
  bool initiator = hs->relay_through.has_value();
  const RelayThroughInfo& r = initiator ? *hs->relay_through : *client.relay_through;
  std::weak_ptr<Handshake> weak = hs;
  auto over = [this](Handshake& h) {
    dht_.node().clock().cancel_timer(h.relay_timer);
    h.relay_timer = 0;
    h.relay.reset();
    if (h.abort_after_relay) abort_handshake(h);
  };
  hs->relay_timer = dht_.node().clock().start_timer(kRelayPairTimeoutMs, [weak, over] {
    if (auto h = weak.lock()) {
      h->relay_timer = 0;
      over(*h);
    }
  });
  auto paired = [this, weak, over](Result<RelayPath> path) {
    auto h = weak.lock();
    if (!h || !h->relay) return;
    if (!path.ok() || h->done || !h->stream) return over(*h);
    dht_.node().clock().cancel_timer(h->relay_timer);
    h->relay_timer = 0;
    h->stream->hold(h->relay);
    h->stream->connect(path->relay, path->remote_id);
    emit(*h, path->relay, How::blind_relay);
  };
  hs->relay = pairer_->pair(hs->server.key_pair, r.public_key, r.token, initiator, hs->stream->id(), paired);
}

// The connection is there: hand it over (the last thing done: the owner may
// unlisten, which ends `hs`).
void Connector::emit(Handshake& hs, const Address& remote, How how) {
  hs.done = true;
  dht_.node().clock().cancel_timer(hs.wait_timer);
  hs.wait_timer = 0;
  dht_.node().clock().cancel_timer(hs.relay_timer);
  hs.relay_timer = 0;
  hs.relay.reset();  // held by the stream when it goes through the relay
  hs.puncher.reset();
  forget_later(hs);
  hs.stream->on_firewall = nullptr;
  Established e{.stream = std::move(hs.stream),
                .handshake = hs.result,
                .initiator = false,
                .remote = remote,
                .how = how,
                .relayed = how != How::direct,
                .early_data = hs.early};
  auto on_connection = hs.server.on_connection;
  on_connection(std::move(e));
}

void Connector::abort_handshake(Handshake& hs) {
  if (hs.done) return;
  if (hs.relay) {  // punching is over, the relay may still pair us
    hs.abort_after_relay = true;
    dht_.node().clock().cancel_timer(hs.wait_timer);
    hs.wait_timer = 0;
    hs.puncher.reset();
    return;
  }
  hs.done = true;
  dht_.node().clock().cancel_timer(hs.wait_timer);
  hs.wait_timer = 0;
  hs.puncher.reset();
  hs.stream.reset();  // never connected: nothing goes out
  forget_later(hs);
}

void Connector::forget_later(Handshake& hs) {
  if (hs.clear_timer) return;
  Server* server = &hs.server;
  size_t id = hs.id;
  hs.clear_timer = dht_.node().clock().start_timer(kHandshakeClearMs, [server, id] {
    auto& slots = server->handshakes;
    if (id < slots.size()) slots[id].reset();
    while (!slots.empty() && !slots.back()) slots.pop_back();
  });
}

// hyperdht server.js _onpeerholepunch: the client's message through a relay.
// Its box must open under this handshake's secret; the answer waits for our
// NAT analysis (at most kMaxWaitingReplies held, as the client resends).
void Connector::on_holepunch_as_server(Server& server, const InboundRequest& in, const HolepunchMessage& m) {
  if (!m.peer_address || m.id >= server.handshakes.size() || !server.handshakes[m.id]) return;
  std::shared_ptr<Handshake> hs = server.handshakes[m.id];
  auto remote = hs->box.open(m.payload);
  if (!remote) return;  // not this handshake's client
  const Request& req = in.message;
  Address relay = in.from, client = *m.peer_address;
  if (!hs->puncher || hs->done) return reply_abort(*hs, req, relay, client);  // not punching (any more)
  if (remote->error != kConnectErrorNone) {
    hs->round = std::max(hs->round, remote->round);
    reply_abort(*hs, req, relay, client);
    return abort_handshake(*hs);
  }
  // hyperdht's isServerRelay: a node we announced to (it holds our record).
  bool from_our_relay = std::find(server.holders.begin(), server.holders.end(), relay) != server.holders.end();
  Hash32 token = hs->box.token(client);
  bool echoed = from_our_relay && remote->remote_token == token;
  if (hs->punch_peers.size() < kMaxPunchPeers &&
      std::find(hs->punch_peers.begin(), hs->punch_peers.end(), client) == hs->punch_peers.end()) {
    hs->punch_peers.push_back(client);
  }
  if (remote->round >= hs->round) {
    hs->round = remote->round;
    std::optional<std::array<uint8_t, 4>> verified;
    if (echoed) verified = client.ip;
    hs->puncher->update_remote(remote->punching, remote->firewall, remote->addresses, verified);
  }
  if (hs->waiting >= kMaxWaitingReplies) return;
  hs->waiting++;
  std::weak_ptr<Handshake> weak = hs;
  // May run at once and end the puncher: the last thing done here.
  hs->puncher->nat().when_analyzed([this, weak, req, relay, client, r = *remote, from_our_relay, token] {
    auto h = weak.lock();
    if (!h) return;
    h->waiting--;
    answer_holepunch(*h, req, relay, client, r, from_our_relay, token);
  });
}

void Connector::answer_holepunch(Handshake& hs, const Request& req, const Address& relay, const Address& client,
                                 const HolepunchPayload& remote, bool from_our_relay, const Hash32& token) {
  if (!hs.puncher || hs.done) return;
  Holepuncher& p = *hs.puncher;
  // Our NAT unknown (or both random) and the client not punching yet: no use.
  if (!p.remote_punching() && !p.stable()) {
    reply_abort(hs, req, relay, client);
    return abort_handshake(hs);
  }
  // Fast mode: the client opened its NAT towards the address we punch from;
  // a probe now may get through before any punching.
  if (consistent_or_open(p.nat().firewall()) && remote.remote_address && p.nat().has_address(*remote.remote_address)) {
    p.ping(client);
  }
  if (p.remote_punching()) {
    dht_.node().clock().cancel_timer(hs.wait_timer);  // the puncher's own tries bound it now
    hs.wait_timer = 0;
    // One random punch at a time, 20 s apart; without a blind relay to wait
    // on, the client hears TRY_LATER and gives up.
    if (random_punch(p.nat().firewall(), p.remote_firewall()) &&
        !punching_.random_allowed(dht_.node().clock().now_ms())) {
      reply_abort(hs, req, relay, client, kConnectErrorTryLater);
      return abort_handshake(hs);
    }
    if (!p.punch()) {  // no strategy for these NATs
      reply_abort(hs, req, relay, client);
      return abort_handshake(hs);
    }
  }
  if (p.nat().firewall() != Firewall::unknown) p.nat().freeze();
  HolepunchPayload out{.error = kConnectErrorNone,
                       .firewall = to_wire(p.nat().firewall()),
                       .round = hs.round,
                       .connected = p.connected(),
                       .punching = p.punching(),
                       .addresses = p.nat().addresses(),
                       .remote_address = std::nullopt,
                       .token = from_our_relay ? std::optional<Hash32>(token) : std::nullopt,
                       .remote_token = remote.token};
  reply_holepunch(req, relay, client, hs.box.seal(out));
}

void Connector::reply_holepunch(const Request& req, const Address& relay, const Address& client, Bytes payload) {
  HolepunchMessage back{.mode = kModeFromServer, .id = 0, .payload = std::move(payload), .peer_address = client};
  dht_.node().relay_request(relay, req, encode_holepunch_message(back));
}

void Connector::reply_abort(Handshake& hs, const Request& req, const Address& relay, const Address& client,
                            uint64_t error) {
  HolepunchPayload out{.error = error, .firewall = kWireUnknown, .round = hs.round};
  reply_holepunch(req, relay, client, hs.box.seal(out));
}

// --- client ---

void Connector::connect(const crypto::KeyPair& key_pair, const Key32& remote, std::vector<Address> relay_hints,
                        std::function<void(Result<Established>)> done, RelayUse relay) {
  auto dial = std::make_shared<Dial>();
  std::erase_if(dials_, [](const std::weak_ptr<Dial>& w) { return w.expired(); });
  dials_.push_back(dial);
  dial->key_pair = key_pair;
  dial->remote = remote;
  dial->target = crypto::hash({remote});
  dial->done = std::move(done);
  dial->stream = mux_.create_stream();
  udx::Stream* raw = dial->stream.get();
  std::weak_ptr<Dial> weak = dial;
  // Before the reply: remember where the server's first packet came from.
  // After: that packet shows the path (hyperdht's firewall hook).
  raw->on_firewall = [this, weak](const Address& from) {
    auto d = weak.lock();
    if (!d || d->finished) return true;
    if (!d->answered) {
      if (!d->first_sender) d->first_sender = from;
      return true;
    }
    How how = d->puncher && d->puncher->punching() ? How::holepunched : d->relayed ? How::relayed : How::direct;
    connect_dial(d, from, how);
    return true;
  };
  dial->noise = std::make_unique<net::NoiseIK>(true, key_pair, remote, prologue());
  dial->use_relay = relay != RelayUse::never;
  if (dial->use_relay) dial->relay_through = our_relay_through(relay == RelayUse::always);
  NoisePayload hello = our_payload(raw->id());
  hello.relay_through = dial->relay_through;
  auto first = dial->noise->write(encode_noise_payload(hello));
  if (!first.ok()) return dial->done(first.status());
  dial->first_message = encode_handshake_message(HandshakeMessage{.mode = kModeFromClient, .noise = *first});

  dial->timer = dht_.node().clock().start_timer(kConnectTimeoutMs, [this, dial] {
    dial->timer = 0;
    std::string seconds = std::to_string(kConnectTimeoutMs / 1000) + " s";
    if (!dial->answered) return fail(dial, "no answer from " + to_hex(dial->remote) + " within " + seconds);
    fail(dial, "no path to " + to_hex(dial->remote) + " within " + seconds + " (holepunching did not finish)", true);
  });
  for (const auto& relay : relay_hints) try_relay(dial, relay);
  QuerySpec spec{.command = kFindPeer, .target = dial->target};
  spec.on_reply = [this, dial](const Reply& r) {
    if (!r.value || dial->finished || dial->answered) return;
    auto peer = decode_peer(*r.value);
    if (peer && peer->public_key == dial->remote) try_relay(dial, r.from);
  };
  spec.on_done = [this, dial](const QueryResult&) {
    dial->query_done = true;
    if (!dial->answered && dial->in_flight == 0 && dial->tried.empty()) {
      fail(dial, "no DHT node knows " + to_hex(dial->remote) + " (is it listening?)");
    }
  };
  dht_.node().query(std::move(spec));
}

void Connector::try_relay(const DialPtr& dial, const Address& relay) {
  if (dial->finished || dial->answered || dial->in_flight >= kMaxParallelHandshakes) return;
  if (std::find(dial->tried.begin(), dial->tried.end(), relay) != dial->tried.end()) return;
  dial->tried.push_back(relay);
  dial->in_flight++;
  OutboundRequest req{.command = kPeerHandshake, .target = dial->target, .value = dial->first_message};
  dht_.node().request(relay, req, [this, dial](const Reply* r) {
    dial->in_flight--;
    if (dial->finished || dial->answered) return;
    std::optional<HandshakeMessage> m;
    if (r && r->value) m = decode_handshake_message(*r->value);
    if (m && m->mode == kModeReply) return on_reply(dial, *r, *m);
    if (dial->in_flight == 0 && dial->query_done) {
      fail(dial, "could not reach " + to_hex(dial->remote) + " through any relay");
    }
  });
}

void Connector::on_reply(const DialPtr& dial, const Reply& reply, const HandshakeMessage& m) {
  auto payload_bytes = dial->noise->read(m.noise);
  if (!payload_bytes.ok()) return;  // not the server's answer: another relay may still bring it
  dial->answered = true;
  auto payload = decode_noise_payload(*payload_bytes);
  if (!payload) return fail(dial, "the server's handshake payload is malformed");
  if (payload->version != kConnectVersion) return fail(dial, "the server speaks another protocol version");
  if (payload->error != kConnectErrorNone) return fail(dial, "the server refused the connection");
  if (!payload->udx) return fail(dial, "the server offered no UDX stream");
  // The server may have reset our stream already (it kept another connection).
  if (dial->stream->closed()) return fail(dial, "the server reset the stream (it kept another connection)");

  dial->payload = std::move(*payload);
  dial->result = dial->noise->result();
  dial->box.emplace(dial->result.hash);
  dial->relayed = m.peer_address.has_value();
  dial->relay = reply.from;
  dial->server_address = m.peer_address.value_or(reply.from);
  dial->client_address = reply.to;
  dial->early = hold_early_data(*dial->stream);
  if (dial->first_sender) return connect_dial(dial, *dial->first_sender, dial->relayed ? How::relayed : How::direct);
  if (!dial->relayed) return connect_dial(dial, reply.from, How::direct);
  if (pairer_ && dial->use_relay && (dial->payload.relay_through || dial->relay_through)) start_dial_relay(dial);
  choose_path(dial);
}

// hyperdht connect.js relayConnection: pair through the server's relay (or
// ours, when the server named none) while the path is found as usual; the
// first one wins. A punch that fails meanwhile waits for the relay.
void Connector::start_dial_relay(const DialPtr& dial) {
  bool initiator = !dial->payload.relay_through;
  const RelayThroughInfo& r = initiator ? *dial->relay_through : *dial->payload.relay_through;
  std::weak_ptr<Dial> weak = dial;
  auto over = [this](const DialPtr& d, const std::string& why) {
    dht_.node().clock().cancel_timer(d->relay_timer);
    d->relay_timer = 0;
    d->relay_pending = false;
    d->blind_relay.reset();
    if (!d->punch_error.empty()) fail(d, d->punch_error + "; the blind relay: " + why, true);
  };
  dial->relay_pending = true;
  dial->relay_timer = dht_.node().clock().start_timer(kRelayPairTimeoutMs, [weak, over] {
    if (auto d = weak.lock()) {
      d->relay_timer = 0;
      over(d, "no pairing within " + std::to_string(kRelayPairTimeoutMs / 1000) + " s");
    }
  });
  auto paired = [this, weak, over](Result<RelayPath> path) {
    auto d = weak.lock();
    if (!d || !d->relay_pending || d->finished) return;
    if (!path.ok()) return over(d, path.status().message());
    dht_.node().clock().cancel_timer(d->relay_timer);
    d->relay_timer = 0;
    d->relay_pending = false;
    connect_dial(d, path->relay, How::blind_relay, nullptr, path->remote_id);
  };
  dial->blind_relay = pairer_->pair(dial->key_pair, r.public_key, r.token, initiator, dial->stream->id(), paired);
}

// hyperdht connect.js holepunch(): a server that is open, or that offers no
// holepunching, gets the stream at its first public address (else where the
// relay saw it). An open client waits for the server to come to it. A server
// on our public IP is tried on its LAN address first. Else both punch.
void Connector::choose_path(const DialPtr& dial) {
  const NoisePayload& p = dial->payload;
  bool holepunchable = p.holepunch && !p.holepunch->relays.empty();
  if (p.firewall == to_wire(Firewall::open) || !holepunchable) {
    for (const auto& a : p.addresses4)
      if (!is_private(a) && !is_reserved(a)) return connect_dial(dial, a, How::relayed);
    return connect_dial(dial, dial->server_address, How::relayed);
  }
  if (dht_.node().firewall() == Firewall::open) {
    dial->wait_timer = dht_.node().clock().start_timer(kPassiveWaitMs, [this, dial] {
      dial->wait_timer = 0;
      fail(dial, "HOLEPUNCH_ABORTED: the server did not reach us within " + std::to_string(kPassiveWaitMs / 1000) + " s");
    });
    return;  // the stream's firewall hook connects when its packet comes
  }
  if (dial->client_address.ip == dial->server_address.ip) {
    std::vector<Address> theirs;
    for (const auto& a : p.addresses4)
      if (!is_reserved(a)) theirs.push_back(a);
    if (!theirs.empty()) return try_lan(dial, match_address(local_addresses(), theirs).value_or(theirs.front()));
  }
  start_holepunch(dial);
}

// The LAN shortcut: a DHT ping from the main socket to the server's private
// address; on an answer the stream goes there. hyperdht races it with
// punching; here punching starts only if it gets no answer, so that two
// peers on one host or LAN never punch (and say so).
void Connector::try_lan(const DialPtr& dial, const Address& lan) {
  std::weak_ptr<Dial> weak = dial;
  bool sent = requests_.ping(
      lan,
      [this, weak, lan](const Reply* r) {
        auto d = weak.lock();
        if (!d || d->finished) return;
        if (r) return connect_dial(d, lan, How::relayed);
        start_holepunch(d);
      },
      kLanPingRetries);
  if (!sent) start_holepunch(dial);
}

void Connector::start_holepunch(const DialPtr& dial) {
  dial->puncher = make_puncher(true, dial->payload.firewall);
  std::weak_ptr<Dial> weak = dial;
  dial->puncher->on_connect = [this, weak](const Address& from, std::shared_ptr<PunchSocket> via) {
    if (auto d = weak.lock()) connect_dial(d, from, How::holepunched, std::move(via));
  };
  dial->puncher->on_abort = [this, weak] {
    if (auto d = weak.lock()) fail(d, "HOLEPUNCH_ABORTED: no probe from the server got through");
  };
  // The server's relay for holepunch messages: the one that relayed the
  // handshake if the server lists it, else its first.
  const auto& relays = dial->payload.holepunch->relays;
  auto same = std::find_if(relays.begin(), relays.end(), [&](const RelayInfo& r) { return r.relay_address == dial->relay; });
  dial->server_relay = same != relays.end() ? *same : relays.front();
  probe_round(dial, true);
}

// Round 0: open our NAT towards the server with a probe that dies on the
// way, then tell the server our NAT (as far as we know it yet) and learn its.
void Connector::probe_round(const DialPtr& dial, bool retry) {
  Holepuncher& p = *dial->puncher;
  p.open_session(dial->server_address);
  HolepunchPayload out{.error = kConnectErrorNone,
                       .firewall = to_wire(p.nat().firewall()),
                       .round = dial->round++,
                       .connected = false,
                       .punching = false,
                       .addresses = p.nat().addresses(),
                       .remote_address = dial->server_address};
  send_holepunch(dial, dial->server_relay.peer_address, dial->server_relay.relay_address, out,
                 [this, retry](const DialPtr& d, const PunchReply& r) {
                   Holepuncher& puncher = *d->puncher;
                   puncher.nat().add(r.to, r.from);  // the relay saw our main socket too
                   std::weak_ptr<Dial> weak = d;
                   auto analysed = [this, weak, retry, r] {
                     auto d2 = weak.lock();
                     if (!d2 || d2->finished || !d2->puncher) return;
                     d2->puncher->nat().when_analyzed([this, weak, retry, r] {
                       if (auto d3 = weak.lock(); d3 && !d3->finished && d3->puncher) after_probe(d3, retry, r);
                     });
                   };
                   // A server still analysing its NAT gets a moment, then one more round.
                   if (puncher.remote_firewall() == kWireUnknown) {
                     d->wait_timer = dht_.node().clock().start_timer(kUnknownFirewallPauseMs, [d, analysed] {
                       d->wait_timer = 0;
                       analysed();
                     });
                   } else {
                     analysed();
                   }
                 });
}

void Connector::after_probe(const DialPtr& dial, bool retry, const PunchReply& reply) {
  Holepuncher& p = *dial->puncher;
  if ((p.remote_firewall() == kWireUnknown || !reply.payload.token) && retry) return probe_round(dial, false);
  if (p.remote_firewall() == kWireUnknown || p.nat().firewall() == Firewall::unknown) {
    return abort_dial(dial, "HOLEPUNCH_PROBE_TIMEOUT: " + std::string(p.nat().firewall() == Firewall::unknown
                                                                         ? "our NAT could not be analysed"
                                                                         : "the server's NAT could not be analysed"));
  }
  bool we_random = static_cast<uint64_t>(p.nat().firewall()) >= kWireRandom;
  bool they_random = p.remote_firewall() >= kWireRandom;
  if (we_random && they_random) {
    return abort_dial(dial, "HOLEPUNCH_DOUBLE_RANDOMIZED_NATS: both NATs pick a new port per destination");
  }
  if (we_random && !punching_.open_socket) {
    return abort_dial(dial, "HOLEPUNCH_ABORTED: our NAT is randomized and no sockets can be opened to punch it");
  }
  // One random punch at a time, 20 s apart (hyperdht's randomPunchInterval);
  // without a blind relay to go through meanwhile, this dial gives up.
  if (random_punch(p.nat().firewall(), p.remote_firewall()) &&
      !punching_.random_allowed(dht_.node().clock().now_ms())) {
    return abort_dial(dial, "HOLEPUNCH_ABORTED: another randomized NAT was punched less than " +
                                std::to_string(PunchShared::kRandomPunchIntervalMs / 1000) + " s ago; try again later");
  }
  punch_round(dial, reply);
}

// Round 1: through the relay that carried the handshake, with our token for
// the server's address and the server's token echoed; the server starts
// punching and says so, then we do.
void Connector::punch_round(const DialPtr& dial, const PunchReply& probe) {
  Holepuncher& p = *dial->puncher;
  // The server may answer from another address than the relay saw it at.
  if (dial->server_relay.relay_address == dial->relay && probe.peer_address != dial->server_address) {
    dial->server_address = probe.peer_address;
    p.open_session(dial->server_address);
  }
  p.nat().freeze();  // what we tell the server now stays true for this connection
  HolepunchPayload out{.error = kConnectErrorNone,
                       .firewall = to_wire(p.nat().firewall()),
                       .round = dial->round++,
                       .connected = false,
                       .punching = true,
                       .addresses = p.nat().addresses(),
                       .remote_address = std::nullopt,
                       .token = dial->box->token(dial->server_address),
                       .remote_token = probe.payload.token};
  // Counted from now, as hyperdht does, so that no other random punch of
  // ours starts while the server prepares this one.
  if (random_punch(p.nat().firewall(), p.remote_firewall())) {
    dial->random_reserved = true;
    punching_.random_active++;
  }
  send_holepunch(dial, dial->server_address, dial->relay, out, [this](const DialPtr& d, const PunchReply&) {
    release_random(*d);
    if (!d->puncher->remote_punching()) return fail(d, "REMOTE_NOT_HOLEPUNCHING: the server did not start punching");
    if (!d->puncher->punch()) return fail(d, "REMOTE_NOT_HOLEPUNCHABLE: no punching strategy for these NATs");
  });
}

// One PEER_HOLEPUNCH from the main socket through `relay` to the server at
// `peer`; `next` gets the server's answer once it opened and said no error.
void Connector::send_holepunch(const DialPtr& dial, const Address& peer, const Address& relay,
                               const HolepunchPayload& payload,
                               std::function<void(const DialPtr&, const PunchReply&)> next) {
  HolepunchMessage msg{.mode = kModeFromClient,
                       .id = dial->payload.holepunch->id,
                       .payload = dial->box->seal(payload),
                       .peer_address = peer};
  OutboundRequest req{.command = kPeerHolepunch, .target = dial->target, .value = encode_holepunch_message(msg)};
  std::weak_ptr<Dial> weak = dial;
  auto on_answer = [this, weak, relay, peer, sent_token = payload.token, next = std::move(next)](const Reply* r) {
    auto d = weak.lock();
    if (!d || d->finished || !d->puncher) return;
    if (!r || !r->value) return fail(d, "HOLEPUNCH_ABORTED: the relay " + relay.to_string() + " did not answer");
    auto m = decode_holepunch_message(*r->value);
    if (!m || m->mode != kModeReply) return fail(d, "BAD_HOLEPUNCH_REPLY from " + relay.to_string());
    auto p = d->box->open(m->payload);
    if (!p) return fail(d, "HOLEPUNCH_INVALID: the server's holepunch answer does not open");
    if (p->error == kConnectErrorTryLater) {
      return fail(d, "HOLEPUNCH_ABORTED: the server is punching another randomized NAT (TRY_LATER); try again in " +
                         std::to_string(PunchShared::kRandomPunchIntervalMs / 1000) + " s");
    }
    if (p->error != kConnectErrorNone) {
      return fail(d, "REMOTE_ABORTED: the server gave up holepunching (error " + std::to_string(p->error) + ")");
    }
    bool echoed = p->remote_token && sent_token && *p->remote_token == *sent_token;
    std::optional<std::array<uint8_t, 4>> verified;
    if (echoed) verified = peer.ip;
    d->puncher->update_remote(p->punching, p->firewall, p->addresses, verified);
    next(d, PunchReply{r->from, r->to, *p, m->peer_address.value_or(relay)});
  };
  if (!requests_.request(relay, req, std::move(on_answer), kHolepunchRetries)) {
    fail(dial, "HOLEPUNCH_ABORTED: too many requests under way");
  }
}

// Tells the server we give up (best effort), then fails.
void Connector::abort_dial(const DialPtr& dial, const std::string& why) {
  HolepunchPayload out{.error = kConnectErrorAborted, .firewall = kWireUnknown, .round = dial->round++};
  HolepunchMessage msg{.mode = kModeFromClient,
                       .id = dial->payload.holepunch->id,
                       .payload = dial->box->seal(out),
                       .peer_address = dial->server_relay.peer_address};
  requests_.request(dial->server_relay.relay_address,
                    OutboundRequest{.command = kPeerHolepunch, .target = dial->target, .value = encode_holepunch_message(msg)},
                    nullptr);
  fail(dial, why);
}

void Connector::connect_dial(const DialPtr& dial, const Address& to, How how, std::shared_ptr<PunchSocket> via,
                             std::optional<uint32_t> remote_id) {
  if (dial->finished) return;
  if (dial->stream->closed()) return fail(dial, "the server reset the stream (it kept another connection)");
  dial->finished = true;
  Clock& clock = dht_.node().clock();
  clock.cancel_timer(dial->timer);
  clock.cancel_timer(dial->wait_timer);
  // May be our caller (its on_connect): it goes when we return.
  auto puncher = std::move(dial->puncher);
  if (puncher) puncher->stop();
  // Through one of our punching sockets (a random NAT of ours), or the main
  // one; through a blind relay, the stream keeps the connection to it.
  dial->stream->attach(via ? *via->streams : mux_);
  if (via) dial->stream->hold(std::move(via));
  clock.cancel_timer(dial->relay_timer);
  if (how == How::blind_relay) dial->stream->hold(dial->blind_relay);
  dial->blind_relay.reset();
  dial->stream->connect(to, remote_id.value_or(static_cast<uint32_t>(dial->payload.udx->id)));
  dial->stream->on_firewall = nullptr;
  Established e{.stream = std::move(dial->stream),
                .handshake = dial->result,
                .initiator = true,
                .remote = to,
                .how = how,
                .relayed = how != How::direct,
                .early_data = dial->early};
  auto done = std::move(dial->done);
  done(std::move(e));
}

void Connector::release_random(Dial& dial) {
  if (!dial.random_reserved) return;
  dial.random_reserved = false;
  punching_.random_active--;
}

void Connector::fail(const DialPtr& dial, const std::string& why, bool final) {
  if (dial->finished) return;
  if (dial->relay_pending && !final) {  // the relay may still pair us
    if (dial->punch_error.empty()) dial->punch_error = why;
    auto puncher = std::move(dial->puncher);  // may be our caller: it goes when we return
    if (puncher) puncher->stop();
    return;
  }
  dial->finished = true;
  release_random(*dial);
  dial->blind_relay.reset();
  dht_.node().clock().cancel_timer(dial->relay_timer);
  Clock& clock = dht_.node().clock();
  clock.cancel_timer(dial->timer);
  clock.cancel_timer(dial->wait_timer);
  auto puncher = std::move(dial->puncher);  // may be our caller (its on_abort): it goes when we return
  if (puncher) puncher->stop();
  // Off a punching socket that goes with the puncher (never connected: safe
  // even from inside its own callbacks).
  if (dial->stream && !dial->stream->closed()) dial->stream->attach(mux_);
  auto done = std::move(dial->done);
  done(error(p2p::ErrorCode::io, why));
}

}  // namespace p2p::dht
