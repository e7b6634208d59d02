#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <random>
#include <tuple>

#include "core/crypto.h"
#include "net/dht_messages.h"
#include "vectors.h"

using namespace p2p;
using namespace p2p::dht;
using nlohmann::json;

namespace {

std::string hex_or_empty(const std::optional<Hash32>& h) { return h ? to_hex(*h) : ""; }
std::string hex_or_empty(const std::optional<Bytes>& b) { return b ? to_hex(*b) : ""; }
std::string field(const json& j, const char* key) { return j.contains(key) ? j[key].get<std::string>() : ""; }

PeerRecord peer_of(const json& j) {
  PeerRecord p{test::key32(j["publicKey"]), {}};
  for (const auto& a : j["relayAddresses"])
    p.relay_addresses.push_back(Address{*parse_ipv4(a["host"].get<std::string>()), a["port"].get<uint16_t>()});
  return p;
}

Signature64 signature64(const json& j) {
  Bytes b = test::hex(j);
  Signature64 s{};
  REQUIRE(b.size() == s.size());
  std::copy(b.begin(), b.end(), s.begin());
  return s;
}

std::vector<ByteView> views(const std::vector<Bytes>& list) { return std::vector<ByteView>(list.begin(), list.end()); }

std::vector<std::string> strings(const std::vector<Address>& list) {
  std::vector<std::string> out;
  for (const auto& a : list) out.push_back(a.to_string());
  return out;
}

// The fields dht.json's `decoded` lists, checked against ours (absent keys mean absent fields).
void check_request(const Request& r, const json& d) {
  CHECK(r.tid == d["tid"].get<uint16_t>());
  CHECK(r.to.to_string() == d["to"]);
  CHECK(r.internal == d["internal"].get<bool>());
  CHECK(r.command == d["command"].get<uint64_t>());
  CHECK(hex_or_empty(r.id) == field(d, "id"));
  CHECK(hex_or_empty(r.token) == field(d, "token"));
  CHECK(hex_or_empty(r.target) == field(d, "target"));
  CHECK(hex_or_empty(r.value) == field(d, "value"));
}

void check_response(const Response& r, const json& d) {
  CHECK(r.tid == d["tid"].get<uint16_t>());
  CHECK(r.to.to_string() == d["to"]);
  CHECK(hex_or_empty(r.id) == field(d, "id"));
  CHECK(hex_or_empty(r.token) == field(d, "token"));
  CHECK(strings(r.closer_nodes) == d.value("closerNodes", std::vector<std::string>{}));
  CHECK(r.error == d.value("error", uint64_t{0}));
  CHECK(hex_or_empty(r.value) == field(d, "value"));
}

// A stored announce must verify against the receiving node's id, which is the
// node id of the address the request was sent to.
void check_announce_value(const Request& r) {
  auto a = decode_announce(*r.value);
  REQUIRE(a);
  CHECK(encode_announce(*a) == *r.value);
  REQUIRE(a->peer);
  REQUIRE(a->signature);
  const auto& ns = r.command == kAnnounce ? namespaces().announce : namespaces().unannounce;
  auto signable = announce_signable(ns, *r.target, node_id(r.to), *r.token, *a->peer, a->refresh);
  CHECK(crypto::verify(signable, *a->signature, a->peer->public_key));
}

// `found_keys`: the public keys the reply may hold (null: any).
void check_lookup_reply(const Bytes& value, const json& found_keys) {
  auto reply = decode_lookup_reply(value);
  REQUIRE(reply);
  REQUIRE_FALSE(reply->peers.empty());
  std::vector<Bytes> encoded;
  for (const auto& p : reply->peers) {
    if (!found_keys.is_null())
      CHECK(std::find(found_keys.begin(), found_keys.end(), to_hex(p.public_key)) != found_keys.end());
    encoded.push_back(encode_peer(p));
  }
  CHECK(encode_lookup_reply(views(encoded), reply->bump) == value);
}

// Decode, and if that works, the re-encoding must decode to the same encoding.
template <typename Encode, typename Decode>
bool stable(ByteView input, Encode encode, Decode decode) {
  auto first = decode(input);
  if (!first) return true;
  Bytes bytes = encode(*first);
  auto second = decode(bytes);
  return second && encode(*second) == bytes;
}

Bytes encode_lookup(const LookupReply& r) {
  std::vector<Bytes> peers;
  for (const auto& p : r.peers) peers.push_back(encode_peer(p));
  return encode_lookup_reply(views(peers), r.bump);
}

// Every decoder on `b`: none may crash, and what decodes must re-encode stably.
bool all_decoders_stable(ByteView b) {
  bool ok = stable(b, encode_request, decode_request) && stable(b, encode_response, decode_response) &&
            stable(b, encode_peer, decode_peer) && stable(b, encode_announce, decode_announce) &&
            stable(b, encode_lookup, decode_lookup_reply) && stable(b, encode_mutable_put, decode_mutable_put) &&
            stable(b, encode_mutable_record, decode_mutable_record);
  if (auto r = decode_request(b); r && r->value) ok = ok && all_decoders_stable(*r->value);
  if (auto r = decode_response(b); r && r->value) ok = ok && all_decoders_stable(*r->value);
  return ok;
}

std::vector<Bytes> captured_packets() {
  auto v = test::load_vector("dht.json");  // kept alive: a range-for would not extend it
  std::vector<Bytes> out;
  for (const auto& p : v["packets"]) out.push_back(test::hex(p["bytes"]));
  return out;
}

}  // namespace

