#include <catch2/catch.hpp>

#include <map>

#include "core/flat_tree.h"
#include "core/merkle.h"
#include "net/wire.h"
#include "vectors.h"

using namespace p2p;

namespace {

struct MapSource : merkle::NodeSource {
  std::map<uint64_t, merkle::Node> nodes;
  std::optional<merkle::Node> node(uint64_t index) override {
    auto it = nodes.find(index);
    if (it == nodes.end()) return std::nullopt;
    return it->second;
  }
};

std::optional<merkle::IndexRequest> index_request(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return merkle::IndexRequest{j["index"], j["nodes"]};
}

merkle::ProofRequest request_of(const nlohmann::json& r) {
  merkle::ProofRequest req;
  req.block = index_request(r["block"]);
  req.hash = index_request(r["hash"]);
  req.seek = merkle::SeekRequest{r["seek"]["bytes"], r["seek"]["padding"]};
  if (!r["upgrade"].is_null()) req.upgrade = merkle::UpgradeRequest{r["upgrade"]["start"], r["upgrade"]["length"]};
  return req;
}

}  // namespace

// seek-proofs.json comes from tests/vectors/gen/seek-proofs.mjs (hypercore 11.37.1).
TEST_CASE("seek vectors: our seek proofs equal the reference's, byte for byte, and verify",
          "[vectors][merkle][seek]") {
  auto v = test::load_vector("seek-proofs.json");
  const uint64_t length = v["length"];
  MapSource tree;
  for (const auto& n : v["nodes"]) tree.nodes[n["index"]] = {n["index"], n["size"], test::key32(n["hash"])};
  Bytes signature = test::hex(v["signature"]);

  size_t proofs = 0, refused = 0, with_seek = 0;
  for (const auto& c : v["cases"]) {
    INFO("request " << c["request"].dump());
    merkle::ProofRequest req = request_of(c["request"]);
    auto got = merkle::generate_proof(tree, length, 0, signature, req);
    if (c.contains("error")) {
      INFO("the reference refused: " << c["error"].get<std::string>());
      CHECK_FALSE(got.ok());
      refused++;
      continue;
    }
    INFO(got.status().message());
    REQUIRE(got.ok());
    if (got->block) got->block->value = Bytes(v["blockSizes"][got->block->index].get<size_t>(), uint8_t(got->block->index));
    net::wire::Data data;
    data.request = 1;
    data.proof = *got;
    CHECK(to_hex(net::wire::encode(data)) == c["wireData"].get<std::string>());
    proofs++;
    if (!got->seek) continue;
    with_seek++;

    // The requester's side: what it trusts before the proof.
    uint64_t trusted_length = req.upgrade ? req.upgrade->start : length;
    MapSource trusted;
    std::vector<merkle::Node> roots;
    for (uint64_t r : flat::full_roots(2 * trusted_length)) roots.push_back(tree.nodes.at(r));
    for (const auto& [index, node] : tree.nodes)
      if (flat::right_span(index) < 2 * trusted_length) trusted.nodes[index] = node;
    auto verified = merkle::verify_proof(*got, roots, trusted);
    INFO(verified.status().message());
    CHECK(verified.ok());

    // A changed hash in the seek path is caught: by a trusted node, or (with an
    // upgrade) by a tree hash the signature no longer covers.
    merkle::Proof bad = *got;
    bad.seek->nodes.back().hash[0] ^= 1;
    auto tampered = merkle::verify_proof(bad, roots, trusted);
    if (tampered.ok()) {
      REQUIRE(req.upgrade);
      REQUIRE(verified.ok());
      CHECK(tampered->tree.hash() != verified->tree.hash());
    }
  }
  CHECK(proofs >= 100);
  CHECK(refused >= 100);
  CHECK(with_seek >= 50);
}
