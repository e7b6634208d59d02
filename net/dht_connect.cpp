#include "net/dht_connect.h"

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

ByteView prologue() { return namespaces().peer_handshake; }

bool is_private(const Address& a) {
  return a.ip[0] == 127 || a.ip[0] == 10 || (a.ip[0] == 192 && a.ip[1] == 168) ||
         (a.ip[0] == 172 && (a.ip[1] & 0xf0) == 16) || (a.ip[0] == 169 && a.ip[1] == 254) || a.ip[0] == 0;
}

// Where the client sends its stream (hyperdht connect.js holepunch()):
// straight back to a server that answered itself; else wherever the server
// already sent from; else a public address of a reachable server; else, as
// hyperdht's LAN shortcut, a private address of the server on the same host
// or network; else the address the relay saw. Holepunching, for servers
// behind NATs on other networks, is not done here.
Address choose_path(bool relayed, const Address& server_address, const Address& replied_from,
                    const std::optional<Address>& first_sender, const NoisePayload& payload) {
  if (!relayed) return replied_from;
  if (first_sender) return *first_sender;
  if (payload.firewall == to_wire(Firewall::open)) {
    for (const auto& a : payload.addresses4)
      if (!is_private(a)) return a;
    return server_address;
  }
  for (const auto& a : payload.addresses4)
    if (a.ip == server_address.ip) return a;
  for (const auto& a : payload.addresses4)
    if (is_private(a) && is_private(server_address)) return a;
  return server_address;
}

}  // namespace

// A key we accept connections for.
struct Connector::Server {
  crypto::KeyPair key_pair;
  OnConnection on_connection;
  Admit admit;
  std::vector<Address> relays;
  // Answers already given, by the client's first handshake message: the same
  // message through a second relay gets the same answer and no second stream.
  struct Answered {
    Bytes reply_noise;
    uint64_t at;
  };
  std::map<Bytes, Answered> answered;
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
  Clock::TimerId timer = 0;
};

Connector::Connector(HyperDht& dht, udx::Mux& mux) : dht_(dht), mux_(mux) {
  dht_.set_peer_handler([this](const InboundRequest& in) { return on_peer_request(in); });
}

Connector::~Connector() {
  dht_.set_peer_handler(nullptr);
  dht_.node().clock().cancel_timer(reannounce_timer_);
}

NoisePayload Connector::our_payload(uint32_t stream_id) const {
  Node& node = dht_.node();
  NoisePayload p;
  p.firewall = to_wire(node.firewall() == Firewall::open ? Firewall::open : Firewall::unknown);
  Address self = node.socket().local_address();
  // Our public address only once it is the main socket's (while firewalled
  // the samples describe the client socket, which carries no streams).
  if (auto seen = node.observed_address(); seen && seen->port != 0 && node.firewall() == Firewall::open) {
    p.addresses4.push_back(*seen);
  }
  if (self.ip == std::array<uint8_t, 4>{0, 0, 0, 0}) self.ip = {127, 0, 0, 1};
  if (std::find(p.addresses4.begin(), p.addresses4.end(), self) == p.addresses4.end()) p.addresses4.push_back(self);
  p.udx = UdxInfo{.id = stream_id};
  p.secret_stream = SecretStreamInfo{};
  return p;
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
  if (req.command != kPeerHandshake || !req.target || !req.value) return Answer::dropped();
  auto m = decode_handshake_message(*req.value);
  if (!m) return Answer::dropped();
  if (auto it = servers_.find(*req.target); it != servers_.end()) return on_handshake_as_server(*it->second, in, *m);
  return on_handshake_as_relay(in, *m);
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
  auto reply = noise.write(encode_noise_payload(ours));
  if (!reply.ok()) return Answer::dropped();
  server.answered[m.noise] = Server::Answered{*reply, now};
  auto result = answer(*reply);
  if (!usable) return result;

  uint32_t remote_id = static_cast<uint32_t>(payload->udx->id);
  udx::Stream* raw = stream.get();
  auto early = hold_early_data(*raw);
  // Whoever sends first on this stream is the client (its address may differ
  // from what a relay saw); connect there if we are not connected yet.
  raw->on_firewall = [raw, remote_id](const Address& from) {
    if (!raw->connected()) raw->connect(from, remote_id);
    return true;
  };
  // A reachable client, or one that asked us directly, is dialled at once.
  if (direct || payload->firewall == to_wire(Firewall::open)) raw->connect(client, remote_id);
  Established e{.stream = std::move(stream),
                .handshake = noise.result(),
                .initiator = false,
                .remote = client,
                .relayed = !direct,
                .early_data = early};
  server.on_connection(std::move(e));
  return result;
}

// --- client ---

