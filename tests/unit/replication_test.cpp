// The replication stack without sockets: two secret streams, muxes and
// sessions wired back to back in memory.
#include <catch2/catch.hpp>

#include <cstdio>
#include <random>

#include "core/log.h"
#include "net/protomux.h"
#include "net/secret_stream.h"
#include "core/bee.h"
#include "net/bee_extension.h"
#include "net/session.h"
#include "test_util.h"

using namespace p2p;

namespace {

// Moves bytes between two secret streams, optionally in small random pieces.
struct Pipe {
  net::SecretStream a{true, crypto::random_key_pair()};
  net::SecretStream b{false, crypto::random_key_pair()};
  std::vector<Bytes> to_a, to_b;  // messages delivered
  std::mt19937 rng{42};
  bool chop = false;

  Status feed(net::SecretStream& from, net::SecretStream& to, std::vector<Bytes>& sink) {
    Bytes out = from.take_output();
    size_t pos = 0;
    while (pos < out.size()) {
      size_t n = chop ? std::min<size_t>(out.size() - pos, 1 + rng() % 7) : out.size() - pos;
      P2P_TRY(to.receive(ByteView(out.data() + pos, n), [&](ByteView m) {
        sink.push_back(to_bytes(m));
        return Status{};
      }));
      pos += n;
    }
    return {};
  }
  Status pump() {
    for (int i = 0; i < 10 && (a.has_output() || b.has_output()); i++) {
      P2P_TRY(feed(a, b, to_b));
      P2P_TRY(feed(b, a, to_a));
    }
    return {};
  }
};

}  // namespace

TEST_CASE("secret stream: handshake, messages both ways, keep-alives dropped", "[net]") {
  for (bool chop : {false, true}) {
    Pipe p;
    p.chop = chop;
    REQUIRE(p.a.send(as_bytes("early")).ok());  // queued until the handshake ends
    REQUIRE(p.a.start().ok());
    REQUIRE(p.pump().ok());
    REQUIRE(p.a.established());
    REQUIRE(p.b.established());
    CHECK(p.a.handshake().hash == p.b.handshake().hash);
    REQUIRE(p.b.send(as_bytes("hello")).ok());
    REQUIRE(p.b.send({}).ok());  // keep-alive
    Bytes big(100000, 7);
    REQUIRE(p.a.send(big).ok());
    REQUIRE(p.pump().ok());
    REQUIRE(p.to_b.size() == 2);
    CHECK(p.to_b[0] == to_bytes(as_bytes("early")));
    CHECK(p.to_b[1] == big);
    REQUIRE(p.to_a.size() == 1);
    CHECK(p.to_a[0] == to_bytes(as_bytes("hello")));
  }
}

TEST_CASE("secret stream: a tampered or reordered message is refused", "[net]") {
  Pipe p;
  REQUIRE(p.a.start().ok());
  REQUIRE(p.pump().ok());
  REQUIRE(p.a.send(as_bytes("one")).ok());
  Bytes out = p.a.take_output();
  out[out.size() - 1] ^= 1;
  auto ignore = [](ByteView) { return Status{}; };
  CHECK_FALSE(p.b.receive(out, ignore).ok());

  Pipe q;
  REQUIRE(q.a.start().ok());
  REQUIRE(q.pump().ok());
  REQUIRE(q.a.send(as_bytes("first")).ok());
  Bytes first = q.a.take_output();
  REQUIRE(q.a.send(as_bytes("second")).ok());
  Bytes second = q.a.take_output();
  CHECK_FALSE(q.b.receive(second, ignore).ok());  // out of order: the secretstream state differs
  (void)first;
}

TEST_CASE("secret stream: garbage before the handshake is an error, never a crash", "[net]") {
  std::mt19937 rng(1);
  for (int i = 0; i < 200; i++) {
    net::SecretStream s(false, crypto::random_key_pair());
    Bytes junk(1 + rng() % 300);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    (void)s.receive(junk, [](ByteView) { return Status{}; });  // must not crash or hang
  }
}

