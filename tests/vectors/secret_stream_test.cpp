#include <catch2/catch.hpp>

#include "net/noise.h"
#include "vectors.h"

using namespace p2p;

TEST_CASE("secret-stream vector: the Noise XX handshake byte for byte", "[vectors][noise]") {
  auto v = test::load_vector("secret-stream.json");
  auto init_static = crypto::key_pair_from_seed(test::key32(v["initiatorStatic"]["seed"]));
  auto resp_static = crypto::key_pair_from_seed(test::key32(v["responderStatic"]["seed"]));
  CHECK(to_hex(init_static.public_key) == v["initiatorStatic"]["publicKey"]);
  net::NoiseXX initiator(true, init_static, test::key32(v["initiatorEphemeral"]["seed"]));
  net::NoiseXX responder(false, resp_static, test::key32(v["responderEphemeral"]["seed"]));

  // Each transcript entry is u24le(length) || message.
  auto body = [&](int i) { return v["transcript"][i]["bytes"].get<std::string>().substr(6); };
  auto m1 = initiator.write();
  REQUIRE(m1.ok());
  CHECK(to_hex(*m1) == body(0));
  REQUIRE(responder.read(*m1).ok());
  auto m2 = responder.write();
  REQUIRE(m2.ok());
  CHECK(to_hex(*m2) == body(1));
  REQUIRE(initiator.read(*m2).ok());
  auto m3 = initiator.write();
  REQUIRE(m3.ok());
  CHECK(to_hex(*m3) == body(2));
  REQUIRE(responder.read(*m3).ok());
  REQUIRE(initiator.done());
  REQUIRE(responder.done());

  const auto& a = initiator.result();
  const auto& b = responder.result();
  CHECK(to_hex(a.hash) == v["handshakeHash"]);
  CHECK(to_hex(b.hash) == v["handshakeHash"]);
  CHECK(to_hex(a.tx) == v["splitKeys"]["captured"][0]["tx"]);
  CHECK(to_hex(a.rx) == v["splitKeys"]["captured"][0]["rx"]);
  CHECK(to_hex(b.tx) == v["splitKeys"]["captured"][1]["tx"]);
  CHECK(to_hex(a.remote_public_key) == v["remotePublicKeySeenByInitiator"]);
  CHECK(to_hex(b.remote_public_key) == v["remotePublicKeySeenByResponder"]);

  auto ns = crypto::namespaces("hyperswarm/secret-stream", {0, 1, 2});
  CHECK(to_hex(crypto::hash({ns[0]}, a.hash)) == v["streamIdInitiator"]);
  CHECK(to_hex(crypto::hash({ns[1]}, a.hash)) == v["streamIdResponder"]);
  CHECK(to_hex(crypto::hash({ns[0], ns[2]}, a.hash)) == v["sendKeys"]["initiatorEncrypt"]);
  CHECK(to_hex(crypto::hash({ns[1], ns[2]}, a.hash)) == v["sendKeys"]["initiatorDecrypt"]);
}

TEST_CASE("noise: tampered or malformed handshake messages are refused", "[noise]") {
  auto a = crypto::random_key_pair(), b = crypto::random_key_pair();
  net::NoiseXX initiator(true, a), responder(false, b);
  auto m1 = *initiator.write();
  CHECK_FALSE(responder.read(ByteView(m1.data(), 31)).ok());  // short
  net::NoiseXX responder2(false, b);
  REQUIRE(responder2.read(m1).ok());
  auto m2 = *responder2.write();
  m2[40] ^= 1;  // inside the encrypted static key
  CHECK_FALSE(initiator.read(m2).ok());
  net::NoiseXX fresh(true, a);
  CHECK_FALSE(fresh.read(m2).ok());  // out of turn
  Bytes garbage(96, 0xff);
  net::NoiseXX i2(true, a);
  REQUIRE(i2.write().ok());
  CHECK_FALSE(i2.read(garbage).ok());  // not a point / not authentic
}
