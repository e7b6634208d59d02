#include <sodium.h>

#include <catch2/catch.hpp>
#include <random>

#include "net/dht_connect_messages.h"
#include "net/noise.h"
#include "vectors.h"

using namespace p2p;
using namespace p2p::dht;
using nlohmann::json;

namespace {

// JavaScript's `null` and a missing key both mean absent.
bool present(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

Address address_of(const json& j) {
  return Address{*parse_ipv4(j["host"].get<std::string>()), j["port"].get<uint16_t>()};
}

std::optional<Address> optional_address(const json& j, const char* key) {
  if (!present(j, key)) return std::nullopt;
  return address_of(j[key]);
}

std::vector<Address> addresses_of(const json& list) {
  std::vector<Address> out;
  for (const auto& a : list) out.push_back(address_of(a));
  return out;
}

std::optional<std::vector<Address>> optional_addresses(const json& j, const char* key) {
  if (!present(j, key)) return std::nullopt;
  return addresses_of(j[key]);
}

std::optional<Hash32> optional_hash(const json& j, const char* key) {
  if (!present(j, key)) return std::nullopt;
  return test::key32(j[key]);
}

// The payload objects as hyperdht hands them to messages.js (versions it
// does not set are the 1 it writes).
NoisePayload noise_payload_of(const json& j) {
  NoisePayload p;
  p.version = j.value("version", kConnectVersion);
  p.error = j["error"];
  p.firewall = j["firewall"];
  if (present(j, "holepunch")) {
    p.holepunch = HolepunchInfo{j["holepunch"]["id"], {}};
    for (const auto& r : j["holepunch"]["relays"])
      p.holepunch->relays.push_back({address_of(r["relayAddress"]), address_of(r["peerAddress"])});
  }
  if (present(j, "addresses4")) p.addresses4 = addresses_of(j["addresses4"]);
  // No vector carries an IPv6 address.
  if (present(j, "addresses6")) REQUIRE(j["addresses6"].empty());
  if (present(j, "udx")) {
    const json& u = j["udx"];
    p.udx = UdxInfo{u.value("version", kConnectVersion), u["reusableSocket"], u["id"], u["seq"]};
  }
  if (present(j, "secretStream"))
    p.secret_stream = SecretStreamInfo{j["secretStream"].value("version", kConnectVersion)};
  if (present(j, "relayThrough")) {
    const json& r = j["relayThrough"];
    p.relay_through = RelayThroughInfo{r.value("version", kConnectVersion), 0, test::key32(r["publicKey"]),
                                       test::key32(r["token"])};
  }
  p.relay_addresses = optional_addresses(j, "relayAddresses");
  return p;
}

HolepunchPayload holepunch_payload_of(const json& j) {
  HolepunchPayload p;
  p.error = j["error"];
  p.firewall = j["firewall"];
  p.round = j["round"];
  p.connected = j["connected"];
  p.punching = j["punching"];
  p.addresses = optional_addresses(j, "addresses");
  p.remote_address = optional_address(j, "remoteAddress");
  p.token = optional_hash(j, "token");
  p.remote_token = optional_hash(j, "remoteToken");
  return p;
}

HandshakeMessage handshake_message_of(const json& j) {
  return {j["mode"], test::hex(j["noise"]), optional_address(j, "peerAddress"), optional_address(j, "relayAddress")};
}

HolepunchMessage holepunch_message_of(const json& j) {
  return {j["mode"], j["id"], test::hex(j["payload"]), optional_address(j, "peerAddress")};
}

// encode(value) is the vector's bytes and decoding them gives the value back.
template <typename T, typename Encode, typename Decode>
void check_vector(const json& entry, const T& value, Encode encode, Decode decode) {
  CHECK(to_hex(encode(value)) == entry["encoded"]);
  auto decoded = decode(test::hex(entry["encoded"]));
  REQUIRE(decoded);
  CHECK(*decoded == value);
}

// Every strict prefix of a valid encoding fails (each field the flags promise is missing).
template <typename Decode>
void check_prefixes_fail(const Bytes& valid, Decode decode) {
  for (size_t n = 0; n < valid.size(); n++) {
    INFO("prefix of " << n << " bytes");
    CHECK_FALSE(decode(ByteView(valid).first(n)));
  }
}

// Random mutations never crash, and whatever decodes survives a round trip.
template <typename Encode, typename Decode>
void fuzz(const Bytes& valid, Encode encode, Decode decode, std::mt19937& rng) {
  for (int round = 0; round < 3000; round++) {
    Bytes b = valid;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; k++) {
      size_t at = rng() % (b.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (at < b.size()) b[at] = static_cast<uint8_t>(rng());
          break;
        case 1: b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng())); break;
        default: b.resize(at);
      }
    }
    if (auto d = decode(b)) {
      auto again = decode(encode(*d));
      REQUIRE(again);
      CHECK(*again == *d);
    }
  }
}

