// Hyperbee 2 block formats (spec c.1): block 0 is a Header, every later block
// a Node holding one key, its value (absent for a deletion) and a YoloIndex
// of the B-tree nodes written with it.
#pragma once

#include <optional>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::bee {

// Limits on untrusted blocks (an honest writer stays far below them).
constexpr size_t kMaxLevels = 4096;
constexpr size_t kMaxKeysPerLevel = 1024;

struct Metadata {
  std::optional<Bytes> content_feed;
  std::optional<Bytes> user_data;
};

struct Header {
  std::string protocol = "hyperbee";
  std::optional<Metadata> metadata;
};

struct Level {
  std::vector<uint64_t> keys;      // block seqs holding the separator keys
  std::vector<uint64_t> children;  // flat (seq, offset) pairs
};

struct NodeBlock {
  std::vector<Level> levels;
  Bytes key;
  std::optional<Bytes> value;
};

// A node block with its index left encoded: scans and lookups of entries
// need only the key and value, and the encoded index is far smaller.
struct RawNodeBlock {
  Bytes index;
  Bytes key;
  std::optional<Bytes> value;
};

Bytes encode_header(const Header& h);
Result<Header> decode_header(ByteView b);
Bytes encode_index(const std::vector<Level>& levels);
Bytes encode_node(ByteView index, ByteView key, const std::optional<ByteView>& value);
Result<NodeBlock> decode_node(ByteView b);
Result<RawNodeBlock> decode_node_raw(ByteView b);
Result<std::vector<Level>> decode_index(ByteView index);

}  // namespace p2p::bee
