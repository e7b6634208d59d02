// compact-encoding primitives (spec section e). The encoder appends to a
// byte vector; the decoder is bounds-checked with a sticky error: once a read
// would pass the end (or a limit), every later read yields zero values and
// ok() is false. Callers check ok() (and usually done()) once at the end.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::enc {

// compact-encoding's array decoder refuses more elements than this.
constexpr uint64_t kMaxArrayLength = 0x100000;

class Encoder {
 public:
  Encoder() = default;
  explicit Encoder(Bytes&& reuse) : out_(std::move(reuse)) { out_.clear(); }

  void uint(uint64_t n);
  void zigzag(int64_t n);
  void u8(uint8_t n) { out_.push_back(n); }
  void u16le(uint16_t n) { fixed_le(n, 2); }
  void u24le(uint32_t n) { fixed_le(n, 3); }
  void u32le(uint32_t n) { fixed_le(n, 4); }
  void u64le(uint64_t n) { fixed_le(n, 8); }
  void u32be(uint32_t n) { fixed_be(n, 4); }
  void u64be(uint64_t n) { fixed_be(n, 8); }
  void float64(double d);
  void boolean(bool b) { out_.push_back(b ? 1 : 0); }
  void buffer(ByteView b);                     // uint length + bytes
  void string(std::string_view s) { buffer(as_bytes(s)); }
  void raw(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void fixed(ByteView b) { raw(b); }          // fixed32 / fixed64: no length
  void uint32_array(std::span<const uint32_t> words);
  void ipv4_address(const std::array<uint8_t, 4>& ip, uint16_t port);

  const Bytes& bytes() const { return out_; }
  Bytes take() { return std::move(out_); }
  size_t size() const { return out_.size(); }

 private:
  void fixed_le(uint64_t n, int width);
  void fixed_be(uint64_t n, int width);
  Bytes out_;
};

class Decoder {
 public:
  explicit Decoder(ByteView in) : in_(in) {}

  uint64_t uint();
  int64_t zigzag();
  uint8_t u8() { return static_cast<uint8_t>(fixed_le(1)); }
  uint16_t u16le() { return static_cast<uint16_t>(fixed_le(2)); }
  uint32_t u24le() { return static_cast<uint32_t>(fixed_le(3)); }
  uint32_t u32le() { return static_cast<uint32_t>(fixed_le(4)); }
  uint64_t u64le() { return fixed_le(8); }
  uint32_t u32be() { return static_cast<uint32_t>(fixed_be(4)); }
  uint64_t u64be() { return fixed_be(8); }
  double float64();
  bool boolean() { return u8() == 1; }
  // A view into the input: valid as long as the input is.
  ByteView buffer(size_t max_length = SIZE_MAX);
  std::string string(size_t max_length = SIZE_MAX);
  ByteView fixed(size_t n);
  template <size_t N>
  std::array<uint8_t, N> fixed_array() {
    std::array<uint8_t, N> out{};
    auto v = fixed(N);
    if (v.size() == N) std::copy(v.begin(), v.end(), out.begin());
    return out;
  }
  ByteView rest();  // raw: everything left
  // An array's element count; fails above `max` (default: compact-encoding's limit).
  uint64_t array_length(uint64_t max = kMaxArrayLength);

  bool ok() const { return ok_; }
  bool done() const { return ok_ && pos_ == in_.size(); }
  size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
  void fail() { ok_ = false; }
  // ok() and every byte consumed, or a corruption error naming `what`.
  Status finish(std::string_view what) const;

 private:
  bool need(size_t n);
  uint64_t fixed_le(int width);
  uint64_t fixed_be(int width);
  ByteView in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace p2p::enc
