#include <catch2/catch.hpp>

#include "net/dht_messages.h"
#include "net/noise.h"
#include "net/secret_stream.h"
#include "vectors.h"

using namespace p2p;
using nlohmann::json;

namespace {

crypto::KeyPair key_pair(const json& j) {
  auto kp = crypto::key_pair_from_seed(test::key32(j["seed"]));
  CHECK(to_hex(kp.public_key) == j["publicKey"]);
  return kp;
}

// Both ends of one noise-ik.json case, seeded as the generator seeded them.
struct Ends {
  Bytes prologue;
  crypto::KeyPair initiator_static, responder_static;
  net::NoiseIK initiator, responder;

  explicit Ends(const json& c)
      : prologue(test::hex(c["prologue"])),
        initiator_static(key_pair(c["initiatorStatic"])),
        responder_static(key_pair(c["responderStatic"])),
        initiator(true, initiator_static, responder_static.public_key, prologue,
                  test::key32(c["initiatorEphemeral"]["seed"])),
        responder(false, responder_static, std::nullopt, prologue, test::key32(c["responderEphemeral"]["seed"])) {}
};

void check_keys(const net::HandshakeResult& r, const json& j) {
  CHECK(to_hex(r.tx) == j["tx"]);
  CHECK(to_hex(r.rx) == j["rx"]);
  CHECK(to_hex(r.hash) == j["hash"]);
}

// The plaintexts a stream delivers from `bytes`; fails the test on a protocol error.
std::vector<std::string> deliver(net::SecretStream& s, ByteView bytes) {
  std::vector<std::string> got;
  auto st = s.receive(bytes, [&](ByteView m) {
    got.emplace_back(as_chars(m));
    return Status{};
  });
  CHECK(st.ok());
  return got;
}

}  // namespace

TEST_CASE("noise-ik vectors: both messages and the split keys byte for byte", "[vectors][noise]") {
  auto v = test::load_vector("noise-ik.json");
  REQUIRE(v["cases"].size() == 3);
  for (const auto& c : v["cases"]) {
    INFO(c["name"].get<std::string>());
    Ends ends(c);
    auto m1 = ends.initiator.write(test::hex(c["payload1"]));
    REQUIRE(m1.ok());
    CHECK(to_hex(*m1) == c["message1"]);
    auto p1 = ends.responder.read(*m1);
    REQUIRE(p1.ok());
    CHECK(to_hex(*p1) == c["payload1"]);
    CHECK_FALSE(ends.responder.done());
    CHECK(ends.responder.remote_public_key() == ends.initiator_static.public_key);

    auto m2 = ends.responder.write(test::hex(c["payload2"]));
    REQUIRE(m2.ok());
    CHECK(to_hex(*m2) == c["message2"]);
    auto p2 = ends.initiator.read(*m2);
    REQUIRE(p2.ok());
    CHECK(to_hex(*p2) == c["payload2"]);

    REQUIRE(ends.initiator.done());
    REQUIRE(ends.responder.done());
    check_keys(ends.initiator.result(), c["initiator"]);
    check_keys(ends.responder.result(), c["responder"]);
    CHECK(to_hex(ends.responder.result().remote_public_key) == c["remotePublicKeySeenByResponder"]);
    CHECK(ends.initiator.result().remote_public_key == ends.responder_static.public_key);
  }
}

TEST_CASE("noise-ik vectors: hyperdht's prologue, holepunch secret and stream ids", "[vectors][noise]") {
  auto v = test::load_vector("noise-ik.json");
  const json& c = v["cases"][2];
  REQUIRE(c["name"] == "hyperdht");
  CHECK(to_hex(dht::namespaces().peer_handshake) == c["prologue"]);
  Ends ends(c);
  auto m1 = ends.initiator.write(test::hex(c["payload1"]));
  REQUIRE(ends.responder.read(*m1).ok());
  REQUIRE(ends.initiator.read(*ends.responder.write(test::hex(c["payload2"]))).ok());
  const auto& hash = ends.initiator.result().hash;
  CHECK(to_hex(crypto::hash({dht::namespaces().peer_holepunch}, hash)) == c["holepunchSecret"]);
  auto ns = crypto::namespaces("hyperswarm/secret-stream", {0, 1});
  CHECK(to_hex(crypto::hash({ns[0]}, hash)) == c["streamIdInitiator"]);
  CHECK(to_hex(crypto::hash({ns[1]}, hash)) == c["streamIdResponder"]);
}

