// Bulk transfer over one UDX stream on loopback, the p2p side of
// bench/js-extra/udx-bulk.mjs, with a plain TCP stream as the baseline.
// One process, one libuv loop: two UDP sockets on 127.0.0.1 with a udx::Mux
// each and one stream each, connected to each other; the sender writes MB MiB
// (refilled while buffered() is under 4 MiB) and the clock stops when the
// receiver has every byte (each byte is compared with the pattern).
// Then the same through uv_tcp (listen + connect, backpressure through
// uv_stream_get_write_queue_size). Prints one JSON line; MB/s is MiB/s.
//   udx_bench [MB=256]
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "net/dht_uv.h"
#include "net/udx.h"

using namespace p2p;

namespace {

constexpr size_t kPattern = 1 << 20;  // the stream repeats this many pseudo-random bytes
constexpr size_t kChunk = 64 * 1024;  // per write
constexpr size_t kHighWater = 4 * 1024 * 1024;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void die(const std::string& m) {
  std::cerr << "udx_bench: " << m << "\n";
  std::exit(1);
}

Bytes make_pattern() {
  Bytes b(kPattern);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& c : b) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<uint8_t>(x);
  }
  return b;
}

// Compares every received byte with the pattern at its stream offset: a
// lost, duplicated or reordered byte fails.
struct Checker {
  const Bytes& pattern;
  uint64_t pos = 0;
  bool ok = true;
  void add(ByteView d) {
    for (size_t i = 0; i < d.size();) {
      size_t at = static_cast<size_t>(pos % kPattern);
      size_t n = std::min(d.size() - i, kPattern - at);
      if (ok && std::memcmp(d.data() + i, pattern.data() + at, n) != 0) ok = false;
      i += n;
      pos += n;
    }
  }
};

// The bytes the sender writes: the pattern, over and over, up to total.
struct Source {
  const Bytes& pattern;
  uint64_t total, written = 0;
  ByteView next() {
    size_t at = static_cast<size_t>(written % kPattern);
    size_t n = static_cast<size_t>(std::min<uint64_t>({kChunk, kPattern - at, total - written}));
    ByteView v(pattern.data() + at, n);
    written += n;
    return v;
  }
  bool done() const { return written == total; }
};

struct UdxResult {
  double seconds = 0;
  uint64_t retransmits = 0, packets_sent = 0;
};

UdxResult run_udx(uv_loop_t* loop, const Bytes& pattern, uint64_t total) {
  dht::UvClock clock(loop);
  auto sa = dht::UvUdpSocket::bind(loop, "127.0.0.1", 0);
  auto sb = dht::UvUdpSocket::bind(loop, "127.0.0.1", 0);
  if (!sa.ok() || !sb.ok()) die("cannot bind UDP on 127.0.0.1");
  udx::Mux ma(clock, **sa), mb(clock, **sb);
  (*sa)->set_receiver([&](const dht::Address& from, ByteView d) { ma.handle(from, d); });
  (*sb)->set_receiver([&](const dht::Address& from, ByteView d) { mb.handle(from, d); });
  auto tx = ma.create_stream();
  auto rx = mb.create_stream();
  tx->connect((*sb)->local_address(), rx->id());
  rx->connect((*sa)->local_address(), tx->id());

  Source src{pattern, total};
  Checker got{pattern};
  uint64_t received = 0;
  double t0 = 0, t1 = 0;
  std::string error;
  rx->on_data = [&](ByteView d) {
    got.add(d);
    received += d.size();
    if (received == total) {
      t1 = now_s();
      uv_stop(loop);
    }
  };
  rx->on_close = [&](const std::string& e) {
    if (!e.empty()) error = "receiver closed: " + e, uv_stop(loop);
  };
  tx->on_close = [&](const std::string& e) {
    if (!e.empty()) error = "sender closed: " + e, uv_stop(loop);
  };
  auto fill = [&] {
    while (!src.done() && tx->buffered() < kHighWater) tx->write(src.next());
  };
  // Refill after every turn of the loop (acknowledgements free the buffer).
  uv_check_t check;
  uv_check_init(loop, &check);
  check.data = &fill;
  uv_check_start(&check, [](uv_check_t* c) { (*static_cast<decltype(fill)*>(c->data))(); });

  t0 = now_s();
  fill();
  uv_run(loop, UV_RUN_DEFAULT);
  uv_check_stop(&check);
  uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
  if (!error.empty()) die(error);
  if (received != total || !got.ok) die("UDX: the receiver's bytes differ from the sender's");
  UdxResult r{t1 - t0, tx->stats().retransmits, tx->stats().packets_sent};
  tx->destroy();
  rx->destroy();
  tx.reset();
  rx.reset();
  return r;
}

