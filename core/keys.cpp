#include "core/keys.h"

#include <algorithm>
#include <cctype>

namespace p2p::keys {

namespace {
constexpr char kAlphabet[] = "ybndrfg8ejkmcpqxot1uwisza345h769";

int z32_value(char c) {
  for (int i = 0; i < 32; i++)
    if (kAlphabet[i] == c) return i;
  return -1;
}
}  // namespace

std::string to_z32(ByteView bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::optional<Bytes> from_z32(std::string_view text) {
  Bytes out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = z32_value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  // Leftover bits are padding and must be zero for a canonical encoding.
  if (bits > 0 && (buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string link(const Key32& key) { return "p2p://" + to_z32(key); }

std::optional<Key32> parse(std::string_view text) {
  for (std::string_view prefix : {"p2p://", "pear://"}) {
    if (text.substr(0, prefix.size()) == prefix) {
      text.remove_prefix(prefix.size());
      text = text.substr(0, text.find('/'));
      break;
    }
  }
  if (text.size() == 64) return key_from_hex(text);
  if (text.size() == 52) {
    auto bytes = from_z32(text);
    if (!bytes || bytes->size() != 32) return std::nullopt;
    Key32 k{};
    std::copy(bytes->begin(), bytes->end(), k.begin());
    return k;
  }
  return std::nullopt;
}

bool looks_like_key(std::string_view text) {
  if (text.find("://") != std::string_view::npos) return true;
  auto all_of = [&](auto pred) { return std::all_of(text.begin(), text.end(), pred); };
  if (text.size() == 64) return all_of([](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (text.size() == 52) return all_of([](char c) { return z32_value(c) >= 0; });
  return false;
}

const char* accepted_forms() {
  return "52 z-base-32 characters, 64 hex characters, p2p://KEY or pear://KEY";
}

}  // namespace p2p::keys