TEST_CASE("dht vectors: node id and addresses", "[vectors][dht]") {
  auto v = test::load_vector("dht.json")["deterministic"]["nodeId"];
  auto addr = parse_address(v["host"].get<std::string>() + ":" + std::to_string(v["port"].get<int>()));
  REQUIRE(addr);
  CHECK(addr->host() == v["host"]);
  CHECK(addr->to_string() == "127.0.0.1:49737");
  CHECK(to_hex(node_id(*addr)) == v["id"]);
  CHECK(to_hex(crypto::hash({test::hex(v["preimage"])})) == v["id"]);

  CHECK(parse_address("0.0.0.0:0") == Address{{0, 0, 0, 0}, 0});
  CHECK(parse_address("255.255.255.255:65535") == Address{{255, 255, 255, 255}, 65535});
  CHECK(parse_address("10.20.30.40:8")->to_string() == "10.20.30.40:8");
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:+1", "127.0.0.1:-1",
                          "256.0.0.1:1", "1.2.3:4", "1.2.3.4.5:6", "1..2.3:4", "1.2.3.:4", ".1.2.3:4", "+1.2.3.4:5",
                          "1.2.3.4 :5", " 1.2.3.4:5", "1.2.3.4:5 ", "a.b.c.d:1", "localhost:80", "::1:80",
                          "[::1]:80", "01.2.3.4:5", "1.2.3.4:99999999999", "1.2.3.4:0x10", "1.2.3.-4:5"}) {
    INFO(bad);
    CHECK_FALSE(parse_address(bad));
  }
  CHECK(parse_ipv4("192.168.0.1") == std::array<uint8_t, 4>{192, 168, 0, 1});
  CHECK_FALSE(parse_ipv4("192.168.0.1:80"));
}