const json* find_event(const json& events, const std::string& kind, bool initiator) {
  for (const auto& e : events)
    if (e["kind"] == kind && e["initiator"] == initiator) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("dht connect vectors: handshake, holepunch and payload messages byte for byte", "[vectors][dht][connect]") {
  const json det = test::load_vector("dht.json")["deterministic"];
  check_vector(det["handshakeMessage"], handshake_message_of(det["handshakeMessage"]["value"]),
               encode_handshake_message, decode_handshake_message);
  check_vector(det["holepunchMessage"], holepunch_message_of(det["holepunchMessage"]["value"]),
               encode_holepunch_message, decode_holepunch_message);
  check_vector(det["noisePayload"], noise_payload_of(det["noisePayload"]["value"]), encode_noise_payload,
               decode_noise_payload);
  check_vector(det["holepunchPayload"], holepunch_payload_of(det["holepunchPayload"]["value"]),
               encode_holepunch_payload, decode_holepunch_payload);
}

TEST_CASE("dht connect vectors: the noise payloads of noise-ik.json", "[vectors][dht][connect]") {
  const json c = test::load_vector("noise-ik.json")["cases"][2];
  for (const char* n : {"1", "2"}) {
    json entry = {{"encoded", c[std::string("payload") + n]}};
    check_vector(entry, noise_payload_of(c[std::string("decodedPayload") + n]), encode_noise_payload,
                 decode_noise_payload);
  }
}

TEST_CASE("dht connect vectors: the captured connects' noise and holepunch payloads", "[vectors][dht][connect]") {
  const json v = test::load_vector("udx-connect.json");
  Key32 server_seed;
  server_seed.fill(1);  // the capture's server key pair
  auto server_key = crypto::key_pair_from_seed(server_seed);
  int noise_checked = 0, holepunch_checked = 0;
  for (const auto& [name, scenario] : v["scenarios"].items()) {
    INFO("scenario " << name);
    const json& events = scenario["js_events"];
    const json* client_final = find_event(events, "noise_final", true);
    const json* server_final = find_event(events, "noise_final", false);
    REQUIRE(client_final);
    REQUIRE(server_final);
    REQUIRE(to_hex(server_key.public_key) == (*server_final)["publicKey"]);

    // Each side's sent payload, encoded by us, decodes to what the other side received.
    for (bool initiator : {true, false}) {
      const json* sent = find_event(events, "noise_send", initiator);
      const json* received = find_event(events, "noise_recv", !initiator);
      REQUIRE(sent);
      REQUIRE(received);
      Bytes encoded = encode_noise_payload(noise_payload_of((*sent)["payload"]));
      auto decoded = decode_noise_payload(encoded);
      REQUIRE(decoded);
      CHECK(*decoded == noise_payload_of((*received)["payload"]));
      Bytes noise = test::hex((*sent)["noise_hex"]);
      if (initiator) {
        // The server's static key opens the client's captured IK message 1:
        // its payload is exactly our encoding.
        net::NoiseIK server(false, server_key, std::nullopt, namespaces().peer_handshake);
        auto payload = server.read(noise);
        REQUIRE(payload.ok());
        CHECK(to_hex(*payload) == to_hex(encoded));
        CHECK(to_hex(server.remote_public_key()) == (*client_final)["publicKey"]);
      } else {
        CHECK(noise.size() == 32 + encoded.size() + 16);  // e, then the sealed payload
      }
      noise_checked++;
    }

    // The holepunch secretbox opens under the IK's holepunch secret to our encoding.
    Key32 secret = test::key32((*client_final)["holepunchSecret"]);
    for (const auto& e : events) {
      if (e["kind"] == "holepunch_encrypt") {
        Bytes box = test::hex(e["box_hex"]);
        REQUIRE(box.size() > crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES);
        Bytes plain(box.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES);
        REQUIRE(crypto_secretbox_open_easy(plain.data(), box.data() + crypto_secretbox_NONCEBYTES,
                                           box.size() - crypto_secretbox_NONCEBYTES, box.data(), secret.data()) == 0);
        CHECK(to_hex(plain) == to_hex(encode_holepunch_payload(holepunch_payload_of(e["payload"]))));
        holepunch_checked++;
      }
      if (e["kind"] == "holepunch_decrypt") {
        auto p = holepunch_payload_of(e["payload"]);
        CHECK(decode_holepunch_payload(encode_holepunch_payload(p)) == p);
      }
    }
  }
  CHECK(noise_checked == 6);
  CHECK(holepunch_checked >= 1);
}

TEST_CASE("dht connect messages: absent and empty fields as messages.js writes them", "[dht][connect]") {
  NoisePayload p;
  p.addresses4 = {};
  p.relay_addresses = std::vector<Address>{};
  // version 1, flags 64 (relayAddresses only: empty address lists are left out), error, firewall, count 0.
  CHECK(to_hex(encode_noise_payload(p)) == "0140000000");
  p.relay_addresses.reset();
  p.secret_stream = SecretStreamInfo{};
  p.relay_through = RelayThroughInfo{1, 0, Key32{0xaa}, Hash32{0xbb}};
  p.addresses6 = {Ipv6Address{{0xfe, 0x80}, 443}};
  Bytes b = encode_noise_payload(p);
  CHECK(to_hex(ByteView(b).first(4)) == "01340000");  // addresses6 | secretStream | relayThrough
  CHECK(decode_noise_payload(b) == p);

  HolepunchPayload h;
  h.addresses = std::vector<Address>{};
  h.connected = true;
  CHECK(to_hex(encode_holepunch_payload(h)) == "0500000000");
  CHECK(decode_holepunch_payload(encode_holepunch_payload(h)) == h);

  // Another version: hyperdht reads nothing more and leaves the rest at defaults.
  auto other = decode_noise_payload(*from_hex("02ffffffff"));
  REQUIRE(other);
  NoisePayload expected;
  expected.version = 2;
  CHECK(*other == expected);
  // Unknown flag bits are ignored, as messages.js does.
  expected.version = 1;
  expected.error = 1;
  expected.firewall = 3;
  CHECK(decode_noise_payload(*from_hex("01800103")) == expected);
}

TEST_CASE("dht connect messages: truncated, mutated and lying input never crashes", "[dht][connect][robustness]") {
  const json det = test::load_vector("dht.json")["deterministic"];
  const json ik = test::load_vector("noise-ik.json")["cases"][2];
  std::mt19937 rng(20240611);
  auto run = [&](const Bytes& valid, auto encode, auto decode) {
    check_prefixes_fail(valid, decode);
    fuzz(valid, encode, decode, rng);
  };
  run(test::hex(det["handshakeMessage"]["encoded"]), encode_handshake_message, decode_handshake_message);
  run(test::hex(det["holepunchMessage"]["encoded"]), encode_holepunch_message, decode_holepunch_message);
  run(test::hex(det["noisePayload"]["encoded"]), encode_noise_payload, decode_noise_payload);
  run(test::hex(ik["payload2"]), encode_noise_payload, decode_noise_payload);
  run(test::hex(det["holepunchPayload"]["encoded"]), encode_holepunch_payload, decode_holepunch_payload);

  // Counts and lengths beyond the input, and uints past 2^53, are refused.
  CHECK_FALSE(decode_noise_payload(*from_hex("01020000feffffff7f")));      // addresses4 count
  CHECK_FALSE(decode_noise_payload(*from_hex("0101000000fe00000001")));    // holepunch relays count
  CHECK_FALSE(decode_noise_payload(*from_hex("01040000fd0001")));          // addresses6 count
  CHECK_FALSE(decode_handshake_message(*from_hex("0000feffffff7f00")));    // noise length
  CHECK_FALSE(decode_holepunch_message(*from_hex("000000fd0010")));        // payload length
  CHECK_FALSE(decode_holepunch_payload(*from_hex("04000000fdffff")));      // addresses count
  CHECK_FALSE(decode_noise_payload(*from_hex("ffffffffffffffffff")));      // version > 2^53
  CHECK_FALSE(decode_holepunch_payload(*from_hex("0000ff000000000000200000")));  // firewall = 2^53
  CHECK(decode_holepunch_payload(*from_hex("0000ff000000000000100000")));  // firewall = 2^52 is fine
}
