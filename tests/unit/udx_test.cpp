// UDX streams on the simulated network: bulk transfer under loss, reordering
// and duplication, half close, reset, timeouts, packets before connect, flow
// control, the wire details a libudx peer relies on, and hostile input. All
// in simulated time, each run the same.
#include <catch2/catch.hpp>

#include <random>

#include "net/dht_sim.h"
#include "net/udx.h"

using namespace p2p;
using namespace p2p::udx;
using dht::SimNetwork;

namespace {

Address sim_address(uint8_t i) { return Address{{10, 0, 0, i}, 5000}; }

// Forwards to a socket and lets a test watch both directions.
class TapSocket : public dht::DatagramSocket {
 public:
  explicit TapSocket(dht::DatagramSocket& inner) : inner_(inner) {}
  std::function<void(ByteView)> on_send, on_receive;

  void send(const Address& to, ByteView d) override {
    if (on_send) on_send(d);
    inner_.send(to, d);
  }
  size_t link_mtu(const Address& to) const override { return inner_.link_mtu(to); }
  Address local_address() const override { return inner_.local_address(); }
  void set_receiver(Receiver r) override {
    inner_.set_receiver([this, r = std::move(r)](const Address& from, ByteView d) {
      if (on_receive) on_receive(d);
      r(from, d);
    });
  }

 private:
  dht::DatagramSocket& inner_;
};

// A socket with a Mux on it, wired as the DHT runtime does: the Mux first,
// the rest (counted here) would go to the DHT.
struct Host {
  Address address;
  std::unique_ptr<dht::DatagramSocket> socket;
  TapSocket tap;
  std::unique_ptr<Mux> mux;
  size_t passed = 0;

  Host(SimNetwork& net, Address a)
      : address(a), socket(net.open_socket(a)), tap(*socket), mux(std::make_unique<Mux>(net, tap)) {
    tap.set_receiver([this](const Address& from, ByteView d) {
      if (!mux || !mux->handle(from, d)) passed++;
    });
  }
};

// A bare socket speaking raw UDX headers, to drive a stream packet by packet.
struct RawPeer {
  Address address;
  std::unique_ptr<dht::DatagramSocket> socket;
  std::vector<std::pair<Header, Bytes>> got;  // header, bytes after it

  RawPeer(SimNetwork& net, Address a) : address(a), socket(net.open_socket(a)) {
    socket->set_receiver([this](const Address&, ByteView d) {
      auto h = read_header(d);
      REQUIRE(h);
      got.emplace_back(*h, to_bytes(d.subspan(kHeaderSize)));
    });
  }
  void send(const Address& to, const Header& h, ByteView body = {}) {
    Bytes out;
    write_header(out, h);
    out.insert(out.end(), body.begin(), body.end());
    socket->send(to, out);
  }
  size_t count(uint8_t type) const {
    return std::count_if(got.begin(), got.end(), [&](const auto& g) { return g.first.type == type; });
  }
};

struct Checksum {
  uint64_t hash = 14695981039346656037ull, bytes = 0;  // FNV-1a: order matters
  void add(ByteView b) {
    for (uint8_t c : b) hash = (hash ^ c) * 1099511628211ull;
    bytes += b.size();
  }
};

// What one side of a stream saw.
struct Inbox {
  Checksum sum;
  bool ended = false, data_after_end = false;
  std::optional<std::string> closed;
  Bytes kept;  // the bytes, when asked to keep them

  void attach(Stream& s, bool keep = false) {
    s.on_data = [this, keep](ByteView b) {
      data_after_end |= ended;
      sum.add(b);
      if (keep) kept.insert(kept.end(), b.begin(), b.end());
    };
    s.on_end = [this] { ended = true; };
    s.on_close = [this](const std::string& e) { closed = e; };
  }
};

// `total` pseudo-random bytes in writes of random sizes (so they coalesce).
Checksum write_random(Stream& s, size_t total, uint32_t seed) {
  std::mt19937 rng(seed);
  Checksum sum;
  Bytes chunk;
  for (size_t done = 0; done < total;) {
    chunk.resize(std::min<size_t>(total - done, rng() % 4096 + 1));
    for (auto& c : chunk) c = static_cast<uint8_t>(rng());
    s.write(chunk);
    sum.add(chunk);
    done += chunk.size();
  }
  return sum;
}

Bytes text(std::string_view s) { return to_bytes(as_bytes(s)); }

struct Pair {
  Host a, b;
  std::unique_ptr<Stream> sa, sb;
  Inbox ia, ib;
  explicit Pair(SimNetwork& net) : a(net, sim_address(1)), b(net, sim_address(2)) {
    sa = a.mux->create_stream();
    sb = b.mux->create_stream();
    ia.attach(*sa);
    ib.attach(*sb);
  }
  void connect() {
    sa->connect(b.address, sb->id());
    sb->connect(a.address, sa->id());
  }
};

}  // namespace