namespace {
struct Recorder : net::ChannelHandler {
  std::vector<std::pair<uint64_t, Bytes>> got;
  bool opened = false, closed = false;
  Status on_open(uint64_t, ByteView) override {
    opened = true;
    return {};
  }
  Status on_message(uint64_t type, ByteView payload) override {
    got.emplace_back(type, to_bytes(payload));
    return {};
  }
  void on_close() override { closed = true; }
};
}  // namespace

namespace {
// Two muxes back to back, a opening channels 1 and 2, which b accepts.
struct MuxPair {
  std::vector<Bytes> ab, ba;  // frames in flight
  net::Mux a{[this](ByteView f) { ab.push_back(to_bytes(f)); }};
  net::Mux b{[this](ByteView f) { ba.push_back(to_bytes(f)); }};
  Recorder ra1, ra2, rb1, rb2;
  Bytes id1{1}, id2{2};
  uint64_t c1 = 0, c2 = 0;
  MuxPair() {
    b.on_pair([this](const std::string& protocol, ByteView id) {
      (void)b.open(protocol, id, {}, id[0] == 1 ? &rb1 : &rb2);
    });
    c1 = *a.open("test", id1, {}, &ra1);
    c2 = *a.open("test", id2, {}, &ra2);
    deliver(ab, b);
    deliver(ba, a);
  }
  static void deliver(std::vector<Bytes>& q, net::Mux& to) {
    for (auto& f : q) REQUIRE(to.receive(f).ok());
    q.clear();
  }
};
}  // namespace

TEST_CASE("protomux: open, batches across channels, close, reject", "[net]") {
  MuxPair m;
  auto& [ab, ba, a, b, ra1, ra2, rb1, rb2, id1, id2, c1, c2] = m;
  auto deliver = MuxPair::deliver;
  REQUIRE(ra1.opened);
  REQUIRE(rb2.opened);
  a.cork();
  a.send(c1, 3, as_bytes("x"));
  a.send(c2, 4, as_bytes("yy"));
  a.send(c1, 5, {});
  a.uncork();
  REQUIRE(ab.size() == 1);  // one batch frame
  deliver(ab, b);
  REQUIRE(rb1.got.size() == 2);
  REQUIRE(rb2.got.size() == 1);
  CHECK(rb2.got[0].first == 4);
  CHECK(rb2.got[0].second == to_bytes(as_bytes("yy")));
  a.close(c1);
  deliver(ab, b);
  CHECK(rb1.closed);
  // An open nobody pairs is rejected, and the opener hears on_close.
  Recorder lonely;
  net::Mux c([&](ByteView f) { ba.push_back(to_bytes(f)); });
  (void)a.open("unknown", id1, {}, &lonely);
  for (auto& f : ab) REQUIRE(c.receive(f).ok());
  ab.clear();
  deliver(ba, a);
  CHECK(lonely.closed);
}

TEST_CASE("protomux: a batch waits while the output is full, and resumes in order", "[net]") {
  MuxPair m;
  auto& [ab, ba, a, b, ra1, ra2, rb1, rb2, id1, id2, c1, c2] = m;
  a.cork();
  for (uint64_t i = 0; i < 20; i++) a.send(i % 3 == 0 ? c2 : c1, i, as_bytes(std::to_string(i)));
  a.uncork();
  REQUIRE(ab.size() == 1);
  // The output is "full" after every second message delivered.
  size_t delivered = 0;
  b.set_backpressure([&] { return (rb1.got.size() + rb2.got.size()) >= delivered + 2; });
  REQUIRE(b.receive(ab[0]).ok());
  int resumes = 0;
  while (b.holding() && resumes < 50) {
    CHECK(rb1.got.size() + rb2.got.size() == delivered + 2);
    delivered += 2;
    REQUIRE(b.resume().ok());
    resumes++;
  }
  CHECK_FALSE(b.holding());
  CHECK(resumes == 9);
  REQUIRE(rb1.got.size() + rb2.got.size() == 20);
  std::vector<uint64_t> order1, order2;
  for (auto& [type, payload] : rb1.got) {
    CHECK(payload == to_bytes(as_bytes(std::to_string(type))));
    order1.push_back(type);
  }
  for (auto& [type, payload] : rb2.got) order2.push_back(type);
  CHECK(std::is_sorted(order1.begin(), order1.end()));
  CHECK(order2 == std::vector<uint64_t>{0, 3, 6, 9, 12, 15, 18});
}

