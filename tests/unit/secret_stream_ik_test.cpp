// Secret streams started from a completed Noise IK handshake, as hyperdht
// connections run them: no Noise frames, only the header frames, then data.
#include <catch2/catch.hpp>

#include "core/crypto.h"
#include "net/dht_connect_messages.h"
#include "net/noise.h"
#include "net/secret_stream.h"

using namespace p2p;

namespace {

struct IkPair {
  crypto::KeyPair client_key = crypto::random_key_pair();
  crypto::KeyPair server_key = crypto::random_key_pair();
  net::NoiseIK client{true, client_key, server_key.public_key, dht::namespaces().peer_handshake};
  net::NoiseIK server{false, server_key, std::nullopt, dht::namespaces().peer_handshake};

  IkPair() {
    dht::NoisePayload hello;
    hello.udx = dht::UdxInfo{};
    hello.udx->id = 7;
    auto m1 = client.write(dht::encode_noise_payload(hello));
    REQUIRE(m1.ok());
    auto p1 = server.read(*m1);
    REQUIRE(p1.ok());
    REQUIRE(dht::decode_noise_payload(*p1) == hello);
    auto m2 = server.write(dht::encode_noise_payload({}));
    REQUIRE(m2.ok());
    REQUIRE(client.read(*m2).ok());
    REQUIRE(client.done());
    REQUIRE(server.done());
  }
};

// Plaintexts `to` delivers from everything `from` has written so far.
std::vector<std::string> pump(net::SecretStream& from, net::SecretStream& to) {
  std::vector<std::string> got;
  auto st = to.receive(from.take_output(), [&](ByteView m) {
    got.emplace_back(as_chars(m));
    return Status{};
  });
  REQUIRE(st.ok());
  return got;
}

using Texts = std::vector<std::string>;

}  // namespace

TEST_CASE("noise IK: both ends agree on keys, hash and each other's keys", "[net][noise]") {
  IkPair ik;
  const auto& c = ik.client.result();
  const auto& s = ik.server.result();
  CHECK(c.tx == s.rx);
  CHECK(c.rx == s.tx);
  CHECK(c.hash == s.hash);
  CHECK(c.remote_public_key == ik.server_key.public_key);
  CHECK(s.remote_public_key == ik.client_key.public_key);
}

TEST_CASE("secret stream from an IK handshake: headers at once, then messages both ways", "[net][secret-stream]") {
  IkPair ik;
  net::SecretStream client(true, ik.client.result());
  net::SecretStream server(false, ik.server.result());
  // Nothing to start, and each side's first frame is its 56-byte header.
  REQUIRE(client.start().ok());
  CHECK(client.output_size() == 3 + 56);
  CHECK(server.output_size() == 3 + 56);
  CHECK(client.handshake().remote_public_key == ik.server_key.public_key);

  REQUIRE(client.send(as_bytes("hello server")).ok());
  REQUIRE(server.send(as_bytes("hello client")).ok());
  REQUIRE(server.send({}).ok());  // a keep-alive, dropped by the receiver
  CHECK(pump(client, server) == Texts{"hello server"});
  CHECK(pump(server, client) == Texts{"hello client"});
  CHECK(client.established());
  CHECK(server.established());

  for (int i = 0; i < 5; i++) REQUIRE(client.send(as_bytes("m" + std::to_string(i))).ok());
  CHECK(pump(client, server) == Texts{"m0", "m1", "m2", "m3", "m4"});
  REQUIRE(server.send(Bytes(100000, 'x')).ok());
  auto big = pump(server, client);
  REQUIRE(big.size() == 1);
  CHECK(big[0] == std::string(100000, 'x'));
}

TEST_CASE("secret stream from an IK handshake: another session's stream is refused", "[net][secret-stream]") {
  IkPair ik, other;
  net::SecretStream client(true, ik.client.result());
  Bytes header = client.take_output();
  auto ignore = [](ByteView) { return Status{}; };
  net::SecretStream stranger(false, other.server.result());
  CHECK_FALSE(stranger.receive(header, ignore).ok());  // the stream id binds the handshake hash

  // Same session, both claiming the initiator role: the ids do not match either.
  net::SecretStream twin(true, ik.server.result());
  CHECK_FALSE(twin.receive(header, ignore).ok());
}
