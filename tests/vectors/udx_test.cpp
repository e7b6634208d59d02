// UDX against the loopback capture of udx-native: headers parse and re-encode
// byte for byte, and a stream replaying either side of each captured
// conversation sends exactly the packets libudx sent.
#include <catch2/catch.hpp>

#include <set>

#include "net/dht_sim.h"
#include "net/udx.h"
#include "vectors.h"

using namespace p2p;
using namespace p2p::udx;
using nlohmann::json;

namespace {

// The UDX packets of the capture's first UDX conversation (later ones, like
// the direct scenario's late handshake, are another pair of ports).
std::vector<json> conversation(const json& scenario) {
  std::vector<json> out;
  for (const auto& p : scenario["packets"]) {
    if (p["decoded"]["kind"] != "udx") continue;
    if (!out.empty()) {
      std::set<int> ports{out[0]["src_port"].get<int>(), out[0]["dst_port"].get<int>()};
      if (!ports.count(p["src_port"].get<int>()) || !ports.count(p["dst_port"].get<int>())) continue;
    }
    out.push_back(p);
  }
  return out;
}

Address loopback(int port) { return Address{{127, 0, 0, 1}, static_cast<uint16_t>(port)}; }

struct Replay {
  std::vector<Bytes> expected, sent;
  Bytes received;
  std::optional<std::string> closed;
};

// Plays one side with our Stream: the other side's packets are injected (with
// our stream's id), our side's DATA/END/DESTROY become write/end/destroy, and
// our side's ACKs must come out by themselves.
Replay replay(const std::vector<json>& packets, int our_port) {
  dht::SimNetwork net(1, {.min_delay_ms = 0, .max_delay_ms = 0});
  int their_port = packets[0]["src_port"] == our_port ? packets[0]["dst_port"].get<int>() : packets[0]["src_port"].get<int>();
  auto ours = net.open_socket(loopback(our_port));
  auto theirs = net.open_socket(loopback(their_port));
  Mux mux(net, *ours);
  ours->set_receiver([&](const Address& from, ByteView d) { mux.handle(from, d); });
  Replay r;
  theirs->set_receiver([&](const Address&, ByteView d) { r.sent.push_back(to_bytes(d)); });
  auto stream = mux.create_stream();
  stream->on_data = [&](ByteView b) { r.received.insert(r.received.end(), b.begin(), b.end()); };
  stream->on_close = [&](const std::string& e) { r.closed = e; };
  for (const auto& p : packets) {
    Bytes bytes = test::hex(p["hex"]);
    auto h = read_header(bytes);
    REQUIRE(h);
    ByteView payload = ByteView(bytes).subspan(kHeaderSize + h->data_offset);
    if (p["src_port"] == our_port) {
      r.expected.push_back(bytes);
      if (!stream->connected()) stream->connect(loopback(their_port), h->id);
      if (h->type & kData) stream->write(payload);
      if (h->type & kEnd) stream->end();
      if (h->type & kDestroy) stream->destroy();
    } else {
      Header patched = *h;
      patched.id = stream->id();
      Bytes in;
      write_header(in, patched);
      in.insert(in.end(), bytes.begin() + kHeaderSize, bytes.end());
      net.inject(loopback(their_port), loopback(our_port), in);
    }
    net.run_for(1);
  }
  return r;
}

}  // namespace

TEST_CASE("udx vectors: captured headers parse and re-encode byte for byte", "[vectors][udx]") {
  auto v = test::load_vector("udx-connect.json");
  int packets = 0;
  for (const auto& [name, scenario] : v["scenarios"].items()) {
    for (const auto& p : scenario["packets"]) {
      const json& d = p["decoded"];
      if (d["kind"] != "udx") continue;
      Bytes bytes = test::hex(p["hex"]);
      INFO(name << " " << p["hex"].get<std::string>());
      auto h = read_header(bytes);
      REQUIRE(h);
      CHECK(h->type == d["type"].get<int>());
      CHECK(h->data_offset == d["data_offset"].get<int>());
      CHECK(h->id == d["remote_id"].get<uint32_t>());
      CHECK(h->rwnd == d["rwnd"].get<uint32_t>());
      CHECK(h->seq == d["seq"].get<uint32_t>());
      CHECK(h->ack == d["ack"].get<uint32_t>());
      CHECK(bytes.size() - kHeaderSize == d["payload_len"].get<size_t>());
      Bytes out;
      write_header(out, *h);
      out.insert(out.end(), bytes.begin() + kHeaderSize, bytes.end());
      CHECK(out == bytes);
      // Truncated it is not UDX any more.
      CHECK_FALSE(read_header(ByteView(bytes).first(kHeaderSize - 1)));
      packets++;
    }
  }
  CHECK(packets == 29);
}

TEST_CASE("udx vectors: a stream replaying either side sends what libudx sent", "[vectors][udx]") {
  auto v = test::load_vector("udx-connect.json");
  for (const auto& [name, scenario] : v["scenarios"].items()) {
    auto packets = conversation(scenario);
    REQUIRE(packets.size() >= 8);
    for (int port : {packets[0]["src_port"].get<int>(), packets[0]["dst_port"].get<int>()}) {
      INFO(name << " as port " << port);
      Replay r = replay(packets, port);
      REQUIRE(r.sent.size() == r.expected.size());
      for (size_t i = 0; i < r.sent.size(); i++) CHECK(to_hex(r.sent[i]) == to_hex(r.expected[i]));
      // What the other side sent arrived, in order.
      Bytes incoming;
      bool destroyed_by_peer = false;
      for (const auto& p : packets) {
        if (p["src_port"] == port) continue;
        Bytes bytes = test::hex(p["hex"]);
        incoming.insert(incoming.end(), bytes.begin() + kHeaderSize, bytes.end());
        destroyed_by_peer |= (read_header(bytes)->type & kDestroy) != 0;
      }
      CHECK(r.received == incoming);
      if (destroyed_by_peer) CHECK(r.closed == "connection reset by peer");
      else CHECK_FALSE(r.closed);
    }
  }
}