TEST_CASE("protomux: malformed frames are errors, never crashes", "[net]") {
  std::mt19937 rng(3);
  Recorder r;
  for (int i = 0; i < 2000; i++) {
    net::Mux m([](ByteView) {});
    m.on_pair([&](const std::string& p, ByteView id) { (void)m.open(p, id, {}, &r); });
    // Half the muxes stop batches at random (a full output), then resume them.
    if (i % 2) m.set_backpressure([&] { return rng() % 3 == 0; });
    Bytes junk(rng() % 64);
    for (auto& b : junk) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() % 4 : rng());
    (void)m.receive(junk);
    for (int k = 0; k < 100 && m.holding(); k++) (void)m.resume();
    CHECK_FALSE(m.holding());
  }
}

// Two muxes over one in-memory secret stream pair.
struct Linked {
  Pipe p;
  net::Mux ma{[this](ByteView f) { REQUIRE(p.a.send(f).ok()); }};
  net::Mux mb{[this](ByteView f) { REQUIRE(p.b.send(f).ok()); }};
  Linked() {
    REQUIRE(p.a.start().ok());
    REQUIRE(p.pump().ok());
  }
  // Delivers everything in flight, both ways, until both sides are quiet.
  void run() {
    for (int i = 0; i < 100 && (p.a.has_output() || p.b.has_output()); i++) {
      REQUIRE(p.feed(p.a, p.b, p.to_b).ok());
      for (auto& m : p.to_b) REQUIRE(mb.receive(m).ok());
      p.to_b.clear();
      REQUIRE(mb.drain().ok());
      REQUIRE(p.feed(p.b, p.a, p.to_a).ok());
      for (auto& m : p.to_a) REQUIRE(ma.receive(m).ok());
      p.to_a.clear();
      REQUIRE(ma.drain().ok());
    }
  }
};

TEST_CASE("sessions: a replica downloads, verifies and hears live appends", "[net]") {
  auto writer_store = storage::open_memory(), reader_store = storage::open_memory();
  auto writer = std::move(*Core::open_writable(*writer_store, crypto::random_key_pair()));
  for (int i = 0; i < 300; i++) REQUIRE(writer->append(as_bytes("block " + std::to_string(i))).ok());
  auto replica = std::move(*Core::open_replica(*reader_store, writer->key()));

  Linked l;
  auto run = [&] { l.run(); };
  net::CoreSession serving(l.mb, *writer, l.p.b.handshake(), false);
  net::CoreSession reading(l.ma, *replica, l.p.a.handshake(), true);
  REQUIRE(serving.open().ok());
  REQUIRE(reading.open().ok());
  run();
  REQUIRE(reading.remote_synced());
  CHECK(reading.remote_length() == 300);
  REQUIRE(reading.request_upgrade().ok());
  run();
  CHECK(replica->length() == 300);
  for (uint64_t i : {0, 17, 299}) reading.want(i);
  REQUIRE(reading.pump_requests().ok());
  run();
  CHECK(to_bytes(*replica->get(17)) == to_bytes(as_bytes("block 17")));
  CHECK(*replica->has(299));
  CHECK_FALSE(*replica->has(18));
  CHECK(reading.stats().blocks_received == 3);
  CHECK(serving.stats().blocks_sent == 3);

  // A live append: the writer tells the peer, which upgrades on request.
  REQUIRE(writer->append(as_bytes("late")).ok());
  REQUIRE(serving.notify_length().ok());
  run();
  CHECK(reading.remote_length() == 301);
  reading.want(300);
  REQUIRE(reading.pump_requests().ok());
  run();
  CHECK(to_bytes(*replica->get(300)) == to_bytes(as_bytes("late")));

  // Cancelled before it was sent, and after: neither block is stored, and a
  // late reply to the cancelled request is ignored.
  reading.want(40);
  reading.cancel(40);
  REQUIRE(reading.pump_requests().ok());
  CHECK(reading.inflight() == 0);
  reading.want(41);
  REQUIRE(reading.pump_requests().ok());
  CHECK(reading.inflight() == 1);
  reading.cancel(41);
  CHECK(reading.inflight() == 0);
  uint64_t before = reading.stats().blocks_received;
  run();
  CHECK(reading.stats().blocks_received == before);
  CHECK_FALSE(*replica->has(40));
  CHECK_FALSE(*replica->has(41));
  CHECK_FALSE(reading.closed());
  reading.want(41);  // and it can be asked for again
  REQUIRE(reading.pump_requests().ok());
  run();
  CHECK(*replica->has(41));
}

