#include "net/wire.h"

#include "core/encoding.h"

namespace p2p::net::wire {

namespace {

// A proof never needs more nodes than the tree is deep (64 levels, twice
// for an upgrade's two lists); more is a hostile peer.
constexpr uint64_t kMaxNodes = 256;
constexpr size_t kMaxManifest = 64 * 1024;
constexpr size_t kMaxBlockMessage = 16 * 1024 * 1024;
constexpr size_t kMaxSignature = 64 * 1024;
constexpr size_t kMaxExtensionName = 256;
// One bitfield message covers at most a 2^21-bit segment.
constexpr uint64_t kMaxBitfieldWords = (1u << 21) / 32;

void encode_nodes(enc::Encoder& e, const std::vector<merkle::Node>& nodes) {
  e.uint(nodes.size());
  for (const auto& n : nodes) {
    e.uint(n.index);
    e.uint(n.size);
    e.fixed(n.hash);
  }
}

std::vector<merkle::Node> decode_nodes(enc::Decoder& d) {
  std::vector<merkle::Node> nodes(d.array_length(kMaxNodes));
  for (auto& n : nodes) {
    n.index = d.uint();
    n.size = d.uint();
    n.hash = d.fixed_array<32>();
  }
  return nodes;
}

template <typename T>
Result<T> checked(const enc::Decoder& d, T value, const char* what) {
  // Like the reference, trailing bytes are tolerated (newer peers may add fields).
  if (!d.ok()) return corruption(std::string("malformed ") + what + " message");
  return value;
}

}  // namespace

Bytes encode(const Handshake& m) {
  enc::Encoder e;
  e.uint(m.seeks ? 1 : 0);
  e.fixed(m.capability);
  return e.take();
}

Result<Handshake> decode_handshake(ByteView b) {
  enc::Decoder d(b);
  Handshake m;
  m.seeks = (d.uint() & 1) != 0;
  m.capability = d.fixed_array<32>();
  return checked(d, m, "handshake");
}

Bytes encode(const Sync& m) {
  enc::Encoder e;
  e.uint((m.can_upgrade ? 1 : 0) | (m.uploading ? 2 : 0) | (m.downloading ? 4 : 0) | (m.has_manifest ? 8 : 0) |
         (m.allow_push ? 16 : 0));
  e.uint(m.fork);
  e.uint(m.length);
  e.uint(m.remote_length);
  return e.take();
}

Result<Sync> decode_sync(ByteView b) {
  enc::Decoder d(b);
  Sync m;
  uint64_t flags = d.uint();
  m.fork = d.uint();
  m.length = d.uint();
  m.remote_length = d.uint();
  m.can_upgrade = flags & 1;
  m.uploading = flags & 2;
  m.downloading = flags & 4;
  m.has_manifest = flags & 8;
  m.allow_push = flags & 16;
  return checked(d, m, "sync");
}

Bytes encode(const Request& m) {
  enc::Encoder e;
  e.uint((m.block ? 1 : 0) | (m.hash ? 2 : 0) | (m.seek ? 4 : 0) | (m.upgrade ? 8 : 0) | (m.manifest ? 16 : 0) |
         (m.priority ? 32 : 0));
  e.uint(m.id);
  e.uint(m.fork);
  if (m.block) e.uint(m.block->index), e.uint(m.block->nodes);
  if (m.hash) e.uint(m.hash->index), e.uint(m.hash->nodes);
  if (m.seek) e.uint(m.seek->bytes), e.uint(m.seek->padding);
  if (m.upgrade) e.uint(m.upgrade->start), e.uint(m.upgrade->length);
  if (m.priority) e.uint(m.priority);
  return e.take();
}

Result<Request> decode_request(ByteView b) {
  enc::Decoder d(b);
  Request m;
  uint64_t flags = d.uint();
  m.id = d.uint();
  m.fork = d.uint();
  if (flags & 1) m.block = merkle::IndexRequest{d.uint(), d.uint()};
  if (flags & 2) m.hash = merkle::IndexRequest{d.uint(), d.uint()};
  if (flags & 4) m.seek = merkle::SeekRequest{d.uint(), d.uint()};
  if (flags & 8) m.upgrade = merkle::UpgradeRequest{d.uint(), d.uint()};
  m.manifest = flags & 16;
  if (flags & 32) m.priority = d.uint();
  return checked(d, m, "request");
}

Bytes encode_cancel(uint64_t request) {
  enc::Encoder e;
  e.uint(request);
  return e.take();
}

Result<uint64_t> decode_cancel(ByteView b) {
  enc::Decoder d(b);
  uint64_t id = d.uint();
  return checked(d, id, "cancel");
}

Bytes encode(const Data& m) {
  const merkle::Proof& p = m.proof;
  enc::Encoder e;
  e.uint((p.block ? 1 : 0) | (p.hash ? 2 : 0) | (p.seek ? 4 : 0) | (p.upgrade ? 8 : 0) | (m.manifest ? 16 : 0));
  e.uint(m.request);
  e.uint(p.fork);
  if (p.block) {
    e.uint(p.block->index);
    e.buffer(p.block->value);
    encode_nodes(e, p.block->nodes);
  }
  if (p.hash) {
    e.uint(p.hash->index);
    encode_nodes(e, p.hash->nodes);
  }
  if (p.seek) {
    e.uint(p.seek->bytes);
    encode_nodes(e, p.seek->nodes);
  }
  if (p.upgrade) {
    e.uint(p.upgrade->start);
    e.uint(p.upgrade->length);
    encode_nodes(e, p.upgrade->nodes);
    encode_nodes(e, p.upgrade->additional_nodes);
    e.buffer(p.upgrade->signature);
  }
  if (m.manifest) e.raw(*m.manifest);
  return e.take();
}

Result<Data> decode_data(ByteView b) {
  enc::Decoder d(b);
  Data m;
  merkle::Proof& p = m.proof;
  uint64_t flags = d.uint();
  m.request = d.uint();
  p.fork = d.uint();
  if (flags & 1) {
    p.block.emplace();
    p.block->index = d.uint();
    p.block->value = to_bytes(d.buffer(kMaxBlockMessage));
    p.block->nodes = decode_nodes(d);
  }
  if (flags & 2) {
    p.hash.emplace();
    p.hash->index = d.uint();
    p.hash->nodes = decode_nodes(d);
  }
  if (flags & 4) {
    p.seek.emplace();
    p.seek->bytes = d.uint();
    p.seek->nodes = decode_nodes(d);
  }
  if (flags & 8) {
    p.upgrade.emplace();
    p.upgrade->start = d.uint();
    p.upgrade->length = d.uint();
    p.upgrade->nodes = decode_nodes(d);
    p.upgrade->additional_nodes = decode_nodes(d);
    p.upgrade->signature = to_bytes(d.buffer(kMaxSignature));
  }
  if (flags & 16) {
    ByteView rest = d.rest();
    if (rest.empty() || rest.size() > kMaxManifest) return corruption("malformed data message (manifest)");
    m.manifest = to_bytes(rest);
  }
  return checked(d, std::move(m), "data");
}

Bytes encode(const NoData& m) {
  enc::Encoder e;
  e.uint(m.request);
  e.uint(m.reason ? 1 : 0);
  if (m.reason) e.uint(m.reason);
  return e.take();
}

Result<NoData> decode_no_data(ByteView b) {
  enc::Decoder d(b);
  NoData m;
  m.request = d.uint();
  uint64_t flags = d.done() ? 0 : d.uint();  // old peers omit the flags
  if (flags & 1) m.reason = d.uint();
  return checked(d, m, "noData");
}

Bytes encode(const Want& m) {
  enc::Encoder e;
  e.uint(m.start);
  e.uint(m.length);
  if (m.any) e.uint(1);
  return e.take();
}

Result<Want> decode_want(ByteView b) {
  enc::Decoder d(b);
  Want m;
  m.start = d.uint();
  m.length = d.uint();
  m.any = !d.done() && (d.uint() & 1);
  return checked(d, m, "want");
}

Bytes encode(const Bitfield& m) {
  enc::Encoder e;
  e.uint(m.start);
  e.uint32_array(m.words);
  return e.take();
}

Result<Bitfield> decode_bitfield(ByteView b) {
  enc::Decoder d(b);
  Bitfield m;
  m.start = d.uint();
  m.words.resize(d.array_length(kMaxBitfieldWords));
  for (auto& w : m.words) w = d.u32le();
  return checked(d, std::move(m), "bitfield");
}

Bytes encode(const Range& m) {
  enc::Encoder e;
  e.uint((m.drop ? 1 : 0) | (m.length == 1 ? 2 : 0));
  e.uint(m.start);
  if (m.length != 1) e.uint(m.length);
  return e.take();
}

Result<Range> decode_range(ByteView b) {
  enc::Decoder d(b);
  Range m;
  uint64_t flags = d.uint();
  m.drop = flags & 1;
  m.start = d.uint();
  m.length = (flags & 2) ? 1 : d.uint();
  return checked(d, m, "range");
}

Bytes encode(const Extension& m) {
  enc::Encoder e;
  e.string(m.name);
  e.raw(m.message);
  return e.take();
}

Result<Extension> decode_extension(ByteView b) {
  enc::Decoder d(b);
  Extension m;
  m.name = d.string(kMaxExtensionName);
  m.message = to_bytes(d.rest());
  return checked(d, std::move(m), "extension");
}

}  // namespace p2p::net::wire
