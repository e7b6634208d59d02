#include "net/dht_store.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace p2p::dht {
namespace {

constexpr uint32_t kNone = UINT32_MAX;

struct HashKey {
  size_t operator()(const Hash32& h) const {
    size_t v;
    std::memcpy(&v, h.data(), sizeof v);
    return v;
  }
};

// One announce record: 64 bytes, no allocation of its own.
struct Slot {
  Key32 public_key{};
  uint64_t expires = 0;
  uint32_t next = kNone;  // the topic's next record, or the free list's
  uint8_t relay_count = 0;
  std::array<uint8_t, 6 * kMaxRelayAddresses> relays{};

  void set(const PeerRecord& p, uint64_t expiry) {
    public_key = p.public_key;
    expires = expiry;
    relay_count = static_cast<uint8_t>(std::min(p.relay_addresses.size(), kMaxRelayAddresses));
    for (size_t i = 0; i < relay_count; i++) {
      std::memcpy(&relays[i * 6], p.relay_addresses[i].ip.data(), 4);
      relays[i * 6 + 4] = static_cast<uint8_t>(p.relay_addresses[i].port);
      relays[i * 6 + 5] = static_cast<uint8_t>(p.relay_addresses[i].port >> 8);
    }
  }
  PeerRecord get() const {
    PeerRecord p{public_key, {}};
    for (size_t i = 0; i < relay_count; i++) {
      Address a;
      std::memcpy(a.ip.data(), &relays[i * 6], 4);
      a.port = static_cast<uint16_t>(relays[i * 6 + 4] | (relays[i * 6 + 5] << 8));
      p.relay_addresses.push_back(a);
    }
    return p;
  }
};
static_assert(sizeof(Slot) <= 64);

struct TopicHead {
  uint32_t first = kNone;
  uint32_t count = 0;
  uint64_t bump = 0;
};

struct Expiring {
  RecordStore::Forward forward;
  uint64_t expires;
};

struct StoredValue {
  Bytes bytes;
  uint64_t expires;
};

struct StoredRefresh {
  RecordStore::Refresh refresh;
  uint64_t expires;
};

}  // namespace

struct RecordStore::Impl {
  std::vector<Slot> slots;
  uint32_t free_list = kNone;
  size_t records = 0;
  std::unordered_map<Hash32, TopicHead, HashKey> topics;
  std::unordered_map<Hash32, Expiring, HashKey> forwards;
  std::unordered_map<Hash32, StoredRefresh, HashKey> refreshes;
  std::unordered_map<Hash32, StoredValue, HashKey> mutables, immutables;
  size_t value_bytes = 0;

  uint32_t allocate() {
    if (free_list != kNone) {
      uint32_t i = free_list;
      free_list = slots[i].next;
      return i;
    }
    slots.emplace_back();
    return static_cast<uint32_t>(slots.size() - 1);
  }

  void release(uint32_t i) {
    slots[i] = Slot{};
    slots[i].next = free_list;
    free_list = i;
    records--;
  }

  // Removes the topic's records for which `drop` holds; erases an emptied topic.
  template <typename Pred>
  void filter(std::unordered_map<Hash32, TopicHead, HashKey>::iterator it, Pred drop) {
    uint32_t* link = &it->second.first;
    while (*link != kNone) {
      uint32_t i = *link;
      if (drop(slots[i])) {
        *link = slots[i].next;
        release(i);
        it->second.count--;
      } else {
        link = &slots[i].next;
      }
    }
  }

  void sweep_records(uint64_t threshold) {
    for (auto it = topics.begin(); it != topics.end();) {
      filter(it, [&](const Slot& s) { return s.expires <= threshold; });
      it = it->second.count == 0 ? topics.erase(it) : std::next(it);
    }
  }

  std::unordered_map<Hash32, StoredValue, HashKey>& values(Kind k) {
    return k == Kind::mutable_value ? mutables : immutables;
  }
};

RecordStore::RecordStore(StoreLimits limits) : limits_(limits), impl_(std::make_unique<Impl>()) {}
RecordStore::~RecordStore() = default;

StoreStats RecordStore::stats() const {
  return StoreStats{.topics = impl_->topics.size(),
                    .records = impl_->records,
                    .forwards = impl_->forwards.size(),
                    .values = impl_->mutables.size() + impl_->immutables.size(),
                    .value_bytes = impl_->value_bytes};
}

void RecordStore::sweep(uint64_t now) {
  Impl& m = *impl_;
  m.sweep_records(now);
  std::erase_if(m.forwards, [&](const auto& kv) { return kv.second.expires <= now; });
  std::erase_if(m.refreshes, [&](const auto& kv) { return kv.second.expires <= now; });
  for (auto* values : {&m.mutables, &m.immutables}) {
    std::erase_if(*values, [&](const auto& kv) {
      if (kv.second.expires > now) return false;
      m.value_bytes -= kv.second.bytes.size();
      return true;
    });
  }
}