TEST_CASE("sessions: extension messages reach their handler by name", "[net]") {
  auto store = storage::open_memory(), other = storage::open_memory();
  auto writer = std::move(*Core::open_writable(*store, crypto::random_key_pair()));
  REQUIRE(writer->append(as_bytes("x")).ok());
  auto replica = std::move(*Core::open_replica(*other, writer->key()));
  Linked l;
  net::CoreSession serving(l.mb, *writer, l.p.b.handshake(), false);
  net::CoreSession reading(l.ma, *replica, l.p.a.handshake(), true);
  std::vector<std::string> got;
  serving.on_extension("echo", [&](net::CoreSession& s, ByteView m) {
    got.push_back("echo:" + std::string(as_chars(m)));
    s.send_extension("echo", m);
  });
  serving.on_extension("other", [&](net::CoreSession&, ByteView m) { got.push_back("other:" + std::string(as_chars(m))); });
  std::vector<std::string> echoed;
  reading.on_extension("echo", [&](net::CoreSession&, ByteView m) { echoed.emplace_back(as_chars(m)); });
  REQUIRE(serving.open().ok());
  REQUIRE(reading.open().ok());
  l.run();
  // The second "echo" goes with an empty name (the reference's repeat rule).
  for (const char* m : {"one", "two"}) reading.send_extension("echo", as_bytes(m));
  reading.send_extension("unknown", as_bytes("ignored"));
  reading.send_extension("other", as_bytes("three"));
  reading.send_extension("echo", as_bytes("four"));
  l.run();
  CHECK(got == std::vector<std::string>{"echo:one", "echo:two", "other:three", "echo:four"});
  CHECK(echoed == std::vector<std::string>{"one", "two", "four"});
  CHECK(replica->length() == 0);  // extensions never touch the core
}

TEST_CASE("hyperbee extension: a get names the blocks its walk reads; the reader fetches them at once", "[net][bee]") {
  auto store = storage::open_memory(), other = storage::open_memory();
  auto writer = std::move(*Core::open_writable(*store, crypto::random_key_pair()));
  Bee bee(*writer);
  {
    auto batch = std::move(*bee.batch());
    for (int i = 0; i < 3000; i++) {
      char k[16];
      std::snprintf(k, sizeof k, "key-%05d", i * 7919 % 3000);
      REQUIRE(batch->put(as_bytes(k), as_bytes(std::string("value of ") + k)).ok());
    }
    REQUIRE(batch->flush().ok());
  }
  // Single puts after the batch, so the tree spans many blocks.
  for (int i = 0; i < 200; i++) REQUIRE(bee.put(as_bytes("late-" + std::to_string(i)), as_bytes("v")).ok());
  auto replica = std::move(*Core::open_replica(*other, writer->key()));

  Linked l;
  net::CoreSession serving(l.mb, *writer, l.p.b.handshake(), false);
  net::CoreSession reading(l.ma, *replica, l.p.a.handshake(), true);
  net::use_bee_extension(serving);
  REQUIRE(serving.open().ok());
  REQUIRE(reading.open().ok());
  l.run();
  REQUIRE(reading.request_upgrade().ok());
  l.run();
  REQUIRE(replica->length() == writer->length());
  uint64_t version = replica->length();

  net::prefetch_bee_get(reading, version, as_bytes("key-01234"));
  l.run();
  uint64_t fetched = reading.stats().blocks_received;
  CHECK(fetched >= 3);
  CHECK(fetched <= 64);
  // Offline now: every block the lookup reads came with the answer.
  Bee offline(*replica);
  auto hit = offline.get(as_bytes("key-01234"));
  INFO(hit.status().message());
  REQUIRE(hit.ok());
  REQUIRE(*hit);
  CHECK(to_bytes(*(*hit)->value) == to_bytes(as_bytes("value of key-01234")));

  // A range: its first batch of blocks arrives the same way.
  BeeRange range;
  range.gte = to_bytes(as_bytes("key-02000"));
  range.limit = 20;
  net::prefetch_bee_range(reading, version, range);
  l.run();
  std::vector<std::string> keys;
  REQUIRE(offline.range(range, [&](const BeeEntry& e) {
    keys.emplace_back(as_chars(e.key));
    return true;
  }).ok());
  REQUIRE(keys.size() == 20);
  CHECK(keys.front() == "key-02000");

  // Garbage under the extension's name is dropped; the session goes on.
  reading.send_extension("hyperbee", as_bytes("\x05\xff\xff"));
  net::prefetch_bee_get(reading, version + 100, as_bytes("key-00001"));  // a version the peer lacks: no answer
  uint64_t before = reading.stats().blocks_received;
  l.run();
  CHECK(reading.stats().blocks_received == before);
  CHECK_FALSE(reading.closed());
}

