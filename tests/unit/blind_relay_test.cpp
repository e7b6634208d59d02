// The blind relay: its messages byte for byte, and a relay pairing two peers
// over protomux channels (in memory) whose UDX streams then go through it
// on the simulated network; the bounds and the endings.
#include <catch2/catch.hpp>

#include <random>

#include "net/blind_relay.h"
#include "net/dht_sim.h"

using namespace p2p;
using namespace p2p::net;
using dht::Address;
using dht::SimNetwork;

namespace {

Key32 key(uint8_t fill) {
  Key32 k;
  k.fill(fill);
  return k;
}

// A socket with its UDX streams.
struct Host {
  Address address;
  std::unique_ptr<dht::DatagramSocket> socket;
  udx::Mux streams;
  Host(SimNetwork& net, uint8_t i)
      : address{{10, 0, 0, i}, 5000}, socket(net.open_socket(address)), streams(net, *socket) {
    socket->set_receiver([this](const Address& from, ByteView d) { streams.handle(from, d); });
  }
};

// Two protomux ends joined in memory.
struct Wire {
  std::unique_ptr<Mux> peer, relay;
  Status relay_error;
  Wire() {
    peer = std::make_unique<Mux>([this](ByteView f) {
      Status s = relay->receive(f);
      if (!s.ok()) relay_error = s;
    });
    relay = std::make_unique<Mux>([this](ByteView f) { (void)peer->receive(f); });
    peer->hold_unmatched_opens(true);  // as protomux does: the relay may open first
  }
};

// A relay client's channel: what it hears.
struct Client : ChannelHandler {
  bool open = false, closed = false;
  std::vector<RelayPair> answers;
  Status on_open(uint64_t, ByteView) override {
    open = true;
    return {};
  }
  Status on_message(uint64_t type, ByteView payload) override {
    if (type == kRelayPair) answers.push_back(*decode_relay_pair(payload));
    return {};
  }
  void on_close() override { closed = true; }
};

}  // namespace

TEST_CASE("blind relay: pair and unpair messages as blind-relay 1.6.1 encodes them", "[relay]") {
  RelayPair m{.initiator = true, .token = key(0xab), .stream_id = 300, .seq = 0};
  Bytes b = encode_relay_pair(m);
  Bytes want{0x01};
  want.insert(want.end(), 32, 0xab);
  for (uint8_t x : {0xfd, 0x2c, 0x01, 0x00}) want.push_back(x);  // uint 300, uint 0
  CHECK(b == want);
  auto back = decode_relay_pair(b);
  REQUIRE(back);
  CHECK(back->initiator);
  CHECK(back->token == key(0xab));
  CHECK(back->stream_id == 300);
  b[0] = 0;
  CHECK_FALSE(decode_relay_pair(b)->initiator);
  CHECK_FALSE(decode_relay_pair(ByteView(b).first(20)));  // cut short
  Bytes u = encode_relay_unpair(key(7));
  CHECK(u.size() == 33);
  CHECK(u[0] == 0);
  CHECK(decode_relay_unpair(u) == key(7));
  CHECK_FALSE(decode_relay_unpair(ByteView(u).first(32)));
}

TEST_CASE("blind relay: garbage never crashes the decoders or a session", "[relay]") {
  std::mt19937 rng(9);
  SimNetwork net(33);
  Host r(net, 3);
  BlindRelay relay(r.streams);
  Wire w;
  Client c;
  auto handler = relay.accept(*w.relay, key(2));
  REQUIRE(handler.ok());
  uint64_t ch = *w.peer->open(std::string(kBlindRelayProtocol), key(2), {}, &c);
  size_t decoded = 0, refused = 0;
  for (int i = 0; i < 2000; i++) {
    Bytes junk(rng() % 80);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    decoded += decode_relay_pair(junk).has_value() + decode_relay_unpair(junk).has_value();
    Status s = (*handler)->on_message(rng() % 3, junk);
    refused += !s.ok();
  }
  CHECK(decoded > 0);   // long enough junk is a well-formed (meaningless) request
  CHECK(refused > 0);   // short junk is refused, not read past its end
  CHECK(relay.stats().pending <= BlindRelay::kMaxPendingPerSession);
  (void)ch;
}

