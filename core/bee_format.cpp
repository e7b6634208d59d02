#include "core/bee_format.h"

#include "core/protobuf.h"

namespace p2p::bee {

namespace {

Status malformed(const char* what) { return corruption(std::string("hyperbee ") + what + " block is malformed"); }

// A packed repeated varint field (a non-packed single varint is accepted too).
bool read_packed(pb::Reader& r, pb::WireType type, std::vector<uint64_t>& out, size_t max) {
  if (type == pb::kVarint) {
    out.push_back(r.varint());
    return r.ok() && out.size() <= max;
  }
  if (type != pb::kLengthDelimited) return false;
  pb::Reader inner(r.bytes());
  while (r.ok() && inner.ok() && !inner.at_end()) {
    out.push_back(inner.varint());
    if (out.size() > max) return false;
  }
  return r.ok() && inner.ok();
}

Result<Level> decode_level(ByteView b) {
  Level level;
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (field == 1) {
      if (!read_packed(r, type, level.keys, kMaxKeysPerLevel)) return malformed("index");
    } else if (field == 2) {
      if (!read_packed(r, type, level.children, 2 * kMaxKeysPerLevel + 2)) return malformed("index");
    } else {
      r.skip(type);
    }
  }
  if (!r.ok() || level.children.size() % 2 != 0) return malformed("index");
  return level;
}

}  // namespace

Result<std::vector<Level>> decode_index(ByteView b) {
  std::vector<Level> levels;
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (field == 1 && type == pb::kLengthDelimited) {
      auto level = decode_level(r.bytes());
      if (!level.ok()) return level.status();
      levels.push_back(std::move(*level));
      if (levels.size() > kMaxLevels) return malformed("index");
    } else {
      r.skip(type);
    }
  }
  if (!r.ok()) return malformed("index");
  return levels;
}

Bytes encode_header(const Header& h) {
  pb::Writer w;
  w.bytes_field(1, as_bytes(h.protocol));
  if (h.metadata) {
    pb::Writer m;
    if (h.metadata->content_feed) m.bytes_field(1, *h.metadata->content_feed);
    if (h.metadata->user_data) m.bytes_field(2, *h.metadata->user_data);
    w.bytes_field(2, m.bytes());
  }
  return w.take();
}

Result<Header> decode_header(ByteView b) {
  Header h;
  h.protocol.clear();
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (field == 1 && type == pb::kLengthDelimited) {
      h.protocol = std::string(as_chars(r.bytes()));
    } else if (field == 2 && type == pb::kLengthDelimited) {
      Metadata m;
      pb::Reader mr(r.bytes());
      uint32_t f;
      pb::WireType t;
      while (mr.next(f, t)) {
        if (f == 1 && t == pb::kLengthDelimited) m.content_feed = to_bytes(mr.bytes());
        else if (f == 2 && t == pb::kLengthDelimited) m.user_data = to_bytes(mr.bytes());
        else mr.skip(t);
      }
      if (!mr.ok()) return malformed("header");
      h.metadata = std::move(m);
    } else {
      r.skip(type);
    }
  }
  if (!r.ok()) return malformed("header");
  if (h.protocol != "hyperbee") return corruption("not a hyperbee: block 0 names protocol '" + h.protocol + "'");
  return h;
}

Bytes encode_index(const std::vector<Level>& levels) {
  pb::Writer w;
  for (const Level& l : levels) {
    pb::Writer lw;
    lw.packed_field(1, l.keys);
    lw.packed_field(2, l.children);
    w.bytes_field(1, lw.bytes());
  }
  return w.take();
}

Bytes encode_node(ByteView index, ByteView key, const std::optional<ByteView>& value) {
  pb::Writer w;
  w.bytes_field(1, index);
  w.bytes_field(2, key);
  if (value) w.bytes_field(3, *value);
  return w.take();
}

Result<NodeBlock> decode_node(ByteView b) {
  auto raw = decode_node_raw(b);
  if (!raw.ok()) return raw.status();
  auto levels = decode_index(raw->index);
  if (!levels.ok()) return levels.status();
  return NodeBlock{std::move(*levels), std::move(raw->key), std::move(raw->value)};
}