TEST_CASE("sessions: big batches are verified and stored beside the reading, in order", "[net][replication]") {
  auto writer_store = storage::open_memory();
  auto writer = std::move(*Core::open_writable(*writer_store, crypto::random_key_pair()));
  const int n = 200;
  std::mt19937_64 rng(5);
  std::vector<Bytes> blocks(n, Bytes(64 * 1024));
  for (Bytes& b : blocks)
    for (auto& x : b) x = static_cast<uint8_t>(rng());
  std::vector<ByteView> views(blocks.begin(), blocks.end());
  REQUIRE(writer->append(views).ok());
  test::TempDir dir;
  auto reader_store = std::move(*storage::open_lmdb(dir.path));
  auto replica = std::move(*Core::open_replica(*reader_store, writer->key()));

  Linked l;
  net::CoreSession serving(l.mb, *writer, l.p.b.handshake(), false);
  net::CoreSession reading(l.ma, *replica, l.p.a.handshake(), true);
  std::vector<uint64_t> reported;
  net::CoreSession::Hooks hooks;
  hooks.on_block = [&](uint64_t i) { reported.push_back(i); };
  reading.set_hooks(hooks);
  REQUIRE(serving.open().ok());
  REQUIRE(reading.open().ok());
  l.run();
  REQUIRE(reading.request_upgrade().ok());
  l.run();
  REQUIRE(replica->length() == n);
  for (uint64_t i = 0; i < n; i++) reading.want(i);
  REQUIRE(reading.pump_requests().ok());
  // Replies arrive 80 at a time (5 MiB): more are on their way at each drain.
  for (int round = 0; round < 20 && (l.p.a.has_output() || l.p.b.has_output()); round++) {
    REQUIRE(l.p.feed(l.p.a, l.p.b, l.p.to_b).ok());
    for (auto& m : l.p.to_b) REQUIRE(l.mb.receive(m).ok());
    l.p.to_b.clear();
    REQUIRE(l.mb.drain().ok());
    REQUIRE(l.p.feed(l.p.b, l.p.a, l.p.to_a).ok());
    for (size_t i = 0; i < l.p.to_a.size(); i++) {
      REQUIRE(l.ma.receive(l.p.to_a[i]).ok());
      if (i % 80 == 79 || i + 1 == l.p.to_a.size()) REQUIRE(l.ma.drain().ok());
    }
    l.p.to_a.clear();
  }
  CHECK(reading.stats().batches_stored_aside >= 1);
  CHECK(reading.stats().blocks_received == n);
  CHECK(reading.inflight() == 0);
  REQUIRE(reported.size() == n);
  CHECK(std::is_sorted(reported.begin(), reported.end()));
  for (int i = 0; i < n; i += 37) CHECK(*replica->get(i) == blocks[i]);
  CHECK(replica->verify().ok());
}
