#include <catch2/catch.hpp>

#include "core/corestore.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/manifest.h"
#include "vectors.h"

using namespace p2p;

namespace {

std::vector<merkle::Node> nodes_of(const nlohmann::json& list) {
  std::vector<merkle::Node> out;
  for (const auto& n : list) out.push_back({n["index"], n["size"], test::key32(n["hash"])});
  return out;
}

// Builds the vector's core: fixed key pair, blocks "a".."j" appended one at a time.
struct VectorCore {
  nlohmann::json v = test::load_vector("hypercore.json");
  std::unique_ptr<storage::Store> store = storage::open_memory();
  std::unique_ptr<Core> core;
  VectorCore() {
    auto kp = crypto::key_pair_from_seed(test::key32(v["keyPair"]["seed"]));
    core = std::move(*Core::open_writable(*store, kp));
  }
};

}  // namespace

TEST_CASE("hypercore vector: manifest, key, discovery key, id", "[vectors][hypercore]") {
  VectorCore vc;
  auto& v = vc.v;
  auto kp = crypto::key_pair_from_seed(test::key32(v["keyPair"]["seed"]));
  CHECK(to_hex(kp.secret_key) == v["keyPair"]["secretKey"]);
  auto m = manifest::default_manifest(kp.public_key);
  CHECK(to_hex(manifest::encode(m)) == v["manifest"]["encoded"]);
  auto decoded = manifest::decode(test::hex(v["manifest"]["encoded"]));
  REQUIRE(decoded.ok());
  CHECK(decoded->quorum == 1);
  CHECK(to_hex(decoded->signers.at(0).public_key) == v["manifest"]["object"]["signers"][0]["publicKey"]);
  CHECK(to_hex(vc.core->key()) == v["key"]);
  CHECK(to_hex(vc.core->discovery_key()) == v["discoveryKey"]);
  CHECK(keys::to_z32(vc.core->key()) == v["id_z32"]);
  CHECK(keys::parse(v["id_z32"].get<std::string>()) == vc.core->key());
}

TEST_CASE("hypercore vector: tree, signature after every append", "[vectors][hypercore]") {
  VectorCore vc;
  auto& v = vc.v;
  auto& history = v["historyAfterEachAppend"];
  for (size_t i = 0; i < v["blocks"].size(); i++) {
    const auto& b = v["blocks"][i];
    REQUIRE(vc.core->append(test::hex(b["value"])).ok());
    const auto& h = history[i];
    INFO("after append " << i);
    CHECK(vc.core->length() == h["length"].get<uint64_t>());
    CHECK(vc.core->byte_length() == h["byteLength"].get<uint64_t>());
    CHECK(vc.core->roots() == nodes_of(h["roots"]));
    CHECK(to_hex(vc.core->tree_hash()) == h["treeHash"]);
    CHECK(to_hex(merkle::signable(vc.core->key(), vc.core->tree_hash(), vc.core->length(), 0)) == h["signable"]);
    CHECK(to_hex(vc.core->signature()) == h["signature"]);
  }
  CHECK(to_hex(vc.core->signature()) == v["signature"]["stored"]);
  CHECK(to_hex(vc.core->tree_hash()) == v["treeHash"]);
  for (const auto& n : v["treeNodes"]) {
    auto node = vc.core->tree_node(n["index"]);
    REQUIRE(node.ok());
    CHECK(to_hex(node->hash) == n["hash"]);
    CHECK(node->size == n["size"].get<uint64_t>());
  }
  for (const auto& b : v["blocks"]) {
    auto got = vc.core->get(b["index"]);
    REQUIRE(got.ok());
    CHECK(to_hex(*got) == b["value"]);
  }
  CHECK(vc.core->verify().ok());
}

TEST_CASE("hypercore vector: a batch append gives the same signed tree", "[vectors][hypercore]") {
  VectorCore vc;
  std::vector<Bytes> blocks;
  for (const auto& b : vc.v["blocks"]) blocks.push_back(test::hex(b["value"]));
  std::vector<ByteView> views(blocks.begin(), blocks.end());
  REQUIRE(vc.core->append(views).ok());
  CHECK(to_hex(vc.core->signature()) == vc.v["signature"]["stored"]);
}

TEST_CASE("hypercore vector: proofs match the reference and verify", "[vectors][hypercore][proof]") {
  VectorCore vc;
  for (const auto& b : vc.v["blocks"]) REQUIRE(vc.core->append(test::hex(b["value"])).ok());
  auto& proofs = vc.v["proofs"];

  auto request_of = [](const nlohmann::json& p, uint64_t block_nodes) {
    merkle::ProofRequest r;
    if (!p["block"].is_null()) r.block = merkle::IndexRequest{p["block"]["index"], block_nodes};
    if (!p["hash"].is_null()) r.hash = merkle::IndexRequest{p["hash"]["index"], 0};
    if (!p["seek"].is_null()) r.seek = merkle::SeekRequest{p["seek"]["bytes"], 0};
    if (!p["upgrade"].is_null()) r.upgrade = merkle::UpgradeRequest{p["upgrade"]["start"], p["upgrade"]["length"]};
    return r;
  };
  auto check_proof = [&](const std::string& name, uint64_t block_nodes) {
    INFO("proof " << name);
    const auto& expected = proofs[name]["proof"];
    auto got = vc.core->proof(request_of(expected, block_nodes));
    INFO(got.status().message());
    REQUIRE(got.ok());
    if (!expected["block"].is_null()) {
      REQUIRE(got->block);
      CHECK(got->block->nodes == nodes_of(expected["block"]["nodes"]));
      CHECK(to_hex(got->block->value) == expected["block"]["value"]);
    }
    if (!expected["hash"].is_null()) {
      REQUIRE(got->hash);
      CHECK(got->hash->nodes == nodes_of(expected["hash"]["nodes"]));
    }
    if (!expected["seek"].is_null()) {
      REQUIRE(got->seek);
      CHECK(got->seek->bytes == expected["seek"]["bytes"]);
      CHECK(got->seek->nodes == nodes_of(expected["seek"]["nodes"]));
    }
    if (!expected["upgrade"].is_null()) {
      REQUIRE(got->upgrade);
      CHECK(got->upgrade->nodes == nodes_of(expected["upgrade"]["nodes"]));
      CHECK(got->upgrade->additional_nodes == nodes_of(expected["upgrade"]["additionalNodes"]));
      CHECK(to_hex(got->upgrade->signature) == expected["upgrade"]["signature"]);
    }
    return *got;
  };
  check_proof("block3_upgrade0to10", 0);
  check_proof("block3_noUpgrade", 0);
  check_proof("block3_nodes2", 2);
  check_proof("hash5_upgrade0to10", 0);
  check_proof("seek5_upgrade0to10", 0);

  // upgrade4to10: requester holds a tree of length 4.
  merkle::ProofRequest up;
  up.upgrade = merkle::UpgradeRequest{4, 6};
  auto got = vc.core->proof(up);
  REQUIRE(got.ok());
  CHECK(got->upgrade->nodes == nodes_of(proofs["upgrade4to10"]["proof"]["upgrade"]["nodes"]));
}