TEST_CASE("blind relay: two peers paired by token talk through the relay's streams", "[relay]") {
  SimNetwork net(31, {.loss = 0.01, .min_delay_ms = 2, .max_delay_ms = 8});
  Host a(net, 1), b(net, 2), r(net, 3);
  BlindRelay relay(r.streams);
  std::vector<std::pair<BlindRelay::Event, uint64_t>> events;
  relay.on_event = [&](BlindRelay::Event e, const Key32&, uint64_t bytes) { events.emplace_back(e, bytes); };
  Wire wa, wb;
  Client ca, cb;  // before the relay's sessions: those tell them they close
  auto sa_handler = relay.accept(*wa.relay, key(0xa1));
  auto sb_handler = relay.accept(*wb.relay, key(0xb1));
  REQUIRE(sa_handler.ok());
  REQUIRE(sb_handler.ok());
  // Clients open the channel with their own key as its id (relay clients do).
  uint64_t cha = *wa.peer->open(std::string(kBlindRelayProtocol), key(0xa1), {}, &ca);
  uint64_t chb = *wb.peer->open(std::string(kBlindRelayProtocol), key(0xb1), {}, &cb);
  REQUIRE(ca.open);
  REQUIRE(cb.open);
  CHECK(relay.stats().sessions == 2);

  auto sa = a.streams.create_stream(), sb = b.streams.create_stream();
  Key32 token = key(0x70);
  wa.peer->send(cha, kRelayPair, encode_relay_pair({.initiator = true, .token = token, .stream_id = sa->id()}));
  CHECK(relay.stats().pending == 1);
  CHECK(ca.answers.empty());
  // The same side again is ignored; the other side completes the pair.
  wa.peer->send(cha, kRelayPair, encode_relay_pair({.initiator = true, .token = token, .stream_id = 1}));
  wb.peer->send(chb, kRelayPair, encode_relay_pair({.initiator = false, .token = token, .stream_id = sb->id()}));
  REQUIRE(ca.answers.size() == 1);
  REQUIRE(cb.answers.size() == 1);
  CHECK(ca.answers[0].initiator);
  CHECK_FALSE(cb.answers[0].initiator);
  CHECK(ca.answers[0].token == token);
  CHECK(ca.answers[0].stream_id != cb.answers[0].stream_id);
  CHECK(relay.stats().relaying == 1);
  CHECK(relay.stats().pending == 0);
  REQUIRE(events.size() == 1);
  CHECK(events[0].first == BlindRelay::Event::paired);

  // Each peer points its stream at the relay's stream for it.
  sa->connect(r.address, static_cast<uint32_t>(ca.answers[0].stream_id));
  sb->connect(r.address, static_cast<uint32_t>(cb.answers[0].stream_id));
  Bytes up(200'000), down(150'000);
  for (size_t i = 0; i < up.size(); i++) up[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < down.size(); i++) down[i] = static_cast<uint8_t>(i * 13);
  Bytes at_a, at_b;
  std::optional<std::string> a_closed, b_closed;
  sa->on_data = [&](ByteView d) { at_a.insert(at_a.end(), d.begin(), d.end()); };
  sb->on_data = [&](ByteView d) { at_b.insert(at_b.end(), d.begin(), d.end()); };
  sa->on_close = [&](const std::string& e) { a_closed = e; };
  sb->on_close = [&](const std::string& e) { b_closed = e; };
  sa->write(up);
  sb->write(down);
  REQUIRE(net.run_until([&] { return at_a == down && at_b == up; }, 60'000));

  SECTION("a session that closes ends its pairings: both peers are reset") {
    wa.relay->shutdown();
    REQUIRE(net.run_until([&] { return a_closed && b_closed; }, 5000));
    CHECK(*a_closed == "connection reset by peer");
    CHECK(*b_closed == "connection reset by peer");
    CHECK(relay.stats().relaying == 0);
    REQUIRE(events.size() == 2);
    CHECK(events[1].first == BlindRelay::Event::ended);
    CHECK(events[1].second >= up.size() + down.size());
  }
  SECTION("a peer's reset ends the pair") {
    sa->destroy();
    REQUIRE(net.run_until([&] { return b_closed.has_value(); }, 5000));
    CHECK(*b_closed == "connection reset by peer");
    CHECK(relay.stats().relaying == 0);
    CHECK(events.size() == 2);
  }
  SECTION("unpair ends it too; only a session in the pair may") {
    wb.peer->send(chb, kRelayUnpair, encode_relay_unpair(key(0x71)));  // not theirs
    CHECK(relay.stats().relaying == 1);
    wb.peer->send(chb, kRelayUnpair, encode_relay_unpair(token));
    CHECK(relay.stats().relaying == 0);
    REQUIRE(net.run_until([&] { return a_closed && b_closed; }, 5000));
  }
}

TEST_CASE("blind relay: bounded pending requests; malformed messages end the session", "[relay]") {
  SimNetwork net(32);
  Host r(net, 3);
  BlindRelay relay(r.streams);
  Wire w;
  auto handler = relay.accept(*w.relay, key(1));
  REQUIRE(handler.ok());
  Client c;
  uint64_t ch = *w.peer->open(std::string(kBlindRelayProtocol), key(1), {}, &c);
  for (int i = 0; i < 100; i++) {
    Key32 t = key(0);
    t[0] = static_cast<uint8_t>(i);
    w.peer->send(ch, kRelayPair, encode_relay_pair({.initiator = true, .token = t, .stream_id = 5}));
  }
  CHECK(relay.stats().pending == BlindRelay::kMaxPendingPerSession);
  // A stream id that is not a UDX id is ignored.
  w.peer->send(ch, kRelayPair, encode_relay_pair({.initiator = false, .token = key(0), .stream_id = 1ull << 40}));
  CHECK(relay.stats().relaying == 0);
  CHECK(w.relay_error.ok());
  w.peer->send(ch, kRelayPair, Bytes{1, 2, 3});
  CHECK_FALSE(w.relay_error.ok());
  // The connection goes: its session's requests with it.
  handler->reset();
  CHECK(relay.stats().pending == 0);
  CHECK(relay.stats().sessions == 0);
}
