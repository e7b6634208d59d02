// Byte strings and views, hex conversion.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p2p {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;
using Key32 = std::array<uint8_t, 32>;
using Hash32 = std::array<uint8_t, 32>;
using Signature64 = std::array<uint8_t, 64>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(ByteView b) { return Bytes(b.begin(), b.end()); }
inline bool equal(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

std::string to_hex(ByteView b);
// Lowercase or uppercase hex of even length; nullopt on anything else.
std::optional<Bytes> from_hex(std::string_view hex);
// Exactly 64 hex characters into 32 bytes.
std::optional<Key32> key_from_hex(std::string_view hex);

std::string to_base64(ByteView b);
// Standard base64 with padding; nullopt on anything malformed.
std::optional<Bytes> from_base64(std::string_view text);
// Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool is_valid_utf8(ByteView b);

}  // namespace p2p
