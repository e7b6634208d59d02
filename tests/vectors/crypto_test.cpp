#include <catch2/catch.hpp>

#include "core/crypto.h"
#include "core/merkle.h"
#include "vectors.h"

using namespace p2p;

TEST_CASE("hypercore-crypto vectors: key pair, hashes, discovery key, signature", "[vectors][crypto]") {
  auto v = test::load_vector("hypercore-crypto.json");
  auto kp = crypto::key_pair_from_seed(test::key32(v["keyPair"]["seed"]));
  CHECK(to_hex(kp.public_key) == v["keyPair"]["publicKey"]);
  CHECK(to_hex(kp.secret_key) == v["keyPair"]["secretKey"]);

  for (const auto& leaf : v["leaves"]) {
    Bytes data = test::hex(leaf["data"]);
    auto node = merkle::leaf_node(leaf["index"].get<uint64_t>() / 2, data);
    CHECK(to_hex(node.hash) == leaf["hash"]);
    CHECK(node.size == leaf["size"].get<uint64_t>());
    CHECK(to_hex(crypto::hash({test::hex(leaf["preimage"])})) == leaf["hash"]);
  }

  auto& p = v["parent"];
  merkle::Node left{p["left"]["index"], p["left"]["size"], test::key32(p["left"]["hash"])};
  merkle::Node right{p["right"]["index"], p["right"]["size"], test::key32(p["right"]["hash"])};
  CHECK(to_hex(merkle::parent_node(1, left, right).hash) == p["hash"]);
  CHECK(to_hex(merkle::parent_node(1, right, left).hash) == p["hash"]);  // order comes from the indices

  std::vector<merkle::Node> roots;
  for (const auto& r : v["tree"]["roots"]) roots.push_back({r["index"], r["size"], test::key32(r["hash"])});
  CHECK(to_hex(merkle::tree_hash(roots)) == v["tree"]["hash"]);

  CHECK(to_hex(crypto::discovery_key(test::key32(v["discoveryKey"]["key"]))) == v["discoveryKey"]["discoveryKey"]);

  Bytes message = test::hex(v["signature"]["message"]);
  auto sig = crypto::sign(message, kp);
  CHECK(to_hex(sig) == v["signature"]["signature"]);
  CHECK(crypto::verify(message, sig, kp.public_key));
  message[0] ^= 1;
  CHECK_FALSE(crypto::verify(message, sig, kp.public_key));
}

TEST_CASE("hypercore-crypto vectors: namespaces, capability, signable", "[vectors][crypto]") {
  auto v = test::load_vector("hypercore-crypto.json");
  auto& ns = v["namespaces"];
  const auto& h = crypto::hypercore_ns();
  CHECK(to_hex(h.tree) == ns["hypercore[0..5]"]["TREE"]);
  CHECK(to_hex(h.replicate_initiator) == ns["hypercore[0..5]"]["REPLICATE_INITIATOR"]);
  CHECK(to_hex(h.replicate_responder) == ns["hypercore[0..5]"]["REPLICATE_RESPONDER"]);
  CHECK(to_hex(h.manifest) == ns["hypercore[0..5]"]["MANIFEST"]);
  CHECK(to_hex(h.default_namespace) == ns["hypercore[0..5]"]["DEFAULT_NAMESPACE"]);
  CHECK(to_hex(h.default_encryption) == ns["hypercore[0..5]"]["DEFAULT_ENCRYPTION"]);
  CHECK(to_hex(crypto::corestore_ns()) == ns["corestore[0]"]);
  CHECK(to_hex(crypto::namespaces("hyperdrive", {0})[0]) == ns["hyperdrive[0] (BLOBS)"]);
  auto ss = crypto::namespaces("hyperswarm/secret-stream", {0, 1, 2});
  CHECK(to_hex(ss[0]) == ns["hyperswarm/secret-stream[0..2]"]["NS_INITIATOR"]);
  CHECK(to_hex(ss[2]) == ns["hyperswarm/secret-stream[0..2]"]["NS_SEND"]);
  auto dht = crypto::namespaces("hyperswarm/dht", {4, 5, 6, 0, 1, 10});
  CHECK(to_hex(dht[0]) == ns["hyperswarm/dht[ids 4,5,6,0,1,10]"]["ANNOUNCE"]);
  CHECK(to_hex(dht[5]) == ns["hyperswarm/dht[ids 4,5,6,0,1,10]"]["PLUGIN"]);

  auto& cap = v["replicationCapability"];
  Bytes hs = test::hex(cap["handshakeHash"]);
  Key32 key = test::key32(cap["key"]);
  CHECK(to_hex(crypto::hash({h.replicate_initiator, key}, hs)) == cap["initiator"]);
  CHECK(to_hex(crypto::hash({h.replicate_responder, key}, hs)) == cap["responder"]);

  auto& s = v["treeSignable"];
  auto signable = merkle::signable(test::key32(s["manifestHash"]), test::key32(s["treeHash"]), s["length"], s["fork"]);
  CHECK(to_hex(signable) == s["bytes"]);
}
