#include "net/relay_client.h"

#include "net/blind_relay.h"
#include "net/connection.h"
#include "net/udx_transport.h"

namespace p2p::net {

// One pair request: dial the relay, open the channel, ask, wait for the
// answer. `done` runs once, unless the handle went first.
struct RelayClient::Pairing : ChannelHandler {
  dht::Clock& clock;
  RelayPair request;
  Key32 our_key{};
  std::function<void(Result<dht::RelayPath>)> done;
  std::unique_ptr<Connection> connection;
  dht::Address relay_address{};
  uint64_t channel = 0;
  bool answered = false, gone = false;

  explicit Pairing(dht::Clock& c) : clock(c) {}
  ~Pairing() override {
    if (connection) {
      connection->set_hooks({});
      connection->mux().close(channel);  // we are its channel's handler
      connection->close();
    }
  }

  void finish(Result<dht::RelayPath> r) {
    if (answered || gone) return;
    answered = true;
    auto cb = std::move(done);
    if (cb) cb(std::move(r));  // may drop the handle: nothing touches `this` after
  }

  Status on_open(uint64_t id, ByteView) override {
    channel = id;  // (before open() returns, when the relay's open came first)
    connection->mux().send(channel, kRelayPair, encode_relay_pair(request));
    connection->flush_output();
    return {};
  }
  Status on_message(uint64_t type, ByteView payload) override {
    if (type != kRelayPair) return {};
    auto m = decode_relay_pair(payload);
    if (!m) return corruption("a malformed blind-relay pair answer");
    if (m->token != request.token || m->initiator != request.initiator) return {};
    if (m->stream_id > UINT32_MAX) return corruption("the relay's stream id is not a UDX id");
    finish(dht::RelayPath{static_cast<uint32_t>(m->stream_id), relay_address});
    return {};
  }
  void on_close() override { finish(error(ErrorCode::io, "the relay closed the blind-relay channel")); }
};

RelayClient::RelayClient(uv_loop_s* loop, dht::Connector& connector, dht::Clock& clock)
    : loop_(loop), connector_(connector), clock_(clock) {}

RelayClient::~RelayClient() { *alive_ = false; }

std::shared_ptr<void> RelayClient::pair(const crypto::KeyPair& us, const Key32& relay, const Hash32& token,
                                        bool initiator, uint32_t stream_id,
                                        std::function<void(Result<dht::RelayPath>)> done) {
  // Dropped on a later turn of the loop: the handle may go inside a callback
  // of the connection it owns.
  dht::Clock& clock = clock_;
  std::shared_ptr<Pairing> p(new Pairing(clock_), [&clock](Pairing* raw) {
    raw->gone = true;
    std::shared_ptr<Pairing> last(raw);
    clock.start_timer(0, [last] {});
  });
  p->request = RelayPair{.initiator = initiator, .token = token, .stream_id = stream_id};
  p->our_key = us.public_key;
  p->done = std::move(done);
  std::weak_ptr<Pairing> weak = p;
  connector_.connect(us, relay, {}, [this, weak, alive = alive_](Result<dht::Established> e) {
    auto p = weak.lock();
    if (!*alive || !p || p->gone) return;
    if (!e.ok()) return p->finish(error(ErrorCode::io, "could not reach the relay: " + e.status().message()));
    p->relay_address = e->remote;
    auto stream = std::make_unique<SecretStream>(e->initiator, e->handshake);
    p->connection = std::make_unique<Connection>(loop_, udx_transport(std::move(e->stream), clock_, std::move(e->early_data)),
                                                 std::move(stream));
    Connection& c = *p->connection;
    c.mux().hold_unmatched_opens(true);
    auto channel = c.mux().open(std::string(kBlindRelayProtocol), p->our_key, {}, p.get());
    if (!channel.ok()) return p->finish(channel.status());
    p->channel = *channel;
    Pairing* raw = p.get();
    c.set_hooks({nullptr, [raw](const Status& why) {
                   raw->finish(error(ErrorCode::io, "the connection to the relay ended" +
                                                        (why.ok() ? std::string() : ": " + why.message())));
                 }});
    if (Status s = c.start(); !s.ok()) p->finish(s);
  }, dht::Connector::RelayUse::never);
  return p;
}

}  // namespace p2p::net
