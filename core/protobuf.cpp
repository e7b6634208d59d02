#include "core/protobuf.h"

namespace p2p::pb {

void Writer::varint(uint64_t n) {
  while (n >= 0x80) {
    out_.push_back(static_cast<uint8_t>(n | 0x80));
    n >>= 7;
  }
  out_.push_back(static_cast<uint8_t>(n));
}

void Writer::bytes_field(uint32_t field, ByteView b) {
  tag(field, kLengthDelimited);
  varint(b.size());
  out_.insert(out_.end(), b.begin(), b.end());
}

void Writer::varint_field(uint32_t field, uint64_t n) {
  tag(field, kVarint);
  varint(n);
}

void Writer::packed_field(uint32_t field, std::span<const uint64_t> values) {
  if (values.empty()) return;
  Writer inner;
  for (uint64_t v : values) inner.varint(v);
  bytes_field(field, inner.bytes());
}

uint64_t Reader::varint() {
  uint64_t n = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (!ok_ || pos_ >= in_.size()) break;
    uint8_t b = in_[pos_++];
    n |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return n;
  }
  ok_ = false;  // truncated or longer than 10 bytes
  return 0;
}

ByteView Reader::bytes() {
  uint64_t n = varint();
  if (!ok_ || n > in_.size() - pos_) {
    ok_ = false;
    return {};
  }
  ByteView out = in_.subspan(pos_, n);
  pos_ += n;
  return out;
}

void Reader::skip(WireType type) {
  size_t width = 0;
  switch (type) {
    case kVarint: varint(); return;
    case kLengthDelimited: bytes(); return;
    case kFixed64: width = 8; break;
    case kFixed32: width = 4; break;
    default: ok_ = false; return;
  }
  if (in_.size() - pos_ < width) ok_ = false;
  else pos_ += width;
}

bool Reader::next(uint32_t& field, WireType& type) {
  if (!ok_ || pos_ >= in_.size()) return false;
  uint64_t t = varint();
  if (!ok_) return false;
  field = static_cast<uint32_t>(t >> 3);
  type = static_cast<WireType>(t & 7);
  if (field == 0 || t >> 35) {
    ok_ = false;
    return false;
  }
  return true;
}

}  // namespace p2p::pb