void RecordStore::add(const Hash32& topic, const PeerRecord& peer, uint64_t now) {
  Impl& m = *impl_;
  uint64_t expires = now + limits_.record_ttl_ms;
  if (auto it = m.topics.find(topic); it != m.topics.end()) {
    for (uint32_t i = it->second.first; i != kNone; i = m.slots[i].next) {
      if (m.slots[i].public_key == peer.public_key) {
        uint32_t next = m.slots[i].next;
        m.slots[i].set(peer, expires);
        m.slots[i].next = next;
        return;
      }
    }
  }
  if (m.records >= limits_.max_records) {
    // Full: drop the expired, then the eighth that expires soonest, so the
    // cost of a full scan is spread over many inserts.
    m.sweep_records(now);
    if (m.records >= limits_.max_records) {
      std::vector<uint64_t> expiries;
      expiries.reserve(m.records);
      for (const auto& [k, head] : m.topics) {
        for (uint32_t i = head.first; i != kNone; i = m.slots[i].next) expiries.push_back(m.slots[i].expires);
      }
      auto nth = expiries.begin() + static_cast<long>(expiries.size() / 8);
      std::nth_element(expiries.begin(), nth, expiries.end());
      m.sweep_records(*nth);
    }
  }
  TopicHead& head = m.topics[topic];
  uint32_t i = m.allocate();
  m.slots[i].set(peer, expires);
  m.slots[i].next = head.first;
  head.first = i;
  head.count++;
  m.records++;
}

void RecordStore::remove(const Hash32& topic, const Key32& public_key) {
  Impl& m = *impl_;
  if (auto f = m.forwards.find(topic); f != m.forwards.end() && f->second.forward.peer.public_key == public_key) {
    m.forwards.erase(f);
  }
  auto it = m.topics.find(topic);
  if (it == m.topics.end()) return;
  m.filter(it, [&](const Slot& s) { return s.public_key == public_key; });
  if (it->second.count == 0) m.topics.erase(it);
}

void RecordStore::set_forward(const Hash32& target, const PeerRecord& peer, const Address& server, uint64_t now) {
  remove(target, peer.public_key);
  PeerRecord p = peer;
  if (p.relay_addresses.size() > kMaxRelayAddresses) p.relay_addresses.resize(kMaxRelayAddresses);
  impl_->forwards[target] = Expiring{Forward{std::move(p), server}, now + limits_.record_ttl_ms};
}

std::optional<RecordStore::Forward> RecordStore::forward(const Hash32& target, uint64_t now) const {
  auto it = impl_->forwards.find(target);
  if (it == impl_->forwards.end() || it->second.expires <= now) return std::nullopt;
  return it->second.forward;
}

std::vector<PeerRecord> RecordStore::peers(const Hash32& topic, size_t max, uint64_t now) const {
  const Impl& m = *impl_;
  std::vector<PeerRecord> out;
  if (auto it = m.topics.find(topic); it != m.topics.end()) {
    for (uint32_t i = it->second.first; i != kNone && out.size() < max; i = m.slots[i].next) {
      if (m.slots[i].expires > now) out.push_back(m.slots[i].get());
    }
  }
  if (out.size() < max)
    if (auto f = forward(topic, now)) out.push_back(std::move(f->peer));
  return out;
}

uint64_t RecordStore::bump(const Hash32& topic) const {
  auto it = impl_->topics.find(topic);
  return it == impl_->topics.end() ? 0 : it->second.bump;
}

void RecordStore::raise_bump(const Hash32& topic, uint64_t bump) {
  auto it = impl_->topics.find(topic);
  if (it != impl_->topics.end() && bump > it->second.bump) it->second.bump = bump;
}

void RecordStore::remember_refresh(const Hash32& key, Refresh r, uint64_t now) {
  if (impl_->refreshes.size() >= limits_.max_records && !impl_->refreshes.count(key)) sweep(now);
  if (impl_->refreshes.size() >= limits_.max_records) return;
  impl_->refreshes[key] = StoredRefresh{std::move(r), now + limits_.record_ttl_ms};
}

std::optional<RecordStore::Refresh> RecordStore::take_refresh(const Hash32& key, uint64_t now) {
  auto it = impl_->refreshes.find(key);
  if (it == impl_->refreshes.end()) return std::nullopt;
  StoredRefresh r = std::move(it->second);
  impl_->refreshes.erase(it);
  if (r.expires <= now) return std::nullopt;
  return std::move(r.refresh);
}

bool RecordStore::put_value(Kind kind, const Hash32& key, Bytes bytes, uint64_t now) {
  Impl& m = *impl_;
  auto& map = m.values(kind);
  if (auto it = map.find(key); it != map.end()) {
    m.value_bytes -= it->second.bytes.size();
    map.erase(it);
  }
  auto full = [&] {
    return m.mutables.size() + m.immutables.size() >= limits_.max_values ||
           m.value_bytes + bytes.size() > limits_.max_value_bytes;
  };
  if (full()) sweep(now);
  if (full()) return false;
  m.value_bytes += bytes.size();
  map[key] = StoredValue{std::move(bytes), now + limits_.value_ttl_ms};
  return true;
}

const Bytes* RecordStore::value(Kind kind, const Hash32& key, uint64_t now) const {
  auto& map = kind == Kind::mutable_value ? impl_->mutables : impl_->immutables;
  auto it = map.find(key);
  return it == map.end() || it->second.expires <= now ? nullptr : &it->second.bytes;
}

}  // namespace p2p::dht
