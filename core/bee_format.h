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

// The "hyperbee" replication extension (hyperbee lib/extension.js): a reader
// asks its peers which blocks a get or a range walks, and they answer with a
// cache message listing them, so it can download them all at once.
constexpr const char* kExtensionName = "hyperbee";
constexpr size_t kMaxExtensionBlocks = 4096;
struct ExtensionGet {
  uint64_t version = 0;
  Bytes key;
};
struct ExtensionIterator {
  uint64_t version = 0;
  std::optional<Bytes> gte, gt, lte, lt;
  uint64_t limit = 0;  // 0: none
  bool reverse = false;
  std::vector<uint64_t> checkpoint;  // blocks the reader already walked
};
struct ExtensionCache {
  uint64_t start = 0, end = 0;  // the span of `blocks`
  std::vector<uint64_t> blocks;
};
struct ExtensionMessage {
  std::optional<ExtensionCache> cache;
  std::optional<ExtensionGet> get;
  std::optional<ExtensionIterator> iterator;
};
Bytes encode_extension(const ExtensionMessage& m);
Result<ExtensionMessage> decode_extension(ByteView b);

Bytes encode_header(const Header& h);
Result<Header> decode_header(ByteView b);
Bytes encode_index(const std::vector<Level>& levels);
Bytes encode_node(ByteView index, ByteView key, const std::optional<ByteView>& value);
Result<NodeBlock> decode_node(ByteView b);
Result<RawNodeBlock> decode_node_raw(ByteView b);
Result<std::vector<Level>> decode_index(ByteView index);

}  // namespace p2p::bee
