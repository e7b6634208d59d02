#include "net/hyperdht.h"

#include <algorithm>
#include <chrono>

#include "core/encoding.h"

namespace p2p::dht {
namespace {

constexpr uint64_t kMaxBumpDriftMs = 60'000;
constexpr size_t kMaxLookupPeers = 20;
constexpr uint64_t kSweepIntervalMs = 60'000;

uint64_t wall_clock_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

Bytes encode_uint(uint64_t n) {
  enc::Encoder e;
  e.uint(n);
  return e.take();
}

}  // namespace

HyperDht::HyperDht(Node& node, StoreLimits limits) : node_(node), store_(std::make_unique<RecordStore>(limits)) {
  node_.set_request_handler([this](const InboundRequest& r) { return on_request(r); });
}

HyperDht::~HyperDht() { node_.set_request_handler(nullptr); }

StoreStats HyperDht::store_stats() const { return store_->stats(); }

std::optional<RecordStore::Forward> HyperDht::forward(const Hash32& target) const {
  return store_->forward(target, node_.clock().now_ms());
}

// --- serving ---

std::optional<Answer> HyperDht::on_request(const InboundRequest& in) {
  const Request& req = in.message;
  if (req.command == kPeerHandshake || req.command == kPeerHolepunch) {
    return peer_handler_ ? peer_handler_(in) : std::nullopt;
  }
  auto id = node_.id();
  if (!id) return std::nullopt;  // ephemeral nodes store nothing, as hyperdht
  RecordStore& s = *store_;
  uint64_t now = node_.clock().now_ms();
  if (now - last_sweep_ >= kSweepIntervalMs) {
    s.sweep(now);
    last_sweep_ = now;
  }
  switch (req.command) {
    case kFindPeer: {
      if (!req.target) return Answer::dropped();
      auto fwd = s.forward(*req.target, now);
      return fwd ? Answer{.value = encode_peer(fwd->peer)} : Answer{};
    }
    case kLookup: {
      if (!req.target) return Answer::dropped();
      auto peers = s.peers(*req.target, kMaxLookupPeers, now);
      if (peers.empty()) return Answer{};
      std::vector<Bytes> encoded;
      for (const auto& p : peers) encoded.push_back(encode_peer(p));
      return Answer{.value = encode_lookup_reply(std::vector<ByteView>(encoded.begin(), encoded.end()), s.bump(*req.target))};
    }
    case kAnnounce:
    case kUnannounce:
      return on_announce(req, in.from, *id, now);
    case kMutableGet: {
      if (!req.target || !req.value) return Answer::dropped();
      enc::Decoder d(*req.value);
      uint64_t min_seq = d.uint();
      if (!d.ok()) return Answer::dropped();
      const Bytes* v = s.value(RecordStore::Kind::mutable_value, *req.target, now);
      if (!v) return Answer{};
      enc::Decoder stored(*v);
      if (stored.uint() < min_seq) return Answer{};
      return Answer{.value = *v};
    }
    case kMutablePut: {
      if (!req.target || !req.token || !req.value) return Answer::dropped();
      auto put = decode_mutable_put(*req.value);
      if (!put || crypto::hash({put->public_key}) != *req.target) return Answer::dropped();
      if (!crypto::verify(mutable_signable(put->seq, put->value), put->signature, put->public_key)) {
        return Answer::dropped();
      }
      if (const Bytes* v = s.value(RecordStore::Kind::mutable_value, *req.target, now)) {
        auto existing = decode_mutable_record(*v);
        if (existing && existing->seq == put->seq && existing->value != put->value) {
          return Answer{.error = kErrorSeqReused, .token = false};
        }
        if (existing && put->seq < existing->seq) return Answer{.error = kErrorSeqTooLow, .token = false};
      }
      MutableRecord rec{put->seq, std::move(put->value), put->signature};
      if (!s.put_value(RecordStore::Kind::mutable_value, *req.target, encode_mutable_record(rec), now)) {
        return Answer::dropped();
      }
      return Answer{};
    }
    case kImmutableGet: {
      if (!req.target) return Answer::dropped();
      const Bytes* v = s.value(RecordStore::Kind::immutable_value, *req.target, now);
      return v ? Answer{.value = *v} : Answer{};
    }
    case kImmutablePut: {
      if (!req.target || !req.token || !req.value) return Answer::dropped();
      if (crypto::hash({*req.value}) != *req.target) return Answer::dropped();
      if (!s.put_value(RecordStore::Kind::immutable_value, *req.target, *req.value, now)) return Answer::dropped();
      return Answer{};
    }
  }
  return std::nullopt;
}

std::optional<Answer> HyperDht::on_announce(const Request& req, const Address& from, const Hash32& id, uint64_t now) {
  if (!req.target || !req.token || !req.value) return Answer::dropped();
  auto ann = decode_announce(*req.value);
  if (!ann) return Answer::dropped();
  RecordStore& s = *store_;
  const Answer stored{.token = false, .closer_nodes = false};
  bool is_announce = req.command == kAnnounce;
  if (!ann->peer) {
    // A refresh: renew what an earlier announce registered under this token.
    if (!is_announce || !ann->refresh) return Answer::dropped();
    auto r = s.take_refresh(crypto::hash({*ann->refresh}), now);
    if (!r) return Answer::dropped();
    if (r->forward) s.set_forward(r->topic, r->peer, from, now);
    else s.add(r->topic, r->peer, now);
    // The next refresh must reveal the preimage of this token (a hash chain).
    s.remember_refresh(*ann->refresh, *r, now);
    return stored;
  }
  if (!ann->signature) return Answer::dropped();
  const Hash32& ns = is_announce ? namespaces().announce : namespaces().unannounce;
  auto signable = announce_signable(ns, *req.target, id, *req.token, *ann->peer, ann->refresh);
  if (!crypto::verify(signable, *ann->signature, ann->peer->public_key)) return Answer::dropped();
  if (!is_announce) {
    s.remove(*req.target, ann->peer->public_key);
    return stored;
  }
  PeerRecord peer = *ann->peer;
  if (peer.relay_addresses.size() > kMaxRelayAddresses) peer.relay_addresses.resize(kMaxRelayAddresses);
  bool forward = crypto::hash({peer.public_key}) == *req.target;
  if (forward) {
    s.set_forward(*req.target, peer, from, now);
  } else {
    s.add(*req.target, peer, now);
    // bump is a wall-clock time in ms; one far in the future is ignored.
    if (ann->bump <= wall_clock_ms() + kMaxBumpDriftMs) s.raise_bump(*req.target, ann->bump);
  }
  if (ann->refresh) s.remember_refresh(crypto::hash({*ann->refresh}), {*req.target, peer, forward}, now);
  return stored;
}

// --- client operations ---

void HyperDht::put_query(uint64_t query_command, const Hash32& target, std::optional<Bytes> query_value,
                         std::function<std::optional<OutboundRequest>(const Reply&)> make_commit,
                         std::function<void(const PutResult&)> done) {
  struct State {
    uint64_t last_error = 0;
    size_t next_index = 0;
    std::vector<std::optional<Address>> accepted;  // by position among the closest
    std::vector<Address> seen_as;
  };
  auto state = std::make_shared<State>();
  QuerySpec spec{.command = query_command, .target = target, .value = std::move(query_value)};
  spec.commit = [this, make_commit, state](const Reply& reply, std::function<void(bool)> settled) {
    size_t index = state->next_index++;  // commits are made closest first
    if (!reply.token || !reply.from_id) return settled(false);
    auto req = make_commit(reply);
    if (!req) return settled(false);
    req->token = reply.token;
    node_.request(reply.from, *req, [settled, state, index, from = reply.from](const Reply* r) {
      if (r && r->error != 0) state->last_error = r->error;
      bool ok = r && r->error == 0;
      if (ok) {
        if (state->accepted.size() <= index) {
          state->accepted.resize(index + 1);
          state->seen_as.resize(index + 1);
        }
        state->accepted[index] = from;
        state->seen_as[index] = r->to;
      }
      settled(ok);
    });
  };
  spec.on_done = [done, state](const QueryResult& q) {
    PutResult r{.ok = q.ok, .nodes = q.commits_ok, .error = state->last_error, .message = q.error};
    for (size_t i = 0; i < state->accepted.size(); i++) {
      if (!state->accepted[i]) continue;
      r.accepted.push_back(*state->accepted[i]);
      r.seen_as.push_back(state->seen_as[i]);
    }
    done(r);
  };
  node_.query(std::move(spec));
}

void HyperDht::lookup(const Hash32& topic, std::function<void(const FoundPeer&)> on_peer,
                      std::function<void(const QueryResult&)> done) {
  node_.query(QuerySpec{.command = kLookup,
                        .target = topic,
                        .on_reply =
                            [on_peer](const Reply& r) {
                              if (!r.value) return;
                              auto reply = decode_lookup_reply(*r.value);
                              if (!reply) return;
                              for (auto& p : reply->peers) on_peer(FoundPeer{std::move(p), r.from});
                            },
                        .on_done = std::move(done)});
}

void HyperDht::find_peer(const Key32& public_key, std::function<void(std::optional<FoundPeer>)> done) {
  auto found = std::make_shared<std::optional<FoundPeer>>();
  auto finish = std::make_shared<std::function<void(std::optional<FoundPeer>)>>(std::move(done));
  node_.query(QuerySpec{.command = kFindPeer,
                                 .target = crypto::hash({public_key}),
                                 .on_reply =
                                     [found, public_key](const Reply& r) {
                                       if (*found || !r.value) return;
                                       auto peer = decode_peer(*r.value);
                                       if (peer && peer->public_key == public_key) *found = FoundPeer{*peer, r.from};
                                     },
                                 .on_done = [found, finish](const QueryResult&) { (*finish)(*found); }});
}

void HyperDht::announce(const Hash32& topic, const crypto::KeyPair& key_pair, std::vector<Address> relay_addresses,
                        std::function<void(const PutResult&)> done) {
  if (relay_addresses.size() > kMaxRelayAddresses) relay_addresses.resize(kMaxRelayAddresses);
  PeerRecord peer{key_pair.public_key, std::move(relay_addresses)};
  put_query(
      kLookup, topic, std::nullopt,
      [topic, peer, key_pair](const Reply& reply) -> std::optional<OutboundRequest> {
        Announce ann{.peer = peer};
        ann.signature =
            crypto::sign(announce_signable(namespaces().announce, topic, *reply.from_id, *reply.token, peer, std::nullopt),
                         key_pair);
        return OutboundRequest{.command = kAnnounce, .target = topic, .value = encode_announce(ann)};
      },
      std::move(done));
}

void HyperDht::unannounce(const Hash32& topic, const crypto::KeyPair& key_pair,
                          std::function<void(const PutResult&)> done) {
  store_->remove(topic, key_pair.public_key);
  struct State {
    size_t pending = 0, removed = 0;
    bool query_done = false;
    std::function<void(const PutResult&)> done;
    void maybe_finish() {
      if (query_done && pending == 0 && done) {
        auto cb = std::move(done);
        done = nullptr;
        cb(PutResult{.ok = true, .nodes = removed});
      }
    }
  };
  auto state = std::make_shared<State>();
  state->done = std::move(done);
  PeerRecord peer{key_pair.public_key, {}};
  QuerySpec spec{.command = kLookup, .target = topic};
  spec.on_reply = [this, state, topic, peer, key_pair](const Reply& r) {
    if (!r.value || !r.token || !r.from_id) return;
    auto reply = decode_lookup_reply(*r.value);
    if (!reply) return;
    bool holds_ours = reply->peers.size() >= kMaxLookupPeers;
    for (const auto& p : reply->peers) holds_ours = holds_ours || p.public_key == key_pair.public_key;
    if (!holds_ours) return;
    Announce ann{.peer = peer};
    ann.signature = crypto::sign(
        announce_signable(namespaces().unannounce, topic, *r.from_id, *r.token, peer, std::nullopt), key_pair);
    state->pending++;
    node_.request(r.from,
                  OutboundRequest{.command = kUnannounce, .target = topic, .value = encode_announce(ann), .token = r.token},
                  [state](const Reply* res) {
                    state->pending--;
                    if (res && res->error == 0) state->removed++;
                    state->maybe_finish();
                  });
  };
  spec.on_done = [state](const QueryResult&) {
    state->query_done = true;
    state->maybe_finish();
  };
  node_.query(std::move(spec));
}

void HyperDht::immutable_put(ByteView value, std::function<void(const Hash32&, const PutResult&)> done) {
  Hash32 target = crypto::hash({value});
  Bytes copy = to_bytes(value);
  put_query(
      kImmutableGet, target, std::nullopt,
      [target, copy](const Reply&) -> std::optional<OutboundRequest> {
        return OutboundRequest{.command = kImmutablePut, .target = target, .value = copy};
      },
      [target, done](const PutResult& r) { done(target, r); });
}

void HyperDht::immutable_get(const Hash32& hash, std::function<void(std::optional<Bytes>)> done) {
  auto result = std::make_shared<std::optional<Bytes>>();
  auto finish = std::make_shared<std::function<void(std::optional<Bytes>)>>(std::move(done));
  auto query = std::make_shared<std::weak_ptr<Query>>();
  *query = node_.query(QuerySpec{.command = kImmutableGet,
                                 .target = hash,
                                 .on_reply =
                                     [result, finish, query, hash](const Reply& r) {
                                       if (*result || !r.value || crypto::hash({*r.value}) != hash) return;
                                       *result = *r.value;
                                       // The first verified value is the answer: stop asking.
                                       if (auto q = query->lock()) q->cancel();
                                       if (*finish) {
                                         auto cb = std::move(*finish);
                                         *finish = nullptr;
                                         cb(*result);
                                       }
                                     },
                                 .on_done =
                                     [result, finish](const QueryResult&) {
                                       if (*finish) (*finish)(*result);
                                     }});
}

void HyperDht::mutable_put(const crypto::KeyPair& key_pair, ByteView value, uint64_t seq,
                           std::function<void(const PutResult&)> done) {
  Hash32 target = crypto::hash({key_pair.public_key});
  MutablePut put{key_pair.public_key, seq, to_bytes(value), crypto::sign(mutable_signable(seq, value), key_pair)};
  Bytes signed_put = encode_mutable_put(put);
  put_query(
      kMutableGet, target, encode_uint(0),
      [target, signed_put](const Reply&) -> std::optional<OutboundRequest> {
        return OutboundRequest{.command = kMutablePut, .target = target, .value = signed_put};
      },
      std::move(done));
}

void HyperDht::mutable_get(const Key32& public_key, uint64_t min_seq,
                           std::function<void(std::optional<MutableValue>)> done) {
  auto best = std::make_shared<std::optional<MutableValue>>();
  node_.query(QuerySpec{.command = kMutableGet,
                        .target = crypto::hash({public_key}),
                        .value = encode_uint(min_seq),
                        .on_reply =
                            [best, public_key, min_seq](const Reply& r) {
                              if (!r.value) return;
                              auto rec = decode_mutable_record(*r.value);
                              if (!rec || rec->seq < min_seq || (*best && rec->seq <= (*best)->record.seq)) return;
                              if (!crypto::verify(mutable_signable(rec->seq, rec->value), rec->signature, public_key)) return;
                              *best = MutableValue{std::move(*rec), r.from};
                            },
                        .on_done = [best, done](const QueryResult&) { done(*best); }});
}

Hash32 topic_from_text(std::string_view text) {
  if (auto key = key_from_hex(text)) return *key;
  return crypto::hash({as_bytes(text)});
}

}  // namespace p2p::dht
