// The Hypercore replication messages (spec h.2), one struct per message
// type, with their compact encodings. Decoders bound every length and fail
// on trailing or missing bytes.
#pragma once

#include <optional>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "core/merkle.h"

namespace p2p::net::wire {

enum MessageType : uint64_t {
  kSync = 0,
  kRequest = 1,
  kCancel = 2,
  kData = 3,
  kNoData = 4,
  kWant = 5,
  kUnwant = 6,
  kBitfield = 7,
  kRange = 8,
  kExtension = 9,
};

// The channel-open handshake: flags (bit 0: seeks) and the capability.
struct Handshake {
  bool seeks = true;
  Hash32 capability{};
};
Bytes encode(const Handshake& m);
Result<Handshake> decode_handshake(ByteView b);

struct Sync {
  bool can_upgrade = true;
  bool uploading = true;
  bool downloading = true;
  bool has_manifest = false;
  bool allow_push = false;
  uint64_t fork = 0;
  uint64_t length = 0;
  uint64_t remote_length = 0;
};

struct Request {
  uint64_t id = 0;
  uint64_t fork = 0;
  std::optional<merkle::IndexRequest> block;
  std::optional<merkle::IndexRequest> hash;
  std::optional<merkle::SeekRequest> seek;
  std::optional<merkle::UpgradeRequest> upgrade;
  bool manifest = false;
  uint64_t priority = 0;
};

struct Data {
  uint64_t request = 0;
  merkle::Proof proof;             // fork, block, hash, seek, upgrade
  std::optional<Bytes> manifest;   // encoded manifest
};

struct NoData {
  uint64_t request = 0;
  uint64_t reason = 0;  // 0: none given, 1 not available, 2 invalid request
};

struct Want {  // also unwant
  uint64_t start = 0;
  uint64_t length = 0;
  bool any = false;
};

struct Bitfield {
  uint64_t start = 0;  // a multiple of 32
  std::vector<uint32_t> words;
};

struct Range {
  bool drop = false;
  uint64_t start = 0;
  uint64_t length = 0;
};

struct Extension {
  std::string name;
  Bytes message;
};

Bytes encode(const Sync& m);
Bytes encode(const Request& m);
Bytes encode_cancel(uint64_t request);
Bytes encode(const Data& m);
Bytes encode(const NoData& m);
Bytes encode(const Want& m);
Bytes encode(const Bitfield& m);
Bytes encode(const Range& m);
Bytes encode(const Extension& m);

Result<Sync> decode_sync(ByteView b);
Result<Request> decode_request(ByteView b);
Result<uint64_t> decode_cancel(ByteView b);
Result<Data> decode_data(ByteView b);
Result<NoData> decode_no_data(ByteView b);
Result<Want> decode_want(ByteView b);
Result<Bitfield> decode_bitfield(ByteView b);
Result<Range> decode_range(ByteView b);
Result<Extension> decode_extension(ByteView b);

}  // namespace p2p::net::wire