TEST_CASE("udx: 10 MiB each way over a lossy, reordering, duplicating network", "[udx]") {
  SimNetwork net(7, {.loss = 0.05, .duplicate = 0.01, .min_delay_ms = 1, .max_delay_ms = 40});
  Pair p(net);
  p.connect();
  constexpr size_t kTotal = 10 << 20;
  Checksum to_b = write_random(*p.sa, kTotal, 1), to_a = write_random(*p.sb, kTotal, 2);
  CHECK(p.sa->buffered() == kTotal);

  REQUIRE(net.run_until([&] { return p.ia.sum.bytes == kTotal && p.ib.sum.bytes == kTotal; }, 600'000));
  double seconds = net.now_ms() / 1000.0;
  CHECK(p.ib.sum.hash == to_b.hash);
  CHECK(p.ia.sum.hash == to_a.hash);
  CHECK_FALSE(p.ia.ended);
  CHECK(p.sa->stats().retransmits > 0);
  INFO("simulated rate " << kTotal / seconds << " B/s each way");
  CHECK(kTotal / seconds > 150'000);

  p.sa->end();
  p.sb->end();
  REQUIRE(net.run_until([&] { return p.ia.closed && p.ib.closed; }, 120'000));
  CHECK(*p.ia.closed == "");
  CHECK(*p.ib.closed == "");
  CHECK((p.ia.ended && p.ib.ended));
  CHECK_FALSE((p.ia.data_after_end || p.ib.data_after_end));
  CHECK((p.ia.sum.bytes == kTotal && p.ib.sum.bytes == kTotal));
  CHECK(p.sa->buffered() == 0);
  CHECK(p.sa->closed());
}

namespace {

// Four MiB from a to b on a network whose links report `link_mtu` and whose
// path drops IP datagrams above `path_mtu`; what went on the wire.
struct MtuRun {
  size_t largest_datagram = 0, padded = 0, largest_unpadded = 0;
  uint32_t mtu = 0;
  bool delivered = false;
};

MtuRun run_with_mtu(size_t link_mtu, size_t path_mtu, double loss = 0) {
  SimNetwork net(11, {.loss = loss, .min_delay_ms = 5, .max_delay_ms = 5, .link_mtu = link_mtu, .path_mtu = path_mtu});
  Pair p(net);
  MtuRun r;
  p.a.tap.on_send = [&](ByteView d) {
    auto h = read_header(d);
    if (!h || !(h->type & kData)) return;
    r.largest_datagram = std::max(r.largest_datagram, d.size() + 28);
    if (h->data_offset) r.padded++;
    else r.largest_unpadded = std::max(r.largest_unpadded, d.size() + 28);
  };
  p.connect();
  // A small receive window keeps the transfer going for many round trips:
  // long enough for the whole search (one probe per round trip).
  p.sb->set_receive_window(64 * 1024);
  constexpr size_t kTotal = 4 << 20;
  Checksum sent = write_random(*p.sa, kTotal, 3);
  r.delivered = net.run_until([&] { return p.ib.sum.bytes == kTotal; }, 120'000) && p.ib.sum.hash == sent.hash;
  r.mtu = p.sa->stats().mtu;
  return r;
}

}  // namespace

TEST_CASE("udx: MTU probing grows packets to what the path carries", "[udx]") {
  SECTION("a 1500-byte path: packets grow to 1500 in 32-byte probes") {
    MtuRun r = run_with_mtu(1500, 1500);
    REQUIRE(r.delivered);
    CHECK(r.mtu == 1500);
    CHECK(r.largest_unpadded == 1500);
    CHECK(r.padded == 10);  // 1232, 1264, ... 1488, then 1500
  }
  SECTION("a path narrower than the link (no ICMP): the search stops below it, nothing is lost") {
    MtuRun r = run_with_mtu(1500, 1400);
    REQUIRE(r.delivered);
    CHECK(r.mtu == 1392);  // 1200 + 6 x 32; 1424 never arrives
    CHECK(r.largest_unpadded == 1392);
    CHECK(r.padded == 6 + kMtuMaxProbes);
  }
  SECTION("a link of at most 1200 bytes: no probes") {
    MtuRun r = run_with_mtu(1200, 1500);
    REQUIRE(r.delivered);
    CHECK(r.mtu == 1200);
    CHECK(r.padded == 0);
    CHECK(r.largest_datagram == 1200);
  }
  SECTION("under loss probing still ends and every byte arrives") {
    MtuRun r = run_with_mtu(1500, 1450, 0.05);
    REQUIRE(r.delivered);
    CHECK(r.mtu >= 1200);
    CHECK(r.mtu <= 1450);
    CHECK(r.largest_unpadded <= 1450);
  }
}

TEST_CASE("udx: change_remote moves a stream to another socket mid-transfer; every byte arrives", "[udx]") {
  SimNetwork net(13, {.loss = 0.02, .min_delay_ms = 2, .max_delay_ms = 10});
  Pair p(net);
  Host a2(net, sim_address(3));  // a's second path (a direct one, after a relayed start)
  CHECK_FALSE(p.sa->change_remote(*a2.mux, p.b.address, p.sb->id()));  // not connected yet
  p.connect();
  // b follows a to the address its packets now come from, as hyperdht's
  // firewall hook does; late packets of the old path change nothing.
  int b_moves = 0, a_confirmed = 0;
  p.sb->on_firewall = [&](const Address& from) {
    if (from != a2.address) return true;
    b_moves++;
    return p.sb->change_remote(*p.b.mux, from, p.sa->id());
  };
  p.sa->on_remote_changed = [&] { a_confirmed++; };
  constexpr size_t kTotal = 2 << 20;
  Checksum to_b = write_random(*p.sa, kTotal, 5), to_a = write_random(*p.sb, kTotal, 6);
  REQUIRE(net.run_until([&] { return p.ib.sum.bytes > kTotal / 4 && p.ia.sum.bytes > kTotal / 4; }, 120'000));
  CHECK(p.ib.sum.bytes < kTotal);
  size_t sent_on_old_path = 0;
  p.a.tap.on_send = [&](ByteView) { sent_on_old_path++; };
  REQUIRE(p.sa->change_remote(*a2.mux, p.b.address, p.sb->id()));
  REQUIRE(net.run_until([&] { return p.ia.sum.bytes == kTotal && p.ib.sum.bytes == kTotal; }, 300'000));
  CHECK(p.ib.sum.hash == to_b.hash);
  CHECK(p.ia.sum.hash == to_a.hash);
  CHECK(sent_on_old_path == 0);
  CHECK(b_moves == 1);
  CHECK(a_confirmed == 1);
  CHECK(p.sb->remote() == a2.address);

  // Both ends close cleanly on the new path.
  p.sa->end();
  p.sb->end();
  REQUIRE(net.run_until([&] { return p.ia.closed && p.ib.closed; }, 120'000));
  CHECK(*p.ia.closed == "");
  CHECK(*p.ib.closed == "");
  CHECK_FALSE(p.sa->change_remote(*p.a.mux, p.b.address, p.sb->id()));  // closed
}

TEST_CASE("udx: a blind relay's pair of streams carries a stream between two peers, then a reset ends all", "[udx]") {
  SimNetwork net(17, {.loss = 0.02, .duplicate = 0.01, .min_delay_ms = 2, .max_delay_ms = 12});
  Pair p(net);
  Host r(net, sim_address(9));
  auto ra = r.mux->create_stream(), rb = r.mux->create_stream();
  std::optional<std::string> ra_closed, rb_closed;
  ra->on_close = [&](const std::string& e) { ra_closed = e; };
  rb->on_close = [&](const std::string& e) { rb_closed = e; };
  ra->relay_to(*rb, p.sa->id());
  rb->relay_to(*ra, p.sb->id());
  CHECK(ra->relaying());
  // Each peer points its stream at its end of the pair, at the relay.
  p.sa->connect(r.address, ra->id());
  p.sb->connect(r.address, rb->id());
  constexpr size_t kTotal = 1 << 20;
  Checksum to_b = write_random(*p.sa, kTotal, 7), to_a = write_random(*p.sb, kTotal, 8);
  // A stranger who learned an id gets nowhere once the peer has spoken.
  Host stranger(net, sim_address(10));
  bool some = net.run_until([&] { return p.ib.sum.bytes > 0 && p.ia.sum.bytes > 0; }, 60'000);
  INFO("ra got " << ra->stats().packets_received << " sent " << ra->stats().packets_sent << " rb got " << rb->stats().packets_received << " sent " << rb->stats().packets_sent << " r passed " << r.passed << " a passed " << p.a.passed << " b passed " << p.b.passed);
  REQUIRE(some);
  Bytes forged;
  write_header(forged, Header{kData, 0, ra->id(), kDefaultWindow, 0, 0});
  forged.push_back('x');
  net.inject(stranger.address, r.address, forged);
  REQUIRE(net.run_until([&] { return p.ia.sum.bytes == kTotal && p.ib.sum.bytes == kTotal; }, 300'000));
  CHECK(p.ib.sum.hash == to_b.hash);
  CHECK(p.ia.sum.hash == to_a.hash);
  CHECK(ra->stats().packets_received > 0);
  CHECK_FALSE(ra_closed);
  CHECK(p.sa->remote() == r.address);

  SECTION("a peer's reset passes through and closes the relay's pair") {
    p.sa->destroy();
    REQUIRE(net.run_until([&] { return p.ib.closed.has_value(); }, 5000));
    CHECK(*p.ib.closed == "connection reset by peer");
    CHECK(ra_closed);
    CHECK(rb_closed);
    CHECK(ra->closed());
    CHECK(rb->closed());
  }
  SECTION("the relay dropping its end resets both peers") {
    ra.reset();
    REQUIRE(net.run_until([&] { return p.ia.closed.has_value() && p.ib.closed.has_value(); }, 5000));
    CHECK(*p.ia.closed == "connection reset by peer");
    CHECK(*p.ib.closed == "connection reset by peer");
    CHECK(rb_closed);
    CHECK_FALSE(rb->relaying());
  }
}

TEST_CASE("udx: a peer that disappears mid-transfer times out", "[udx]") {
  SimNetwork net(3, {.loss = 0.01, .min_delay_ms = 5, .max_delay_ms = 15});
  Pair p(net);
  p.connect();
  write_random(*p.sa, 4 << 20, 3);
  REQUIRE(net.run_until([&] { return p.ib.sum.bytes > 256 * 1024; }, 60'000));

  // b vanishes without a word: Mux and socket gone, its stream left inert.
  p.b.mux.reset();
  p.b.socket.reset();
  CHECK(p.sb->closed());
  uint64_t gone = net.now_ms();
  REQUIRE(net.run_until([&] { return p.ia.closed.has_value(); }, 300'000));
  CHECK(*p.ia.closed == "timed out");
  // Backed-off RTOs of one packet: 1 + 2 + 4 + 8 + 16 + 30 + 30 s.
  CHECK(net.now_ms() - gone >= 60'000);
  CHECK(net.now_ms() - gone <= 100'000);
  CHECK_FALSE(p.ib.closed);
  p.sb->write(text("ignored"));  // an inert stream takes calls harmlessly
  p.sb.reset();
}

TEST_CASE("udx: destroy resets the other side", "[udx]") {
  SimNetwork net(4, {.min_delay_ms = 5, .max_delay_ms = 5});
  Pair p(net);
  p.connect();
  write_random(*p.sa, 100'000, 4);
  REQUIRE(net.run_until([&] { return p.ib.sum.bytes == 100'000; }, 10'000));

  SECTION("destroy()") { p.sa->destroy(); }
  SECTION("the destructor") { p.sa.reset(); }
  REQUIRE(net.run_until([&] { return p.ib.closed.has_value(); }, 1000));
  CHECK(*p.ib.closed == "connection reset by peer");
  CHECK_FALSE(p.ia.closed);  // destroying is not closing
  // Neither id is ours any more: what still arrives for them goes to the DHT.
  size_t passed = p.b.passed;
  Bytes ack;
  write_header(ack, Header{0, 0, p.sb->id(), kDefaultWindow, 0, 0});
  net.inject(p.a.address, p.b.address, ack);
  net.run_for(1);
  CHECK(p.b.passed == passed + 1);
}

TEST_CASE("udx: packets before connect are buffered and delivered once connected", "[udx]") {
  SimNetwork net(5, {.min_delay_ms = 2, .max_delay_ms = 10});
  Pair p(net);
  p.sa->connect(p.b.address, p.sb->id());
  Checksum sent = write_random(*p.sa, 50'000, 5);
  p.sa->end();

  SECTION("connect() later") {
    int hook_calls = 0;
    p.sb->on_firewall = [&](const Address& from) {
      hook_calls++;
      CHECK(from == p.a.address);
      return true;
    };
    net.run_for(3000);
    CHECK(p.ib.sum.bytes == 0);
    CHECK(p.sb->stats().packets_received > 0);
    CHECK(p.sb->stats().packets_sent == 0);  // the ACK waits for connect
    CHECK(hook_calls > 0);
    p.sb->connect(p.a.address, p.sa->id());
    CHECK(p.ib.sum.bytes > 0);  // what was buffered came out at once
    int calls_at_connect = hook_calls;
    REQUIRE(net.run_until([&] { return p.ib.ended; }, 30'000));
    CHECK(hook_calls == calls_at_connect);  // the connected peer passes unasked
  }
  SECTION("connect() inside the firewall hook, as hyperdht does") {
    p.sb->on_firewall = [&](const Address& from) {
      p.sb->connect(from, p.sa->id());
      return true;
    };
    REQUIRE(net.run_until([&] { return p.ib.ended; }, 30'000));
  }
  CHECK(p.ib.sum.bytes == 50'000);
  CHECK(p.ib.sum.hash == sent.hash);
  p.sb->end();
  REQUIRE(net.run_until([&] { return p.ia.closed && p.ib.closed; }, 30'000));
  CHECK(*p.ia.closed == "");
  CHECK(*p.ib.closed == "");
}

TEST_CASE("udx: a firewall hook that says no drops the packets", "[udx]") {
  SimNetwork net(12, {.min_delay_ms = 2, .max_delay_ms = 10});
  Pair p(net);
  p.sa->connect(p.b.address, p.sb->id());
  p.sb->on_firewall = [](const Address&) { return false; };
  write_random(*p.sa, 10'000, 12);
  net.run_for(2000);
  p.sb->connect(p.a.address, p.sa->id());
  net.run_for(10);
  CHECK(p.ib.sum.bytes == 0);
  CHECK(p.sb->stats().packets_received > 0);
}

TEST_CASE("udx: the sender keeps within the receiver's window", "[udx]") {
  constexpr uint32_t kWindow = 16 * 1024;
  SECTION("no loss: never more than the window in flight") {
    SimNetwork net(6, {.min_delay_ms = 10, .max_delay_ms = 10});
    Pair p(net);
    p.sb->set_receive_window(kWindow);
    p.connect();
    uint32_t acked = 0, max_in_flight = 0, max_rwnd = 0;
    p.a.tap.on_receive = [&](ByteView d) {
      auto h = read_header(d);
      acked = h->ack;
      max_rwnd = std::max(max_rwnd, h->rwnd);
    };
    p.a.tap.on_send = [&](ByteView d) {
      auto h = read_header(d);
      if (h->type & kData) max_in_flight = std::max(max_in_flight, h->seq + 1 - acked);
    };
    Checksum sent = write_random(*p.sa, 1 << 20, 6);
    REQUIRE(net.run_until([&] { return p.ib.sum.bytes == 1 << 20; }, 60'000));
    CHECK(p.ib.sum.hash == sent.hash);
    CHECK(max_rwnd == kWindow);
    CHECK(max_in_flight == kWindow / kMaxPayload);
  }
  SECTION("with loss and reordering the receiver's buffer stays within it") {
    SimNetwork net(6, {.loss = 0.05, .min_delay_ms = 1, .max_delay_ms = 40});
    Pair p(net);
    p.sb->set_receive_window(kWindow);
    p.connect();
    uint32_t max_rwnd = 0;
    p.a.tap.on_receive = [&](ByteView d) { max_rwnd = std::max(max_rwnd, read_header(d)->rwnd); };
    Checksum sent = write_random(*p.sa, 1 << 20, 7);
    REQUIRE(net.run_until([&] { return p.ib.sum.bytes == 1 << 20; }, 300'000));
    CHECK(p.ib.sum.hash == sent.hash);
    CHECK(max_rwnd <= kWindow);
  }
}

TEST_CASE("udx: a zero window is probed with HEARTBEATs until it opens", "[udx]") {
  SimNetwork net(8, {.min_delay_ms = 1, .max_delay_ms = 1});
  Host a(net, sim_address(1));
  RawPeer peer(net, sim_address(2));
  auto s = a.mux->create_stream();
  s->connect(peer.address, 77);
  peer.send(a.address, Header{0, 0, s->id(), 0, 0, 0});  // window shut
  net.run_for(5);
  s->write(Bytes(5000, 'x'));
  net.run_for(3500);
  CHECK(peer.count(kData) == 0);
  CHECK(peer.count(kHeartbeat) == 2);  // after 1 s, then 2 s more
  for (const auto& [h, body] : peer.got) CHECK(h.id == 77);

  peer.send(a.address, Header{0, 0, s->id(), kDefaultWindow, 0, 0});  // the answer to a probe
  net.run_for(5);
  CHECK(peer.count(kData) == 5);
  net.run_for(10'000);
  CHECK(peer.count(kHeartbeat) == 2);
}

TEST_CASE("udx: wire behaviour a libudx peer relies on", "[udx]") {
  SimNetwork net(9, {.min_delay_ms = 1, .max_delay_ms = 1});
  Host a(net, sim_address(1));
  RawPeer peer(net, sim_address(2));
  auto s = a.mux->create_stream();
  s->connect(peer.address, 1234);
  Inbox in;
  in.attach(*s, true);
  std::vector<Bytes> messages;
  s->on_message = [&](ByteView m) { messages.push_back(to_bytes(m)); };
  auto send = [&](uint8_t type, uint32_t seq, std::string_view payload, uint32_t ack = 0) {
    peer.send(a.address, Header{type, 0, s->id(), kDefaultWindow, seq, ack}, as_bytes(payload));
    net.run_for(5);
  };
  auto blocks = [](const Bytes& body) {
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (size_t i = 0; i + 8 <= body.size(); i += 8) {
      out.emplace_back(body[i] | body[i + 1] << 8 | body[i + 2] << 16 | uint32_t(body[i + 3]) << 24,
                       body[i + 4] | body[i + 5] << 8 | body[i + 6] << 16 | uint32_t(body[i + 7]) << 24);
    }
    return out;
  };

  SECTION("out-of-order packets are SACKed, then delivered in order") {
    send(kData, 2, "c");
    send(kData, 4, "e");
    REQUIRE(peer.got.size() == 2);
    const auto& [h, body] = peer.got.back();
    CHECK(h.type == kSack);
    CHECK(h.data_offset == 0);
    CHECK(h.ack == 0);
    CHECK(h.rwnd == kDefaultWindow - 2);  // two bytes wait unread
    CHECK(blocks(body) == std::vector<std::pair<uint32_t, uint32_t>>{{2, 3}, {4, 5}});
    send(kData, 1, "b");
    CHECK(blocks(peer.got.back().second) == std::vector<std::pair<uint32_t, uint32_t>>{{1, 3}, {4, 5}});
    send(kData, 0, "a");
    CHECK(peer.got.back().first.type == kSack);
    CHECK(peer.got.back().first.ack == 3);
    send(kData, 3, "d");
    CHECK(peer.got.back().first.type == 0);
    CHECK(peer.got.back().first.ack == 5);
    CHECK(peer.got.back().second.empty());
    CHECK(as_chars(in.kept) == "abcde");
  }
  SECTION("duplicates are ACKed but delivered once") {
    send(kData, 0, "a");
    send(kData, 0, "a");
    CHECK(peer.got.size() == 2);
    CHECK(peer.got.back().first.ack == 1);
    CHECK(as_chars(in.kept) == "a");
  }
  SECTION("a HEARTBEAT gets an ACK; a MESSAGE is delivered, not ACKed") {
    send(kHeartbeat, 0, "");
    CHECK(peer.count(0) == 1);
    send(kMessage, 0, "hello");
    CHECK(peer.got.size() == 1);
    REQUIRE(messages.size() == 1);
    CHECK(as_chars(messages[0]) == "hello");
    CHECK(in.kept.empty());
  }
  SECTION("padding before the payload is skipped, unknown type bits ignored") {
    Bytes body{0, 0, 0, 'x', 'y'};
    peer.send(a.address, Header{kData | 0x40 | 0x80, 3, s->id(), kDefaultWindow, 0, 0}, body);
    net.run_for(5);
    CHECK(as_chars(in.kept) == "xy");
    CHECK(peer.got.back().first.ack == 1);
  }
  SECTION("writes coalesce; DATA and END take a seq, ACK, MESSAGE and HEARTBEAT answers do not") {
    s->write(text("ab"));
    s->write(text("cd"));
    s->write(Bytes(3000, 'z'));
    net.run_for(1);
    REQUIRE(peer.got.size() == 3);
    CHECK(peer.got[0].second.size() == kMaxPayload);
    CHECK(as_chars(ByteView(peer.got[0].second).first(5)) == "abcdz");
    CHECK(peer.got[1].second.size() == kMaxPayload);
    CHECK(peer.got[2].second.size() == 3004 - 2 * kMaxPayload);
    for (uint32_t i = 0; i < 3; i++) {
      CHECK(peer.got[i].first.type == kData);
      CHECK(peer.got[i].first.seq == i);
      CHECK(peer.got[i].first.id == 1234);
    }
    CHECK(s->buffered() == 3004);
    s->send_message(text("m"));
    s->end();
    net.run_for(1);
    REQUIRE(peer.got.size() == 5);
    CHECK(peer.got[3].first.type == kMessage);
    CHECK(peer.got[3].first.seq == 3);
    CHECK(peer.got[4].first.type == kEnd);
    CHECK(peer.got[4].first.seq == 3);
    CHECK(peer.got[4].second.empty());
    send(0, 0, "", 4);  // everything acked: a state packet confirms
    CHECK(s->buffered() == 0);
    REQUIRE(peer.got.size() == 6);
    CHECK(peer.got[5].first.type == 0);
    CHECK(peer.got[5].first.seq == 4);
    s->destroy();
    net.run_for(1);
    REQUIRE(peer.got.size() == 7);
    CHECK(peer.got[6].first.type == kDestroy);
    CHECK(peer.got[6].first.seq == 4);
    CHECK(s->closed());
    CHECK_FALSE(in.closed);
  }
  SECTION("SACK blocks outside what we sent are ignored") {
    s->write(Bytes(3 * kMaxPayload, 'q'));
    net.run_for(1);
    Bytes bogus;
    for (uint32_t v : {1u, 9u, 2u, 1u, 0xfffffff0u, 2u, 2u, 3u}) {
      for (int i = 0; i < 4; i++) bogus.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    peer.send(a.address, Header{kSack, 0, s->id(), kDefaultWindow, 0, 0}, bogus);
    net.run_for(1);
    CHECK(s->buffered() == 2 * kMaxPayload);  // only [2, 3) counted
  }
}

TEST_CASE("udx: a cleanly closed stream still re-ACKs the peer's END", "[udx]") {
  SimNetwork net(10, {.min_delay_ms = 1, .max_delay_ms = 1});
  Host a(net, sim_address(1));
  RawPeer peer(net, sim_address(2));
  auto s = a.mux->create_stream();
  Inbox in;
  in.attach(*s);
  s->connect(peer.address, 1234);
  s->end();
  net.run_for(5);
  REQUIRE(peer.count(kEnd) == 1);
  // The peer acks our END and ends too; we ACK it and are done.
  peer.send(a.address, Header{kEnd, 0, s->id(), kDefaultWindow, 0, 1});
  net.run_for(5);
  CHECK(in.ended);
  CHECK(in.closed == "");
  REQUIRE(peer.count(0) == 1);
  // Our ACK "was lost": the peer sends its END again and still gets one.
  peer.send(a.address, Header{kEnd, 0, s->id(), kDefaultWindow, 0, 1});
  net.run_for(5);
  REQUIRE(peer.count(0) == 2);
  CHECK(peer.got.back().first.ack == 1);
  CHECK(peer.got.back().first.seq == 1);
  CHECK(a.passed == 0);
}

TEST_CASE("udx: the Mux takes only UDX packets for its live streams", "[udx]") {
  SimNetwork net(11);
  auto socket = net.open_socket(sim_address(1));
  Mux mux(net, *socket);
  auto s = mux.create_stream(), t = mux.create_stream();
  CHECK(s->id() != t->id());
  Address from = sim_address(2);
  Bytes ack;
  write_header(ack, Header{0, 0, s->id(), kDefaultWindow, 0, 0});
  CHECK(mux.handle(from, ack));
  CHECK_FALSE(mux.handle(from, ByteView(ack).first(kHeaderSize - 1)));
  Bytes other = ack;
  other[0] = 0x03;  // a dht-rpc request
  CHECK_FALSE(mux.handle(from, other));
  other = ack;
  other[1] = 2;  // another version
  CHECK_FALSE(mux.handle(from, other));
  other = ack;
  other[4] ^= 1;  // nobody's id
  CHECK_FALSE(mux.handle(from, other));
  CHECK_FALSE(mux.handle(from, Bytes{0x00}));  // a holepunch probe
  s.reset();
  CHECK_FALSE(mux.handle(from, ack));
}

TEST_CASE("udx: callbacks may destroy their stream", "[udx]") {
  SimNetwork net(13, {.min_delay_ms = 1, .max_delay_ms = 20});
  Pair p(net);
  p.connect();
  write_random(*p.sa, 200'000, 13);
  write_random(*p.sb, 200'000, 14);

  SECTION("in on_data") {
    p.sb->on_data = [&](ByteView) { p.sb.reset(); };
    REQUIRE(net.run_until([&] { return p.ia.closed.has_value(); }, 10'000));
    CHECK(*p.ia.closed == "connection reset by peer");
  }
  SECTION("in on_end and on_close") {
    p.sa->end();
    p.sb->end();
    p.sa->on_end = [&] { p.sa->write(text("after end")); };
    p.sa->on_close = [&](const std::string& e) {
      p.ia.closed = e;
      p.sa.reset();
    };
    p.sb->on_end = [&] { p.sb.reset(); };  // the peer gets a DESTROY or its END ACKed; both are fine
    REQUIRE(net.run_until([&] { return !p.sa && !p.sb; }, 60'000));
  }
  SECTION("in on_firewall") {
    Host c(net, sim_address(3));
    auto sc = c.mux->create_stream();
    sc->connect(p.b.address, p.sb->id());
    sc->write(text("intruder"));
    p.sb->on_firewall = [&](const Address&) {
      p.sb.reset();
      return true;
    };
    REQUIRE(net.run_until([&] { return !p.sb; }, 10'000));
  }
  net.run_for(60'000);  // no timer of a dead stream may fire
}

TEST_CASE("udx: hostile datagrams neither crash nor bloat a stream, and it still works", "[udx]") {
  SimNetwork net(11, {.loss = 0.01, .min_delay_ms = 1, .max_delay_ms = 20});
  Pair p(net);
  RawPeer evil(net, sim_address(66));
  p.connect();
  // The real stream hears only its peer; a victim stream is connected to the
  // attacker and so takes everything it sends.
  int rejected = 0;
  p.sb->on_firewall = [&](const Address&) {
    rejected++;
    return false;
  };
  constexpr uint32_t kVictimWindow = 64 * 1024;
  auto victim = p.b.mux->create_stream();
  victim->set_receive_window(kVictimWindow);
  victim->connect(evil.address, 99);
  victim->write(Bytes(200'000, 'v'));

  std::mt19937 rng(66);
  auto junk = [&](uint32_t id) {
    Bytes out;
    uint8_t types[] = {0, kData, kEnd, kSack, kMessage, kHeartbeat, kData | kSack, 0xc1, 0xff & ~kDestroy};
    Header h{types[rng() % std::size(types)], 0, id, static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()),
             static_cast<uint32_t>(rng())};
    switch (rng() % 6) {
      case 0:  // truncated or garbage
        out.resize(rng() % 24);
        for (auto& b : out) b = static_cast<uint8_t>(rng());
        if (out.size() >= 2) out[0] = kMagic, out[1] = kVersion;
        return out;
      case 1:  // plausible seq and ack, a full payload
        h.seq = rng() % 300;
        h.ack = rng() % 200;
        break;
      case 2:  // a flood of SACK blocks, some inside what the victim sent
        h.type = kSack;
        h.ack = rng() % 100;
        break;
      case 3:  // a bad data_offset
        h.data_offset = static_cast<uint8_t>(rng());
        break;
      default:  // huge seq jumps
        break;
    }
    write_header(out, h);
    size_t len = rng() % 1200;
    for (size_t i = 0; i < len; i++) out.push_back(static_cast<uint8_t>(h.type == kSack && i % 4 ? 0 : rng() % 200));
    return out;
  };

  for (int i = 0; i < 20'000; i++) {
    net.inject(evil.address, p.b.address, junk(victim->id()));
    if (i % 4 == 0) net.inject(evil.address, p.b.address, junk(p.sb->id()));
    if (i % 8 == 0) net.inject(evil.address, p.b.address, junk(static_cast<uint32_t>(rng())));
    if (i % 50 == 0) net.run_for(5);
  }
  net.run_for(100);
  CHECK(rejected > 3000);  // all that parsed as UDX for it
  CHECK(p.b.passed > 2000);  // garbage and unknown ids went to the DHT
  // The victim answered within its bounds: <= 50 SACK blocks, a buffer no
  // bigger than its window.
  size_t sacks = 0;
  for (const auto& [h, body] : evil.got) {
    CHECK(h.rwnd <= kVictimWindow);
    if (h.type != kSack) continue;
    sacks++;
    CHECK(body.size() <= kMaxSacks * 8);
    CHECK(body.size() % 8 == 0);
  }
  CHECK(sacks > 0);

  // The real streams still carry data both ways and close cleanly.
  Checksum to_b = write_random(*p.sa, 1 << 20, 21), to_a = write_random(*p.sb, 1 << 20, 22);
  for (int i = 0; i < 1000 && !(p.ia.sum.bytes == 1 << 20 && p.ib.sum.bytes == 1 << 20); i++) {
    for (int j = 0; j < 5; j++) net.inject(evil.address, p.b.address, junk(p.sb->id()));
    net.run_for(100);
  }
  CHECK(p.ib.sum.hash == to_b.hash);
  CHECK(p.ia.sum.hash == to_a.hash);
  p.sa->end();
  p.sb->end();
  REQUIRE(net.run_until([&] { return p.ia.closed && p.ib.closed; }, 60'000));
  CHECK(*p.ia.closed == "");
  CHECK(*p.ib.closed == "");
}