// ---- TCP ----

struct Tcp {
  uv_loop_t* loop;
  Source src;
  uv_tcp_t server{}, client{}, accepted{};
  uv_connect_t connect{};
  Checker got{src.pattern};
  uint64_t received = 0;
  double t1 = 0;
  Bytes readbuf = Bytes(256 * 1024);

  void fill() {
    auto* s = reinterpret_cast<uv_stream_t*>(&client);
    while (!src.done() && uv_stream_get_write_queue_size(s) < kHighWater) {
      ByteView v = src.next();
      auto* req = new uv_write_t;
      req->data = this;
      uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(v.data())), static_cast<unsigned>(v.size()));
      int rc = uv_write(req, s, &buf, 1, [](uv_write_t* w, int status) {
        Tcp* t = static_cast<Tcp*>(w->data);
        delete w;
        if (status < 0) die(std::string("TCP write: ") + uv_strerror(status));
        t->fill();
      });
      if (rc < 0) die(std::string("TCP write: ") + uv_strerror(rc));
    }
  }
};

double run_tcp(uv_loop_t* loop, const Bytes& pattern, uint64_t total) {
  Tcp t{loop, Source{pattern, total}};
  uv_tcp_init(loop, &t.server);
  uv_tcp_init(loop, &t.client);
  uv_tcp_init(loop, &t.accepted);
  t.server.data = t.client.data = t.accepted.data = t.connect.data = &t;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  if (uv_tcp_bind(&t.server, reinterpret_cast<const sockaddr*>(&addr), 0) < 0) die("TCP bind");
  int len = sizeof addr;
  uv_tcp_getsockname(&t.server, reinterpret_cast<sockaddr*>(&addr), &len);
  uv_listen(reinterpret_cast<uv_stream_t*>(&t.server), 1, [](uv_stream_t* server, int status) {
    Tcp* t = static_cast<Tcp*>(server->data);
    if (status < 0 || uv_accept(server, reinterpret_cast<uv_stream_t*>(&t->accepted)) < 0) die("TCP accept");
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&t->accepted),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          Tcp* t = static_cast<Tcp*>(h->data);
          *buf = uv_buf_init(reinterpret_cast<char*>(t->readbuf.data()), static_cast<unsigned>(t->readbuf.size()));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          Tcp* t = static_cast<Tcp*>(s->data);
          if (n < 0) die(std::string("TCP read: ") + uv_strerror(static_cast<int>(n)));
          t->got.add(ByteView(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n)));
          t->received += static_cast<uint64_t>(n);
          if (t->received == t->src.total) {
            t->t1 = now_s();
            uv_stop(t->loop);
          }
        });
  });
  double t0 = now_s();
  uv_tcp_connect(&t.connect, &t.client, reinterpret_cast<const sockaddr*>(&addr), [](uv_connect_t* c, int status) {
    if (status < 0) die(std::string("TCP connect: ") + uv_strerror(status));
    static_cast<Tcp*>(c->data)->fill();
  });
  uv_run(loop, UV_RUN_DEFAULT);
  if (t.received != total || !t.got.ok) die("TCP: the receiver's bytes differ from the sender's");
  for (uv_tcp_t* h : {&t.server, &t.client, &t.accepted}) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  return t.t1 - t0;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mb = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256;
  uint64_t total = mb << 20;
  Bytes pattern = make_pattern();
  uv_loop_t loop;
  uv_loop_init(&loop);
  UdxResult u = run_udx(&loop, pattern, total);
  uv_run(&loop, UV_RUN_DEFAULT);  // the sockets' and timers' handles close
  double tcp_s = run_tcp(&loop, pattern, total);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  nlohmann::json j = {{"bench", "udx-bulk"},
                      {"impl", "p2p"},
                      {"MB", mb},
                      {"udx_MB_per_s", static_cast<double>(mb) / u.seconds},
                      {"tcp_MB_per_s", static_cast<double>(mb) / tcp_s},
                      {"udx_s", u.seconds},
                      {"tcp_s", tcp_s},
                      {"retransmits", u.retransmits},
                      {"packets_sent", u.packets_sent}};
  std::cout << j.dump() << std::endl;
  return 0;
}
