#include "core/encoding.h"

#include <cstring>

namespace p2p::enc {

void Encoder::uint(uint64_t n) {
  if (n <= 0xfc) {
    out_.push_back(static_cast<uint8_t>(n));
  } else if (n <= 0xffff) {
    out_.push_back(0xfd);
    fixed_le(n, 2);
  } else if (n <= 0xffffffffULL) {
    out_.push_back(0xfe);
    fixed_le(n, 4);
  } else {
    out_.push_back(0xff);
    fixed_le(n, 8);
  }
}

void Encoder::zigzag(int64_t n) {
  uint(n < 0 ? (static_cast<uint64_t>(-(n + 1)) << 1) | 1 : static_cast<uint64_t>(n) << 1);
}

void Encoder::float64(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  fixed_le(bits, 8);
}

void Encoder::buffer(ByteView b) {
  uint(b.size());
  raw(b);
}

void Encoder::uint32_array(std::span<const uint32_t> words) {
  uint(words.size());
  for (uint32_t w : words) u32le(w);
}

void Encoder::ipv4_address(const std::array<uint8_t, 4>& ip, uint16_t port) {
  raw(ip);
  u16le(port);
}

void Encoder::fixed_le(uint64_t n, int width) {
  for (int i = 0; i < width; i++) out_.push_back(static_cast<uint8_t>(n >> (8 * i)));
}

void Encoder::fixed_be(uint64_t n, int width) {
  for (int i = width - 1; i >= 0; i--) out_.push_back(static_cast<uint8_t>(n >> (8 * i)));
}

bool Decoder::need(size_t n) {
  if (!ok_ || in_.size() - pos_ < n) {
    ok_ = false;
    return false;
  }
  return true;
}

uint64_t Decoder::fixed_le(int width) {
  if (!need(static_cast<size_t>(width))) return 0;
  uint64_t n = 0;
  for (int i = 0; i < width; i++) n |= static_cast<uint64_t>(in_[pos_ + i]) << (8 * i);
  pos_ += width;
  return n;
}

uint64_t Decoder::fixed_be(int width) {
  if (!need(static_cast<size_t>(width))) return 0;
  uint64_t n = 0;
  for (int i = 0; i < width; i++) n = n << 8 | in_[pos_ + i];
  pos_ += width;
  return n;
}

uint64_t Decoder::uint() {
  uint8_t first = u8();
  if (first <= 0xfc) return first;
  if (first == 0xfd) return fixed_le(2);
  if (first == 0xfe) return fixed_le(4);
  return fixed_le(8);
}

int64_t Decoder::zigzag() {
  uint64_t n = uint();
  return (n & 1) ? -static_cast<int64_t>(n >> 1) - 1 : static_cast<int64_t>(n >> 1);
}

double Decoder::float64() {
  uint64_t bits = fixed_le(8);
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

ByteView Decoder::buffer(size_t max_length) {
  uint64_t n = uint();
  if (n > max_length) {
    ok_ = false;
    return {};
  }
  return fixed(static_cast<size_t>(n));
}

std::string Decoder::string(size_t max_length) {
  auto b = buffer(max_length);
  return std::string(as_chars(b));
}

ByteView Decoder::fixed(size_t n) {
  if (!need(n)) return {};
  ByteView out = in_.subspan(pos_, n);
  pos_ += n;
  return out;
}

ByteView Decoder::rest() {
  if (!ok_) return {};
  ByteView out = in_.subspan(pos_);
  pos_ = in_.size();
  return out;
}

uint64_t Decoder::array_length(uint64_t max) {
  uint64_t n = uint();
  // Every element takes at least one byte, so a count beyond what is left is a lie.
  if (n > max || n > remaining()) {
    ok_ = false;
    return 0;
  }
  return n;
}

Status Decoder::finish(std::string_view what) const {
  if (!ok_) return corruption(std::string(what) + ": truncated or malformed encoding");
  if (pos_ != in_.size()) return corruption(std::string(what) + ": unexpected trailing bytes");
  return {};
}

}  // namespace p2p::enc
