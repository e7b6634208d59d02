// Loads ../shared/vectors JSON files (copied into tests/vectors/data).
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/bytes.h"

namespace p2p::test {

inline nlohmann::json load_vector(const std::string& name) {
  std::ifstream in(std::string(P2P_VECTORS_DIR) + "/" + name);
  if (!in) throw std::runtime_error("missing vector file " + name);
  return nlohmann::json::parse(in);
}

inline Bytes hex(const nlohmann::json& j) { return *from_hex(j.get<std::string>()); }
inline Key32 key32(const nlohmann::json& j) { return *key_from_hex(j.get<std::string>()); }

}  // namespace p2p::test
