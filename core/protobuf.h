// The protobuf wire format as Hyperbee's messages use it: LEB128 varints,
// tags (field << 3 | wire type), length-delimited fields, packed repeated
// varints. Decoding is bounds-checked with a sticky error, like enc::Decoder.
#pragma once

#include <cstdint>

#include "base/bytes.h"

namespace p2p::pb {

enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class Writer {
 public:
  void varint(uint64_t n);
  void tag(uint32_t field, WireType type) { varint(uint64_t{field} << 3 | type); }
  void bytes_field(uint32_t field, ByteView b);
  void varint_field(uint32_t field, uint64_t n);
  // A packed repeated varint field; omitted when empty.
  void packed_field(uint32_t field, std::span<const uint64_t> values);
  const Bytes& bytes() const { return out_; }
  Bytes take() { return std::move(out_); }

 private:
  Bytes out_;
};

class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}
  // Advances to the next field; false at the end or on error.
  bool next(uint32_t& field, WireType& type);
  uint64_t varint();
  ByteView bytes();  // a length-delimited field's payload
  void skip(WireType type);
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ >= in_.size(); }
  void fail() { ok_ = false; }

 private:
  ByteView in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace p2p::pb
