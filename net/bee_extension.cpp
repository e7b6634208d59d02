#include "net/bee_extension.h"

#include <algorithm>
#include <set>

#include "core/encoding.h"

namespace p2p::net {

namespace {

// Hypercore extensions carry their messages as a compact-encoding buffer
// (registerExtension's default encoding): a length, then the protobuf.
void send(CoreSession& session, const bee::ExtensionMessage& m) {
  enc::Encoder e;
  e.buffer(bee::encode_extension(m));
  session.send_extension(bee::kExtensionName, e.take());
}

// Blocks per cache message and per range answer, as the reference batches them.
constexpr size_t kFlushBatch = 128;
constexpr size_t kMaxRangeBlocks = 2048 + kFlushBatch;
// Blocks a peer's answers may queue for download at once.
constexpr size_t kMaxQueued = 4096;

// Collects the blocks a read touches and sends them in cache messages.
class CacheReply {
 public:
  CacheReply(CoreSession& session, CoreReader& reader) : session_(session), reader_(reader) {}
  ~CacheReply() { flush(); }

  void add(uint64_t seq) {
    if (!seen_.insert(seq).second || !reader_.has(seq)) return;
    cache_.blocks.push_back(seq);
    if (cache_.blocks.size() >= kFlushBatch) flush();
  }
  size_t seen() const { return seen_.size(); }

  void flush() {
    if (cache_.blocks.empty()) return;
    auto [lo, hi] = std::minmax_element(cache_.blocks.begin(), cache_.blocks.end());
    cache_.start = *lo;
    cache_.end = *hi + 1;
    bee::ExtensionMessage m;
    m.cache = std::move(cache_);
    send(session_, m);
    cache_ = {};
  }

 private:
  CoreSession& session_;
  CoreReader& reader_;
  std::set<uint64_t> seen_;
  bee::ExtensionCache cache_;
};

// Runs `read` on the session's core as a bee at `version` and answers with the
// blocks it touched; nothing when the core is no bee or not at that version.
template <typename Read>
void answer(CoreSession& session, uint64_t version, Read read) {
  Core& core = session.core();
  if (!core.has_manifest() || version == 0) return;
  auto reader = core.reader();
  if (!reader.ok() || version > (*reader)->length()) return;
  Bee bee(core);  // its own cache: every block the read needs passes the observer
  CacheReply reply(session, **reader);
  reply.add(0);  // the header, which every reader checks first
  bee.set_block_observer([&](uint64_t seq) { reply.add(seq); });
  read(bee, reply);  // (a read that fails part-way still names the blocks it reached)
}

void answer_get(CoreSession& session, const bee::ExtensionGet& g) {
  answer(session, g.version, [&](Bee& bee, CacheReply&) { (void)bee.get(g.key, g.version); });
}

void answer_range(CoreSession& session, const bee::ExtensionIterator& it) {
  // A reader resuming a range mid-way sends a checkpoint of its cursor; it
  // then gets its blocks one by one, as from a peer without the extension.
  if (!it.checkpoint.empty()) return;
  BeeRange range{it.gt, it.gte, it.lt, it.lte, it.reverse, it.limit == 0 ? -1 : static_cast<int64_t>(std::min<uint64_t>(it.limit, INT64_MAX))};
  answer(session, it.version, [&](Bee& bee, CacheReply& reply) {
    (void)bee.range(range, [&](const BeeEntry&) { return reply.seen() < kMaxRangeBlocks; }, it.version);
  });
}

void download_named(CoreSession& session, const bee::ExtensionCache& cache) {
  Core& core = session.core();
  auto reader = core.reader();
  if (!reader.ok()) return;
  for (uint64_t seq : cache.blocks) {
    if (session.queued() >= kMaxQueued) break;
    if (seq < session.remote_length() && !(*reader)->has(seq)) session.want(seq);
  }
  (void)session.pump_requests();
}

void on_message(CoreSession& session, ByteView payload) {
  enc::Decoder d(payload);
  ByteView body = d.buffer();
  if (!d.done()) return;
  auto m = bee::decode_extension(body);
  if (!m.ok()) return;  // like the reference: a message it cannot read is dropped
  if (m->cache) download_named(session, *m->cache);
  if (m->get) answer_get(session, *m->get);
  if (m->iterator) answer_range(session, *m->iterator);
}

}  // namespace

void use_bee_extension(CoreSession& session) { session.on_extension(bee::kExtensionName, on_message); }

void prefetch_bee_get(CoreSession& session, uint64_t version, ByteView key) {
  use_bee_extension(session);
  bee::ExtensionMessage m;
  m.get = bee::ExtensionGet{version, to_bytes(key)};
  send(session, m);
}

void prefetch_bee_range(CoreSession& session, uint64_t version, const BeeRange& range) {
  use_bee_extension(session);
  bee::ExtensionMessage m;
  m.iterator = bee::ExtensionIterator{version, range.gte, range.gt, range.lte, range.lt,
                                      range.limit < 0 ? 0 : static_cast<uint64_t>(range.limit), range.reverse, {}};
  send(session, m);
}

}  // namespace p2p::net