TEST_CASE("dht vectors: peer record, announce value and signature", "[vectors][dht]") {
  auto v = test::load_vector("dht.json")["deterministic"];
  auto peer = peer_of(v["peerRecord"]["value"]);
  CHECK(to_hex(encode_peer(peer)) == v["peerRecord"]["encoded"]);
  CHECK(decode_peer(test::hex(v["peerRecord"]["encoded"])) == peer);

  auto& a = v["announce"];
  auto target = test::key32(a["target"]);
  auto signable = announce_signable(namespaces().announce, target, test::key32(a["nodeId"]),
                                    test::key32(a["token"]), peer_of(a["message"]["peer"]), std::nullopt);
  CHECK(to_hex(signable) == a["signable"]);
  CHECK(to_hex(ByteView(signable).subspan(32)) == a["signableHash"]);

  auto kp = crypto::key_pair_from_seed(test::key32(v["serverKeyPair"]["seed"]));
  CHECK(to_hex(kp.public_key) == v["serverKeyPair"]["publicKey"]);
  auto signature = crypto::sign(signable, kp);
  CHECK(to_hex(signature) == a["signature"]);
  CHECK(crypto::verify(signable, signature, kp.public_key));

  Announce ann{peer, std::nullopt, signature, 0};
  Bytes encoded = encode_announce(ann);
  CHECK(to_hex(encoded) == a["encodedAnnounceValue"]);
  auto back = decode_announce(encoded);
  REQUIRE(back);
  CHECK(back->peer == peer);
  CHECK_FALSE(back->refresh);
  CHECK(back->signature == signature);
  CHECK(back->bump == 0);

  // A refresh changes the signable; the unannounce namespace does too.
  Hash32 refresh{};
  refresh.fill(7);
  CHECK(announce_signable(namespaces().announce, target, {}, {}, peer, refresh) !=
        announce_signable(namespaces().announce, target, {}, {}, peer, std::nullopt));
  CHECK(announce_signable(namespaces().unannounce, target, {}, {}, peer, std::nullopt) !=
        announce_signable(namespaces().announce, target, {}, {}, peer, std::nullopt));

  Announce full{peer, refresh, signature, 1700000000000};
  auto round = decode_announce(encode_announce(full));
  REQUIRE(round);
  CHECK(round->refresh == refresh);
  CHECK(round->bump == 1700000000000);
  CHECK(encode_announce(*round) == encode_announce(full));
  CHECK(encode_announce(Announce{}) == Bytes{0});
}

TEST_CASE("dht vectors: mutable and immutable records, targets, topic", "[vectors][dht]") {
  auto v = test::load_vector("dht.json");
  auto& m = v["deterministic"]["mutable"];
  auto kp = crypto::key_pair_from_seed(test::key32(m["keyPair"]["seed"]));
  CHECK(to_hex(kp.public_key) == m["keyPair"]["publicKey"]);
  CHECK(to_hex(crypto::hash({kp.public_key})) == m["target"]);

  uint64_t seq = m["seq"];
  Bytes value = test::hex(m["value"]);
  auto signable = mutable_signable(seq, value);
  CHECK(to_hex(signable) == m["signable"]);
  CHECK(to_hex(ByteView(signable).subspan(32)) == m["signableHash"]);
  auto signature = crypto::sign(signable, kp);
  CHECK(to_hex(signature) == m["signature"]);
  CHECK(crypto::verify(signable, signature, kp.public_key));
  CHECK_FALSE(crypto::verify(mutable_signable(seq + 1, value), signature, kp.public_key));

  MutablePut put{kp.public_key, seq, value, signature};
  Bytes encoded = encode_mutable_put(put);
  CHECK(to_hex(encoded) == m["putRequestValue"]);
  auto back = decode_mutable_put(encoded);
  REQUIRE(back);
  CHECK(back->public_key == put.public_key);
  CHECK(back->seq == seq);
  CHECK(back->value == value);
  CHECK(back->signature == signature);

  auto& got = v["liveResults"]["mutableGet"];
  MutableRecord record{got["seq"], test::hex(got["value"]), signature64(got["signature"])};
  auto stored = decode_mutable_record(encode_mutable_record(record));
  REQUIRE(stored);
  CHECK(stored->seq == record.seq);
  CHECK(stored->value == record.value);
  CHECK(crypto::verify(mutable_signable(stored->seq, stored->value), stored->signature, kp.public_key));

  auto& d = v["deterministic"];
  CHECK(to_hex(crypto::hash({test::hex(d["immutable"]["value"])})) == d["immutable"]["target"]);
  CHECK(to_hex(crypto::hash({test::hex(d["findPeerTarget"]["publicKey"])})) == d["findPeerTarget"]["target"]);
  CHECK(to_hex(crypto::hash({as_bytes("holepunch-vectors topic")})) == d["topic"]["topic"]);
  CHECK(to_hex(namespaces().mutable_put) == to_hex(ByteView(signable).first(32)));
}

