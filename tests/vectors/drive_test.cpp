#include <catch2/catch.hpp>

#include "core/drive.h"
#include "vectors.h"

using namespace p2p;

TEST_CASE("hyperdrive vector: keys, manifests, every db block, blob blocks", "[vectors][drive]") {
  auto v = test::load_vector("hyperdrive.json");
  auto store = storage::open_memory();
  Corestore cs(*store, test::key32(v["primaryKey"]));
  auto drive = Drive::open_writable(cs, kDefaultNamespace);
  REQUIRE(drive.ok());
  Drive& d = **drive;
  CHECK(to_hex(d.db().key()) == v["dbKey"]);
  CHECK(to_hex(d.db().discovery_key()) == v["dbDiscoveryKey"]);
  CHECK(to_hex(manifest::encode(d.db().manifest())) == v["dbManifest"]["encoded"]);
  CHECK(to_hex(manifest::encode(d.blobs().manifest())) == v["blobsManifest"]["encoded"]);
  CHECK(to_hex(d.blobs().key()) == v["blobsKey"]);

  REQUIRE(d.put("/hello.txt", as_bytes("Hello, World!")).ok());
  REQUIRE(d.put("dir/../run.sh", as_bytes("#!/bin/sh\necho hi\n"), true, "{\"mode\":493}").ok());
  REQUIRE(d.symlink("/link", "/hello.txt").ok());
  REQUIRE(d.put("/big.bin", Bytes(70000, 'a')).ok());
  REQUIRE(*d.del("/link"));

  for (const auto& b : v["dbBlocks"]) {
    INFO("db block " << b["seq"]);
    CHECK(to_hex(*d.db().get(b["seq"])) == b["raw"]);
  }
  CHECK(d.db().length() == v["dbBlocks"].size());
  CHECK(d.blobs().length() == v["blobsLength"].get<uint64_t>());
  CHECK(d.blobs().byte_length() == v["blobsByteLength"].get<uint64_t>());
  for (const auto& b : v["blobBlocks"]) {
    auto block = d.blobs().get(b["index"]);
    REQUIRE(block.ok());
    CHECK(block->size() == b["byteLength"].get<size_t>());
    CHECK(to_hex(*block).substr(0, b["hexPrefix"].get<std::string>().size()) == b["hexPrefix"]);
  }

  auto hello = d.entry("/hello.txt");
  REQUIRE(hello.ok());
  REQUIRE(hello->has_value());
  const auto& expected = v["helloEntry"];
  CHECK((*hello)->seq == expected["seq"].get<uint64_t>());
  CHECK((*hello)->blob->byte_length == expected["value"]["blob"]["byteLength"].get<uint64_t>());
  std::string content;
  REQUIRE(d.read(**hello, [&](ByteView b) {
    content += as_chars(b);
    return true;
  }).ok());
  CHECK(content == "Hello, World!");
  CHECK_FALSE(d.entry("/link")->has_value());
}

TEST_CASE("drive paths normalise like unix-path-resolve", "[vectors][drive]") {
  CHECK(*normalize_drive_path("dir/../run.sh") == "/run.sh");
  CHECK(*normalize_drive_path("/a//b/./c/") == "/a/b/c");
  CHECK(*normalize_drive_path("a\\b") == "/a/b");
  CHECK(normalize_drive_path("/").status().code() == ErrorCode::invalid_argument);
  CHECK(normalize_drive_path("../etc/passwd").status().code() == ErrorCode::invalid_argument);
  CHECK(normalize_drive_path("/a/../../b").status().code() == ErrorCode::invalid_argument);
  CHECK(*normalize_drive_folder("/") == "/");
  CHECK(*normalize_drive_folder("docs/") == "/docs");
}