Result<RawNodeBlock> decode_node_raw(ByteView b) {
  RawNodeBlock n;
  bool has_index = false, has_key = false;
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (type != pb::kLengthDelimited) {
      r.skip(type);
      continue;
    }
    ByteView v = r.bytes();
    if (!r.ok()) break;
    if (field == 1) {
      n.index = to_bytes(v);
      has_index = true;
    } else if (field == 2) {
      n.key = to_bytes(v);
      has_key = true;
    } else if (field == 3) {
      n.value = to_bytes(v);
    }
  }
  if (!r.ok() || !has_index || !has_key) return malformed("node");
  return n;
}

// ---- the "hyperbee" extension ------------------------------------------------

Bytes encode_extension(const ExtensionMessage& m) {
  pb::Writer w;
  if (m.cache) {
    pb::Writer c;
    c.varint_field(1, m.cache->start);
    c.varint_field(2, m.cache->end);
    c.packed_field(3, m.cache->blocks);
    w.bytes_field(1, c.bytes());
  }
  if (m.get) {
    pb::Writer g;
    g.varint_field(1, m.get->version);
    g.bytes_field(2, m.get->key);
    w.bytes_field(2, g.bytes());
  }
  if (m.iterator) {
    const ExtensionIterator& it = *m.iterator;
    pb::Writer i;
    i.varint_field(1, it.version);
    if (it.gte) i.bytes_field(2, *it.gte);
    if (it.gt) i.bytes_field(3, *it.gt);
    if (it.lte) i.bytes_field(4, *it.lte);
    if (it.lt) i.bytes_field(5, *it.lt);
    i.varint_field(6, it.limit);
    i.varint_field(7, it.reverse ? 1 : 0);
    i.packed_field(8, it.checkpoint);
    w.bytes_field(3, i.bytes());
  }
  return w.take();
}

namespace {

Status bad_extension() { return corruption("malformed hyperbee extension message"); }

bool decode_cache(ByteView b, ExtensionCache& c) {
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (field == 1 && type == pb::kVarint) c.start = r.varint();
    else if (field == 2 && type == pb::kVarint) c.end = r.varint();
    else if (field == 3) {
      if (!read_packed(r, type, c.blocks, kMaxExtensionBlocks)) return false;
    } else r.skip(type);
  }
  return r.ok();
}

bool decode_get(ByteView b, ExtensionGet& g) {
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (field == 1 && type == pb::kVarint) g.version = r.varint();
    else if (field == 2 && type == pb::kLengthDelimited) g.key = to_bytes(r.bytes());
    else r.skip(type);
  }
  return r.ok();
}

bool decode_iterator(ByteView b, ExtensionIterator& it) {
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (field == 1 && type == pb::kVarint) it.version = r.varint();
    else if (field >= 2 && field <= 5 && type == pb::kLengthDelimited) {
      std::optional<Bytes>* bound[] = {&it.gte, &it.gt, &it.lte, &it.lt};
      *bound[field - 2] = to_bytes(r.bytes());
    } else if (field == 6 && type == pb::kVarint) it.limit = r.varint();
    else if (field == 7 && type == pb::kVarint) it.reverse = r.varint() != 0;
    else if (field == 8) {
      if (!read_packed(r, type, it.checkpoint, kMaxExtensionBlocks)) return false;
    } else r.skip(type);
  }
  return r.ok();
}

}  // namespace

Result<ExtensionMessage> decode_extension(ByteView b) {
  ExtensionMessage m;
  pb::Reader r(b);
  uint32_t field;
  pb::WireType type;
  while (r.next(field, type)) {
    if (type != pb::kLengthDelimited) {
      r.skip(type);
    } else if (field == 1) {
      if (!decode_cache(r.bytes(), m.cache.emplace())) return bad_extension();
    } else if (field == 2) {
      if (!decode_get(r.bytes(), m.get.emplace())) return bad_extension();
    } else if (field == 3) {
      if (!decode_iterator(r.bytes(), m.iterator.emplace())) return bad_extension();
    } else {
      r.skip(type);
    }
  }
  if (!r.ok()) return bad_extension();
  return m;
}

}  // namespace p2p::bee