TEST_CASE("dht vectors: captured packets decode, match and re-encode byte for byte", "[vectors][dht]") {
  auto v = test::load_vector("dht.json");
  const auto& found_keys = v["liveResults"]["lookupFoundPublicKeys"];
  Bytes put_value = test::hex(v["deterministic"]["mutable"]["putRequestValue"]);
  // (phase, requester, responder, tid) -> command, to tell what a reply's value is.
  std::map<std::tuple<std::string, std::string, std::string, uint16_t>, uint64_t> commands;
  int requests = 0, responses = 0, lookups = 0, announces = 0, puts = 0, immutables = 0;

  for (const auto& p : v["packets"]) {
    Bytes bytes = test::hex(p["bytes"]);
    const auto& d = p["decoded"];
    std::string phase = p["phase"], from = p["from"], to = p["to"];
    INFO(phase << " " << p["bytes"].get<std::string>());
    if (bytes[0] == kRequestByte) {
      auto r = decode_request(bytes);
      REQUIRE(r);
      CHECK_FALSE(decode_response(bytes));
      check_request(*r, d);
      CHECK(bytes[1] == d["flags"].get<int>());
      CHECK(encode_request(*r) == bytes);
      requests++;
      commands[{phase, from, to, r->tid}] = r->command;
      if (r->internal) continue;
      if (r->command == kAnnounce || r->command == kUnannounce) {
        check_announce_value(*r);
        announces++;
      } else if (r->command == kMutablePut) {
        CHECK(*r->value == put_value);
        auto m = decode_mutable_put(*r->value);
        REQUIRE(m);
        CHECK(crypto::hash({m->public_key}) == *r->target);
        CHECK(crypto::verify(mutable_signable(m->seq, m->value), m->signature, m->public_key));
        puts++;
      } else if (r->command == kImmutablePut) {
        CHECK(crypto::hash({*r->value}) == *r->target);
        immutables++;
      }
    } else if (bytes[0] == kResponseByte) {
      auto r = decode_response(bytes);
      REQUIRE(r);
      CHECK_FALSE(decode_request(bytes));
      check_response(*r, d);
      CHECK(bytes[1] == d["flags"].get<int>());
      CHECK(encode_response(*r) == bytes);
      responses++;
      auto it = commands.find({phase, to, from, r->tid});
      if (it == commands.end() || !r->value) continue;
      if (it->second == kLookup) {
        check_lookup_reply(*r->value, found_keys);
        lookups++;
      } else if (it->second == kMutableGet) {
        CHECK(decode_mutable_record(*r->value));
      } else if (it->second == kFindPeer) {
        CHECK(decode_peer(*r->value));
      }
    }
  }
  CHECK(requests == 47);
  CHECK(responses == 29);
  CHECK(lookups == 2);  // the third reply answers a request the capture did not sample
  CHECK(announces == 6);
  CHECK(puts == 3);
  CHECK(immutables == 3);
}

