#include <catch2/catch.hpp>

#include <random>

#include "core/encoding.h"

using namespace p2p;

TEST_CASE("decoder: every truncation of a valid encoding fails cleanly", "[encoding]") {
  enc::Encoder e;
  e.uint(70000);
  e.string("hello world");
  e.u64le(42);
  e.uint(1ULL << 40);
  e.buffer(Bytes(300, 7));
  const Bytes full = e.bytes();
  for (size_t cut = 0; cut < full.size(); cut++) {
    ByteView part(full.data(), cut);
    enc::Decoder d(part);
    d.uint();
    d.string();
    d.u64le();
    d.uint();
    d.buffer();
    CHECK_FALSE(d.ok());
    CHECK_FALSE(d.finish("test").ok());
  }
  enc::Decoder d(full);
  CHECK(d.uint() == 70000);
  CHECK(d.string() == "hello world");
  CHECK(d.u64le() == 42);
  CHECK(d.uint() == 1ULL << 40);
  CHECK(d.buffer().size() == 300);
  CHECK(d.finish("test").ok());
}

TEST_CASE("decoder: lengths beyond the input or a limit are errors", "[encoding]") {
  Bytes huge = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};
  enc::Decoder d(huge);
  CHECK(d.buffer().empty());
  CHECK_FALSE(d.ok());

  Bytes limited = {5, 1, 2, 3, 4, 5};
  enc::Decoder d2(limited);
  d2.buffer(4);
  CHECK_FALSE(d2.ok());

  Bytes array = {0xfe, 0, 0, 0, 1};  // 2^24 elements claimed, no bytes follow
  enc::Decoder d3(array);
  CHECK(d3.array_length() == 0);
  CHECK_FALSE(d3.ok());

  Bytes trailing = {1, 2};
  enc::Decoder d4(trailing);
  d4.uint();
  CHECK(d4.ok());
  CHECK_FALSE(d4.done());
  CHECK_FALSE(d4.finish("x").ok());
}

TEST_CASE("decoder: random bytes never read out of bounds", "[encoding][fuzz]") {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20000; round++) {
    Bytes input(rng() % 40);
    for (auto& b : input) b = static_cast<uint8_t>(rng());
    enc::Decoder d(input);
    for (int i = 0; i < 8 && d.ok(); i++) {
      switch (rng() % 6) {
        case 0: d.uint(); break;
        case 1: d.buffer(); break;
        case 2: d.string(); break;
        case 3: d.fixed(32); break;
        case 4: d.array_length(); break;
        case 5: d.zigzag(); break;
      }
    }
    CHECK(d.remaining() <= input.size());
  }
}

TEST_CASE("encoder: uint widths at their boundaries", "[encoding]") {
  for (uint64_t n : {0ULL, 0xfcULL, 0xfdULL, 0xffffULL, 0x10000ULL, 0xffffffffULL, 0x100000000ULL, ~0ULL}) {
    enc::Encoder e;
    e.uint(n);
    enc::Decoder d(e.bytes());
    CHECK(d.uint() == n);
    CHECK(d.done());
  }
  for (int64_t n : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) {
    enc::Encoder e;
    e.zigzag(n);
    enc::Decoder d(e.bytes());
    CHECK(d.zigzag() == n);
  }
}