TEST_CASE("noise-ik vectors: secret streams from the IK result read what JavaScript's wrote", "[vectors][noise]") {
  auto v = test::load_vector("noise-ik.json");
  const json& c = v["cases"][2];
  auto result = [&](const char* side) {
    net::HandshakeResult r;
    r.tx = test::key32(c[side]["tx"]);
    r.rx = test::key32(c[side]["rx"]);
    Bytes h = test::hex(c[side]["hash"]);
    std::copy(h.begin(), h.end(), r.hash.begin());
    return r;
  };
  net::SecretStream client(true, result("initiator"));
  net::SecretStream server(false, result("responder"));
  Bytes from_js_client = test::hex(c["secretStreamInitiator"]["bytes"]);
  Bytes from_js_server = test::hex(c["secretStreamResponder"]["bytes"]);
  // Our header frame: the same length and stream id as JavaScript's (the
  // secretstream header after them is random).
  for (auto* s : {&client, &server}) {
    Bytes ours = s->take_output();
    const Bytes& theirs = s == &client ? from_js_client : from_js_server;
    REQUIRE(ours.size() == 3 + 56);
    CHECK(to_hex(ByteView(ours).first(35)) == to_hex(ByteView(theirs).first(35)));
  }
  using Texts = std::vector<std::string>;
  CHECK(deliver(server, from_js_client) == Texts{c["secretStreamInitiator"]["text"].get<std::string>()});
  CHECK(deliver(client, from_js_server) == Texts{c["secretStreamResponder"]["text"].get<std::string>()});
  CHECK(client.established());
  CHECK(server.established());
}

TEST_CASE("noise-ik: any tampered byte, truncation or wrong key is refused", "[vectors][noise]") {
  auto v = test::load_vector("noise-ik.json");
  const json& c = v["cases"][2];
  Bytes payload1 = test::hex(c["payload1"]), payload2 = test::hex(c["payload2"]);
  Bytes m1 = test::hex(c["message1"]), m2 = test::hex(c["message2"]);

  for (size_t i = 0; i < m1.size(); i++) {
    Ends ends(c);
    Bytes bad = m1;
    bad[i] ^= 0x20;
    INFO("message 1 byte " << i);
    CHECK_FALSE(ends.responder.read(bad).ok());
  }
  for (size_t i = 0; i < m2.size(); i++) {
    Ends ends(c);
    REQUIRE(ends.initiator.write(payload1).ok());
    Bytes bad = m2;
    bad[i] ^= 0x01;
    INFO("message 2 byte " << i);
    CHECK_FALSE(ends.initiator.read(bad).ok());
  }
  for (size_t n : {size_t{0}, size_t{31}, size_t{32}, size_t{79}, size_t{95}, m1.size() - 1}) {
    Ends ends(c);
    CHECK_FALSE(ends.responder.read(ByteView(m1).first(n)).ok());
  }
  {  // an initiator that thinks the responder has another key
    Ends ends(c);
    net::NoiseIK wrong(true, ends.initiator_static, crypto::key_pair_from_seed(Key32{7}).public_key, ends.prologue);
    CHECK_FALSE(ends.responder.read(*wrong.write(payload1)).ok());
  }
  {  // another prologue
    Ends ends(c);
    net::NoiseIK other(false, ends.responder_static, std::nullopt, {});
    CHECK_FALSE(other.read(m1).ok());
  }
  {  // out of turn, and an initiator without the responder's key
    Ends ends(c);
    CHECK_FALSE(ends.responder.write(payload2).ok());
    CHECK_FALSE(ends.initiator.read(m2).ok());
    net::NoiseIK keyless(true, ends.initiator_static, std::nullopt, ends.prologue);
    CHECK_FALSE(keyless.write(payload1).ok());
    REQUIRE(ends.initiator.write(payload1).ok());
    CHECK_FALSE(ends.initiator.write(payload1).ok());
  }
  {  // payloads beyond Noise's 65535-byte message limit
    Ends ends(c);
    CHECK_FALSE(ends.initiator.write(Bytes(65535 - 15)).ok());
  }
}
