#include <catch2/catch.hpp>

#include "core/log.h"
#include "net/protomux.h"
#include "net/session.h"
#include "net/wire.h"
#include "vectors.h"

using namespace p2p;

namespace {

// Records what a mux delivers on one channel.
struct Recorder : net::ChannelHandler {
  Bytes handshake;
  std::vector<std::pair<uint64_t, Bytes>> messages;
  Status on_open(uint64_t, ByteView hs) override {
    handshake = to_bytes(hs);
    return {};
  }
  Status on_message(uint64_t type, ByteView payload) override {
    messages.emplace_back(type, to_bytes(payload));
    return {};
  }
  void on_close() override {}
};

// Decodes a message and encodes it again: the bytes must not change.
Bytes reencode(uint64_t type, ByteView p) {
  using namespace net::wire;
  switch (type) {
    case kSync: return encode(*decode_sync(p));
    case kRequest: return encode(*decode_request(p));
    case kData: return encode(*decode_data(p));
    case kRange: return encode(*decode_range(p));
    case kWant: return encode(*decode_want(p));
    case kNoData: return encode(*decode_no_data(p));
    case kBitfield: return encode(*decode_bitfield(p));
    default: return to_bytes(p);
  }
}

// The writer core of hypercore.json: blocks "a".."j".
std::unique_ptr<Core> vector_writer(storage::Store& store) {
  auto v = test::load_vector("hypercore.json");
  auto kp = crypto::key_pair_from_seed(test::key32(v["keyPair"]["seed"]));
  auto core = std::move(*Core::open_writable(store, kp));
  for (char c = 'a'; c <= 'j'; c++) REQUIRE(core->append(as_bytes(std::string(1, c))).ok());
  return core;
}

}  // namespace

TEST_CASE("replication vector: frames decode and re-encode byte for byte", "[vectors][replication]") {
  auto v = test::load_vector("replication.json");
  auto dk = test::hex(v["discoveryKey"]);
  int messages = 0;
  for (const auto& frame : v["frames"]) {
    Recorder rec;
    std::vector<Bytes> sent;
    net::Mux mux([&](ByteView f) { sent.push_back(to_bytes(f)); });
    // Open our side first so the peer's frames have a channel to land on.
    REQUIRE(mux.open("hypercore/alpha", dk, {}, &rec).ok());
    Bytes bytes = test::hex(frame["bytes"]);
    if (frame["decoded"].value("control", "") != "open") {
      // Pretend the remote opened channel 1 before this frame.
      Bytes open = *from_hex("0001010f6879706572636f72652f616c70686120" + v["discoveryKey"].get<std::string>() +
                             "01" + std::string(64, '0'));
      REQUIRE(mux.receive(open).ok());
    }
    REQUIRE(mux.receive(bytes).ok());
    if (frame["decoded"].value("control", "") == "open") {
      auto hs = net::wire::decode_handshake(rec.handshake);
      REQUIRE(hs.ok());
      bool writer = frame["from"].get<std::string>().rfind("writer", 0) == 0;
      CHECK(to_hex(hs->capability) ==
            v[writer ? "expectedCapabilityInitiator" : "expectedCapabilityResponder"].get<std::string>());
      auto key = test::key32(v["coreKey"]);
      std::array<uint8_t, 64> hash{};
      auto h = test::hex(v["handshakeHash"]);
      std::copy(h.begin(), h.end(), hash.begin());
      CHECK(net::replication_capability(writer, key, hash) == hs->capability);
      continue;
    }
    REQUIRE_FALSE(rec.messages.empty());
    for (const auto& [type, payload] : rec.messages) {
      CHECK(to_hex(reencode(type, payload)) == to_hex(payload));
      messages++;
    }
  }
  CHECK(messages >= 10);
}

TEST_CASE("replication vector: our proofs equal the reference's data messages", "[vectors][replication]") {
  auto v = test::load_vector("replication.json");
  auto store = storage::open_memory();
  auto writer = vector_writer(*store);
  REQUIRE(to_hex(writer->key()) == v["coreKey"]);
  // Each request frame is answered by the next data frame.
  net::wire::Request pending;
  bool have_pending = false;
  int compared = 0;
  for (const auto& frame : v["frames"]) {
    Bytes bytes = test::hex(frame["bytes"]);
    const auto& d = frame["decoded"];
    auto find = [&](const char* name) -> std::optional<Bytes> {
      // Single messages start with channel 1; batches hold one entry here.
      if (d.value("name", "") == name) return Bytes(bytes.begin() + 2, bytes.end());
      if (d.value("control", "") == "batch" && d["messages"].size() == 1 && d["messages"][0]["name"] == name)
        return Bytes(bytes.begin() + 5, bytes.end());
      return std::nullopt;
    };
    if (auto r = find("request")) {
      auto req = net::wire::decode_request(*r);
      REQUIRE(req.ok());
      pending = *req;
      have_pending = true;
    } else if (auto data = find("data"); data && have_pending) {
      auto proof = writer->proof({pending.block, pending.hash, pending.seek, pending.upgrade});
      REQUIRE(proof.ok());
      net::wire::Data ours;
      ours.request = pending.id;
      ours.proof = *proof;
      if (pending.manifest) ours.manifest = manifest::encode(writer->manifest());
      CHECK(to_hex(net::wire::encode(ours)) == to_hex(*data));
      compared++;
      have_pending = false;
    }
  }
  CHECK(compared == 2);
}

TEST_CASE("replication vector: a fresh replica verifies and stores the reference's data", "[vectors][replication]") {
  auto v = test::load_vector("replication.json");
  auto store = storage::open_memory();
  auto replica = std::move(*Core::open_replica(*store, test::key32(v["coreKey"])));
  CHECK_FALSE(replica->has_manifest());
  for (const auto& frame : v["frames"]) {
    if (frame["decoded"].value("name", "") != "data") continue;
    Bytes bytes = test::hex(frame["bytes"]);
    auto data = net::wire::decode_data(ByteView(bytes).subspan(2));
    REQUIRE(data.ok());
    auto applied = replica->apply(data->proof, data->manifest);
    REQUIRE(applied.ok());
    CHECK(*applied);
  }
  CHECK(replica->length() == 10);
  CHECK(replica->has_manifest());
  CHECK(to_hex(*replica->get(3)) == "64");
  auto missing = replica->get(4);
  CHECK(missing.status().code() == ErrorCode::not_found);
  // The same data again brings nothing new; a tampered block is refused.
  Bytes bytes = test::hex(v["frames"][11]["bytes"]);
  auto data = *net::wire::decode_data(ByteView(bytes).subspan(2));
  CHECK_FALSE(*replica->apply(data.proof, std::nullopt));
  data.proof.block->index = 4;
  auto bad = replica->apply(data.proof, std::nullopt);
  CHECK(bad.status().code() == ErrorCode::verification);
  CHECK_FALSE(*replica->has(4));
}