TEST_CASE("dht vectors: dht-rpc packets of the udx-connect capture re-encode byte for byte", "[vectors][dht]") {
  auto v = test::load_vector("udx-connect.json");
  int packets = 0, announces = 0, peers = 0, lookups = 0;
  for (const auto& [name, scenario] : v["scenarios"].items()) {
    std::map<std::tuple<int, int, uint16_t>, Request> requests;  // (src, dst, tid)
    for (const auto& p : scenario["packets"]) {
      Bytes bytes = test::hex(p["hex"]);
      int src = p["src_port"], dst = p["dst_port"];
      INFO(name << " " << p["hex"].get<std::string>());
      if (bytes[0] == kRequestByte) {
        auto r = decode_request(bytes);
        REQUIRE(r);
        CHECK(r->tid == p["decoded"]["tid"].get<uint16_t>());
        CHECK(r->to.to_string() == p["decoded"]["to"]);
        CHECK(encode_request(*r) == bytes);
        if (!r->internal && r->command == kAnnounce) {
          check_announce_value(*r);
          announces++;
        }
        requests[{src, dst, r->tid}] = *r;
        packets++;
      } else if (bytes[0] == kResponseByte) {
        auto r = decode_response(bytes);
        REQUIRE(r);
        CHECK(r->tid == p["decoded"]["tid"].get<uint16_t>());
        CHECK(encode_response(*r) == bytes);
        packets++;
        auto it = requests.find({dst, src, r->tid});
        if (it == requests.end() || it->second.internal || !r->value) continue;
        if (it->second.command == kFindPeer) {
          // A FIND_PEER reply carries the record of the server whose key hashes to the target.
          auto peer = decode_peer(*r->value);
          REQUIRE(peer);
          CHECK(crypto::hash({peer->public_key}) == *it->second.target);
          CHECK(encode_peer(*peer) == *r->value);
          peers++;
        } else if (it->second.command == kLookup) {
          check_lookup_reply(*r->value, nullptr);
          lookups++;
        }
      }
    }
  }
  CHECK(packets == 320);
  CHECK(announces > 0);
  CHECK(peers > 0);
  CHECK(lookups > 0);
}

TEST_CASE("dht messages: flags and optional fields as dht-rpc writes them", "[dht]") {
  Request req;
  req.tid = 0x1234;
  req.to = *parse_address("1.2.3.4:258");
  req.command = kImmutablePut;
  req.value = Bytes{};  // empty but present: JS's `if (value)` is true for an empty Buffer
  Bytes b = encode_request(req);
  CHECK(b == Bytes{0x03, 16, 0x34, 0x12, 1, 2, 3, 4, 2, 1, 8, 0});
  auto back = decode_request(b);
  REQUIRE(back);
  CHECK(back->value == Bytes{});
  CHECK_FALSE(back->target);

  Response res;
  res.tid = 7;
  Bytes plain = encode_response(res);
  CHECK(plain.size() == 10);
  CHECK(plain[1] == 0);  // no closer nodes, no error, no value
  res.error = kErrorInvalidToken;
  res.closer_nodes = {*parse_address("9.8.7.6:5")};
  Bytes flagged = encode_response(res);
  CHECK(flagged[1] == (4 | 8));
  auto decoded = decode_response(flagged);
  REQUIRE(decoded);
  CHECK(decoded->error == kErrorInvalidToken);
  CHECK(decoded->closer_nodes == res.closer_nodes);

  // Trailing bytes are ignored, byte 0 must match, and an empty closer-node array decodes.
  Bytes trailing = flagged;
  trailing.push_back(0xaa);
  REQUIRE(decode_response(trailing));
  CHECK(encode_response(*decode_response(trailing)) == flagged);
  Bytes wrong = flagged;
  wrong[0] = 0x23;
  CHECK_FALSE(decode_response(wrong));
  CHECK_FALSE(decode_request(Bytes{}));
  Bytes empty_array = plain;
  empty_array[1] = 4;
  empty_array.push_back(0);
  REQUIRE(decode_response(empty_array));
  CHECK(decode_response(empty_array)->closer_nodes.empty());

  // compact-encoding refuses a uint above 2^53 - 1, so the reference drops such packets.
  Request big;
  big.command = (uint64_t{1} << 53) - 1;
  Bytes largest = encode_request(big);
  REQUIRE(decode_request(largest));
  CHECK(decode_request(largest)->command == big.command);
  big.command++;
  CHECK_FALSE(decode_request(encode_request(big)));
  CHECK_FALSE(decode_mutable_record(encode_mutable_record({uint64_t{1} << 53, {}, {}})));
  CHECK_FALSE(decode_announce(encode_announce({std::nullopt, std::nullopt, std::nullopt, uint64_t{1} << 53})));

  // A LOOKUP reply from a node that writes no bump still decodes.
  PeerRecord peer{{}, {*parse_address("1.1.1.1:1")}};
  Bytes encoded_peer = encode_peer(peer);
  Bytes reply = encode_lookup_reply({encoded_peer}, 0);
  CHECK(reply.back() == 0);
  reply.pop_back();
  auto lookup = decode_lookup_reply(reply);
  REQUIRE(lookup);
  CHECK(lookup->bump == 0);
  CHECK(lookup->peers == std::vector<PeerRecord>{peer});
  CHECK(encode_lookup_reply({}, 5) == Bytes{0, 5});
}