void Connector::connect(const crypto::KeyPair& key_pair, const Key32& remote, std::vector<Address> relay_hints,
                        std::function<void(Result<Established>)> done) {
  auto dial = std::make_shared<Dial>();
  dial->key_pair = key_pair;
  dial->remote = remote;
  dial->target = crypto::hash({remote});
  dial->done = std::move(done);
  dial->stream = mux_.create_stream();
  udx::Stream* raw = dial->stream.get();
  std::weak_ptr<Dial> weak = dial;
  raw->on_firewall = [weak](const Address& from) {
    if (auto d = weak.lock(); d && !d->first_sender) d->first_sender = from;
    return true;
  };
  dial->noise = std::make_unique<net::NoiseIK>(true, key_pair, remote, prologue());
  auto first = dial->noise->write(encode_noise_payload(our_payload(raw->id())));
  if (!first.ok()) return dial->done(first.status());
  dial->first_message = encode_handshake_message(HandshakeMessage{.mode = kModeFromClient, .noise = *first});

  dial->timer = dht_.node().clock().start_timer(kConnectTimeoutMs, [this, dial] {
    dial->timer = 0;
    if (dial->finished) return;
    dial->finished = true;
    dial->done(error(p2p::ErrorCode::io, "no answer from " + to_hex(dial->remote) + " within " +
                                        std::to_string(kConnectTimeoutMs / 1000) + " s"));
  });
  for (const auto& relay : relay_hints) try_relay(dial, relay);
  QuerySpec spec{.command = kFindPeer, .target = dial->target};
  spec.on_reply = [this, dial](const Reply& r) {
    if (!r.value || dial->finished) return;
    auto peer = decode_peer(*r.value);
    if (peer && peer->public_key == dial->remote) try_relay(dial, r.from);
  };
  spec.on_done = [dial](const QueryResult&) {
    dial->query_done = true;
    if (!dial->finished && dial->in_flight == 0 && dial->tried.empty()) {
      dial->finished = true;
      dial->done(not_found("no DHT node knows " + to_hex(dial->remote) + " (is it listening?)"));
    }
  };
  dht_.node().query(std::move(spec));
}

void Connector::try_relay(const std::shared_ptr<Dial>& dial, const Address& relay) {
  if (dial->finished || dial->in_flight >= kMaxParallelHandshakes) return;
  if (std::find(dial->tried.begin(), dial->tried.end(), relay) != dial->tried.end()) return;
  dial->tried.push_back(relay);
  dial->in_flight++;
  OutboundRequest req{.command = kPeerHandshake, .target = dial->target, .value = dial->first_message};
  dht_.node().request(relay, req, [this, dial](const Reply* r) {
        dial->in_flight--;
    if (dial->finished) return;
    std::optional<HandshakeMessage> m;
    if (r && r->value) m = decode_handshake_message(*r->value);
    if (m && m->mode == kModeReply) return finish_dial(dial, *r, *m);
    if (dial->in_flight == 0 && dial->query_done) {
      dial->finished = true;
      dht_.node().clock().cancel_timer(dial->timer);
      dial->done(error(p2p::ErrorCode::io, "could not reach " + to_hex(dial->remote) + " through any relay"));
    }
  });
}

void Connector::finish_dial(const std::shared_ptr<Dial>& dial, const Reply& reply, const HandshakeMessage& m) {
  auto payload_bytes = dial->noise->read(m.noise);
  if (!payload_bytes.ok()) return;  // not the server's answer: another relay may still bring it
  auto payload = decode_noise_payload(*payload_bytes);
  dial->finished = true;
  dht_.node().clock().cancel_timer(dial->timer);
  auto fail = [&](const std::string& why) { dial->done(error(p2p::ErrorCode::io, why)); };
  if (!payload) return fail("the server's handshake payload is malformed");
  if (payload->version != kConnectVersion) return fail("the server speaks another protocol version");
  if (payload->error != kConnectErrorNone) return fail("the server refused the connection");
  if (!payload->udx) return fail("the server offered no UDX stream");

  bool relayed = m.peer_address.has_value();
  Address server_address = relayed ? *m.peer_address : reply.from;
  Address target = choose_path(relayed, server_address, reply.from, dial->first_sender, *payload);
  // The server may have reset our stream already (it kept another connection).
  if (dial->stream->closed()) return fail("the server reset the stream (it kept another connection)");
  auto early = hold_early_data(*dial->stream);
  dial->stream->connect(target, static_cast<uint32_t>(payload->udx->id));
  dial->stream->on_firewall = nullptr;
  Established e{.stream = std::move(dial->stream),
                .handshake = dial->noise->result(),
                .initiator = true,
                .remote = target,
                .relayed = relayed,
                .early_data = early};
  dial->done(std::move(e));
}

}  // namespace p2p::dht
