#include "net/blind_relay.h"

#include "core/encoding.h"

namespace p2p::net {

Bytes encode_relay_pair(const RelayPair& m) {
  enc::Encoder e;
  e.u8(m.initiator ? 1 : 0);
  e.fixed(m.token);
  e.uint(m.stream_id);
  e.uint(m.seq);
  return e.take();
}

std::optional<RelayPair> decode_relay_pair(ByteView b) {
  enc::Decoder d(b);
  RelayPair m;
  m.initiator = d.u8() & 1;
  m.token = d.fixed_array<32>();
  m.stream_id = d.uint();
  m.seq = d.uint();
  if (!d.ok()) return std::nullopt;  // (newer versions may append fields)
  return m;
}

Bytes encode_relay_unpair(const Key32& token) {
  enc::Encoder e;
  e.u8(0);
  e.fixed(token);
  return e.take();
}

std::optional<Key32> decode_relay_unpair(ByteView b) {
  enc::Decoder d(b);
  d.u8();
  Key32 token = d.fixed_array<32>();
  if (!d.ok()) return std::nullopt;
  return token;
}

class BlindRelay::Session : public ChannelHandler {
 public:
  Session(BlindRelay& relay, Mux& mux) : relay_(relay), mux_(mux) {}
  ~Session() override {
    mux_.close(channel);  // the mux must not call us any more
    relay_.session_closed(*this);
  }

  Status on_open(uint64_t, ByteView) override { return {}; }
  Status on_message(uint64_t type, ByteView payload) override {
    if (type == kRelayPair) {
      auto m = decode_relay_pair(payload);
      if (!m) return corruption("a malformed blind-relay pair message");
      relay_.pair(*this, *m);
    } else if (type == kRelayUnpair) {
      auto token = decode_relay_unpair(payload);
      if (!token) return corruption("a malformed blind-relay unpair message");
      relay_.unpair(*this, *token);
    }
    return {};  // unknown types: a newer peer's
  }
  void on_close() override { relay_.session_closed(*this); }

  void send_pair(const RelayPair& m) { mux_.send(channel, kRelayPair, encode_relay_pair(m)); }

  uint64_t channel = 0;
  std::set<Key32> tokens;  // pairings this session is in

 private:
  BlindRelay& relay_;
  Mux& mux_;
};

BlindRelay::BlindRelay(udx::Mux& streams) : streams_(streams) {}

BlindRelay::~BlindRelay() {
  while (!pairings_.empty()) end(pairings_.begin()->first);
}

Result<std::unique_ptr<ChannelHandler>> BlindRelay::accept(Mux& mux, const Key32& remote) {
  auto session = std::make_unique<Session>(*this, mux);
  auto channel = mux.open(std::string(kBlindRelayProtocol), remote, {}, session.get());
  if (!channel.ok()) return channel.status();
  session->channel = *channel;
  sessions_.insert(session.get());
  return std::unique_ptr<ChannelHandler>(std::move(session));
}

BlindRelay::Stats BlindRelay::stats() const {
  Stats s{.sessions = sessions_.size(), .paired_total = paired_total_};
  for (const auto& [token, p] : pairings_) (p.paired ? s.relaying : s.pending)++;
  return s;
}

// blind-relay's _onpair: the first request of a token waits for the other
// side's; a second request for a side already asked for is ignored.
void BlindRelay::pair(Session& s, const RelayPair& m) {
  if (m.stream_id > UINT32_MAX) return;
  auto it = pairings_.find(m.token);
  if (it == pairings_.end()) {
    if (pairings_.size() >= kMaxPairs || s.tokens.size() >= kMaxPendingPerSession) return;
    it = pairings_.emplace(m.token, Pairing{}).first;
  }
  Pairing& p = it->second;
  Side& side = p.side[m.initiator ? 1 : 0];
  if (p.paired || side.session) return;
  side = Side{&s, static_cast<uint32_t>(m.stream_id)};
  s.tokens.insert(m.token);
  if (!p.side[0].session || !p.side[1].session) return;

  for (auto& stream : p.stream) stream = streams_.create_stream();
  for (int k = 0; k < 2; k++) {
    p.stream[k]->relay_to(*p.stream[1 - k], p.side[k].peer_stream);
    // A peer's reset passed through: the pair is over (both streams closed).
    p.stream[k]->on_close = [this, token = m.token](const std::string&) { end(token); };
  }
  p.paired = true;
  paired_total_++;
  for (int k = 0; k < 2; k++) {
    p.side[k].session->send_pair(RelayPair{.initiator = k == 1, .token = m.token, .stream_id = p.stream[k]->id()});
  }
  if (on_event) on_event(Event::paired, m.token, 0);
}

void BlindRelay::unpair(Session& s, const Key32& token) {
  auto it = pairings_.find(token);
  if (it == pairings_.end() || !s.tokens.count(token)) return;
  end(token);
}

void BlindRelay::session_closed(Session& s) {
  if (!sessions_.erase(&s)) return;
  auto tokens = s.tokens;
  for (const auto& token : tokens) end(token);
}

// Ends a pairing: its streams go (telling both peers, unless a reset of
// theirs already passed), its sessions forget it.
void BlindRelay::end(const Key32& token) {
  auto it = pairings_.find(token);
  if (it == pairings_.end()) return;
  Pairing p = std::move(it->second);
  pairings_.erase(it);
  for (auto& side : p.side)
    if (side.session) side.session->tokens.erase(token);
  uint64_t bytes = 0;
  for (auto& stream : p.stream) {
    if (!stream) continue;
    bytes += stream->stats().bytes_received;
    stream->on_close = nullptr;
  }
  // (Often from a stream's own on_close: a stream may go in its callbacks.)
  for (auto& stream : p.stream) stream.reset();
  if (p.paired && on_event) on_event(Event::ended, token, bytes);
}

}  // namespace p2p::net
