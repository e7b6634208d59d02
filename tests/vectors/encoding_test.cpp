#include <catch2/catch.hpp>

#include "core/encoding.h"
#include "vectors.h"

using namespace p2p;

namespace {
template <typename F>
std::string encoded(F f) {
  enc::Encoder e;
  f(e);
  return to_hex(e.bytes());
}
}  // namespace

TEST_CASE("compact-encoding vectors: uint and int round trip", "[vectors][encoding]") {
  auto v = test::load_vector("compact-encoding.json");
  for (const auto& row : v["uint"]) {
    uint64_t n = row["value"];
    CHECK(encoded([&](auto& e) { e.uint(n); }) == row["hex"]);
    Bytes b = test::hex(row["hex"]);
    enc::Decoder d(b);
    CHECK(d.uint() == n);
    CHECK(d.done());
  }
  for (const auto& row : v["int"]) {
    int64_t n = row["value"];
    CHECK(encoded([&](auto& e) { e.zigzag(n); }) == row["hex"]);
    Bytes b = test::hex(row["hex"]);
    enc::Decoder d(b);
    CHECK(d.zigzag() == n);
    CHECK(d.done());
  }
}

TEST_CASE("compact-encoding vectors: fixed ints, float, bool", "[vectors][encoding]") {
  auto f = test::load_vector("compact-encoding.json")["fixedInts"];
  CHECK(encoded([](auto& e) { e.u8(200); }) == f["uint8_200"]);
  CHECK(encoded([](auto& e) { e.u16le(0x1234); }) == f["uint16_0x1234"]);
  CHECK(encoded([](auto& e) { e.u24le(0x123456); }) == f["uint24_0x123456"]);
  CHECK(encoded([](auto& e) { e.u32le(0x12345678); }) == f["uint32_0x12345678"]);
  CHECK(encoded([](auto& e) { e.u64le(0x0001020304050607); }) == f["uint64_0x0001020304050607"]);
  CHECK(encoded([](auto& e) { e.u32be(0x12345678); }) == f["uint32be_0x12345678"]);
  CHECK(encoded([](auto& e) { e.u64be((uint64_t{1} << 32) + 1); }) == f["uint64be_2e32plus1"]);
  CHECK(encoded([](auto& e) { e.float64(1.5); }) == f["float64_1_5"]);
  CHECK(encoded([](auto& e) { e.boolean(true); }) == f["bool_true"]);
  CHECK(encoded([](auto& e) { e.boolean(false); }) == f["bool_false"]);
  Bytes b = test::hex(f["float64_1_5"]);
  enc::Decoder d(b);
  CHECK(d.float64() == 1.5);
}

TEST_CASE("compact-encoding vectors: strings, buffers, arrays, addresses, frame", "[vectors][encoding]") {
  auto v = test::load_vector("compact-encoding.json");
  for (const auto& row : v["string"]) {
    std::string s = row["value"];
    if (s == "\"x\" * 300") s = std::string(300, 'x');
    CHECK(encoded([&](auto& e) { e.string(s); }) == row["hex"]);
    Bytes b = test::hex(row["hex"]);
    enc::Decoder d(b);
    CHECK(d.string() == s);
    CHECK(d.done());
  }
  for (const auto& row : v["buffer"]) {
    std::string s = row["value"];
    Bytes value = s == "0xaa * 253" ? Bytes(253, 0xaa) : *from_hex(s);
    CHECK(encoded([&](auto& e) { e.buffer(value); }) == row["hex"]);
  }
  CHECK(encoded([](auto& e) { e.buffer({}); }) == v["optionalBuffer"]["null"]);
  Bytes fixed = *from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  CHECK(encoded([&](auto& e) { e.fixed(fixed); }) == v["fixed32"]["hex"]);
  CHECK(encoded([](auto& e) {
          e.uint(3);
          for (uint64_t n : {1, 300, 70000}) e.uint(n);
        }) == v["arrays"]["array(uint)[1,300,70000]"]);
  CHECK(encoded([](auto& e) {
          e.uint(2);
          e.string("a");
          e.string("bc");
        }) == v["arrays"]["array(string)[\"a\",\"bc\"]"]);
  uint32_t words[] = {1, 0x01020304};
  CHECK(encoded([&](auto& e) { e.uint32_array(words); }) == v["uint32array"]["[1, 0x01020304]"]);
  CHECK(encoded([](auto& e) { e.ipv4_address({127, 0, 0, 1}, 49737); }) ==
        v["ipv4Address"]["{host:\"127.0.0.1\",port:49737}"]);
  CHECK(encoded([](auto& e) { e.ipv4_address({88, 99, 3, 86}, 49737); }) ==
        v["ipv4Address"]["{host:\"88.99.3.86\",port:49737}"]);
  CHECK(encoded([](auto& e) {
          enc::Encoder inner;
          inner.string("hi");
          e.buffer(inner.bytes());
        }) == v["frame"]["frame(string)(\"hi\")"]);
}