TEST_CASE("dht messages: truncated, corrupted and lying input never crashes", "[dht][robustness]") {
  auto packets = captured_packets();
  std::mt19937 rng(0x5eed);
  int unstable = 0, prefixes_decoded = 0, flips_decoded = 0;
  for (const auto& packet : packets) {
    bool rpc = packet[0] == kRequestByte || packet[0] == kResponseByte;
    for (size_t n = 0; n < packet.size(); n++) {
      ByteView prefix(packet.data(), n);
      // Every field is required by the flags and the packets carry no trailing bytes.
      if (rpc && (decode_request(prefix) || decode_response(prefix))) prefixes_decoded++;
      if (!all_decoders_stable(prefix)) unstable++;
    }
    for (int i = 0; i < 2000; i++) {
      Bytes flipped = packet;
      int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips; f++) flipped[rng() % flipped.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
      if (!all_decoders_stable(flipped)) unstable++;
      if (decode_request(flipped) || decode_response(flipped)) flips_decoded++;
    }
  }
  REQUIRE(packets.size() == 78);
  CHECK(prefixes_decoded == 0);
  CHECK(unstable == 0);
  CHECK(flips_decoded > 10000);  // many flips land in tids, addresses and keys: still packets
}

TEST_CASE("dht messages: huge array counts are refused without allocating", "[dht][robustness]") {
  Bytes header{kResponseByte, 4, 0, 0, 127, 0, 0, 1, 0, 1};
  std::vector<Bytes> lies = {
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},  // 2^64 - 1 closer nodes
      {0xfe, 0xff, 0xff, 0xff, 0xff},                          // 2^32 - 1
      {0xfd, 0xff, 0xff, 1, 2, 3, 4, 5, 6},                     // 65535, with one address present
      {3, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6},                  // 3, with two present
  };
  for (const auto& lie : lies) {
    Bytes packet = header;
    packet.insert(packet.end(), lie.begin(), lie.end());
    int refused = 0;
    for (int i = 0; i < 10000; i++) refused += decode_response(packet) ? 0 : 1;
    CHECK(refused == 10000);
    // The same counts inside hyperdht values.
    CHECK_FALSE(decode_lookup_reply(lie));
    Bytes peer(32, 0);
    peer.insert(peer.end(), lie.begin(), lie.end());
    CHECK_FALSE(decode_peer(peer));
    Bytes announce{1};
    announce.insert(announce.end(), peer.begin(), peer.end());
    CHECK_FALSE(decode_announce(announce));
  }

  // compact-encoding's own limit: more than 0x100000 elements even when the bytes are there.
  Bytes big = header;
  big.insert(big.end(), {0xfe, 0x01, 0x00, 0x10, 0x00});
  const Bytes addresses(6 * 0x100001, 0);
  big.insert(big.end(), addresses.begin(), addresses.end());
  CHECK_FALSE(decode_response(big));
  big[10 + 1] = 0x00;  // exactly 0x100000 is allowed
  auto at_limit = decode_response(big);
  REQUIRE(at_limit);
  CHECK(at_limit->closer_nodes.size() == 0x100000);
}
