#include "net/session.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/crypto.h"

namespace p2p::net {

namespace {

constexpr uint64_t kNotAvailable = 1;
constexpr uint64_t kInvalidRequest = 2;
// A peer that keeps asking for nonsense is not worth serving.
constexpr uint64_t kMaxInvalidRequests = 64;
// Bounds what a peer can make us remember about its blocks.
constexpr size_t kMaxRemoteRanges = 1 << 16;
// Largest window a `want` is answered for (one bitfield segment).
constexpr uint64_t kMaxWantSpan = 1u << 21;

const char* message_name(uint64_t type) {
  static const char* names[] = {"sync", "request", "cancel", "data", "noData", "want", "unwant", "bitfield", "range",
                                "extension"};
  return type < 10 ? names[type] : "unknown";
}

// P2P_TRACE=1 logs every replication message on stderr (for debugging peers).
bool tracing() {
  static const bool on = [] {
    const char* v = std::getenv("P2P_TRACE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

void trace(const Core& core, const char* dir, uint64_t type, ByteView payload) {
  if (!tracing()) return;
  std::fprintf(stderr, "[p2p] %s %s %s %s\n", core.label().c_str(), dir, message_name(type),
               to_hex(payload.subspan(0, std::min<size_t>(payload.size(), 48))).c_str());
}

}  // namespace

void CoreSession::send(uint64_t type, ByteView payload) {
  trace(core_, "->", type, payload);
  mux_.send(channel_, type, payload);
}

Hash32 replication_capability(bool initiator, const Key32& core_key, const std::array<uint8_t, 64>& handshake_hash) {
  const auto& ns = crypto::hypercore_ns();
  return crypto::hash({initiator ? ns.replicate_initiator : ns.replicate_responder, core_key}, handshake_hash);
}

CoreSession::CoreSession(Mux& mux, Core& core, const HandshakeResult& handshake, bool initiator)
    : mux_(mux), core_(core), handshake_(handshake), initiator_(initiator) {}

CoreSession::~CoreSession() { close(); }

Status CoreSession::open() {
  wire::Handshake hs{true, replication_capability(initiator_, core_.key(), handshake_.hash)};
  auto id = mux_.open(std::string(kHypercoreProtocol), core_.discovery_key(), wire::encode(hs), this);
  if (!id.ok()) return id.status();
  if (channel_ == 0) channel_ = *id;
  return {};
}

void CoreSession::close() {
  if (closed_ || channel_ == 0) return;
  closed_ = true;
  mux_.close(channel_);
}

void CoreSession::on_close() {
  if (tracing()) std::fprintf(stderr, "[p2p] %s channel closed by the peer\n", core_.label().c_str());
  closed_ = true;
  (void)finish_applying();  // what it stored is reported; the rest is asked again elsewhere
  if (hooks_.on_close) hooks_.on_close();
}

Status CoreSession::on_open(uint64_t channel, ByteView remote_handshake) {
  channel_ = channel;
  auto hs = wire::decode_handshake(remote_handshake);
  if (!hs.ok()) return hs.status();
  if (hs->capability != replication_capability(!initiator_, core_.key(), handshake_.hash))
    return error(ErrorCode::verification, "the peer's capability for core " + core_.label() + " is wrong");
  opened_ = true;
  P2P_TRY(core_.refresh());
  mux_.cork();
  Status s = send_sync();
  if (s.ok() && core_.has_manifest()) {
    auto contiguous = core_.writable() ? Result<uint64_t>(core_.length()) : core_.contiguous_length();
    if (!contiguous.ok()) s = contiguous.status();
    else if (*contiguous > 0)
      send(wire::kRange, wire::encode(wire::Range{false, 0, *contiguous}));
  }
  mux_.uncork();
  return s;
}

Status CoreSession::send_sync() {
  wire::Sync s;
  s.has_manifest = core_.has_manifest();
  s.fork = core_.fork();
  s.length = core_.length();
  s.remote_length = remote_.length;
  advertised_length_ = s.length;
  send(wire::kSync, wire::encode(s));
  return {};
}

Status CoreSession::notify_length() {
  if (!opened_ || closed_) return {};
  uint64_t before = advertised_length_;
  P2P_TRY(core_.refresh());
  if (core_.length() == before) return {};
  mux_.cork();
  send_sync();
  if (core_.writable() && core_.length() > before)
    send(wire::kRange, wire::encode(wire::Range{false, before, core_.length() - before}));
  mux_.uncork();
  return {};
}

void CoreSession::announce_range(uint64_t start, uint64_t length) {
  if (opened_ && !closed_ && length > 0) send(wire::kRange, wire::encode(wire::Range{false, start, length}));
}

Status CoreSession::on_message(uint64_t type, ByteView payload) {
  trace(core_, "<-", type, payload);
  switch (type) {
    case wire::kSync: {
      auto m = wire::decode_sync(payload);
      if (!m.ok()) return m.status();
      return on_sync(*m);
    }
    case wire::kRequest: {
      auto m = wire::decode_request(payload);
      if (!m.ok()) return m.status();
      return on_request(*m);
    }
    case wire::kCancel: {
      auto m = wire::decode_cancel(payload);
      // Requests are answered as they arrive (a busy link pauses reading, so
      // none wait here): by the time a cancel is read there is nothing to drop.
      return m.ok() ? Status{} : m.status();
    }
    case wire::kData: {
      auto m = wire::decode_data(payload);
      if (!m.ok()) return m.status();
      return on_data(std::move(*m));
    }
    case wire::kNoData: {
      auto m = wire::decode_no_data(payload);
      if (!m.ok()) return m.status();
      return on_no_data(*m);
    }
    case wire::kWant: {
      auto m = wire::decode_want(payload);
      if (!m.ok()) return m.status();
      return on_want(*m);
    }
    case wire::kUnwant: {
      auto m = wire::decode_want(payload);
      return m.ok() ? Status{} : m.status();
    }
    case wire::kBitfield: {
      auto m = wire::decode_bitfield(payload);
      if (!m.ok()) return m.status();
      // Record runs of set bits as ranges.
      uint64_t run_start = 0, run = 0;
      for (size_t j = 0; j < m->words.size(); j++)
        for (int b = 0; b < 32; b++) {
          uint64_t index = m->start + 32 * j + b;
          if (m->words[j] >> b & 1) {
            if (run == 0) run_start = index;
            run++;
          } else if (run > 0) {
            add_remote_range(run_start, run, false);
            run = 0;
          }
        }
      if (run > 0) add_remote_range(run_start, run, false);
      return {};
    }
    case wire::kRange: {
      auto m = wire::decode_range(payload);
      if (!m.ok()) return m.status();
      add_remote_range(m->start, m->length, m->drop);
      return {};
    }
    case wire::kExtension: {
      auto m = wire::decode_extension(payload);
      if (!m.ok()) return m.status();
      if (!m->name.empty()) last_extension_received_ = m->name;
      auto it = extensions_.find(last_extension_received_);
      if (it != extensions_.end()) it->second(*this, m->message);
      return {};
    }
    default:
      return {};  // newer message types are ignored, as the reference does
  }
}

void CoreSession::on_extension(const std::string& name, ExtensionHandler handler) {
  extensions_[name] = std::move(handler);
}

void CoreSession::send_extension(const std::string& name, ByteView message) {
  if (!opened_ || closed_) return;
  wire::Extension m{name == last_extension_sent_ ? std::string() : name, to_bytes(message)};
  last_extension_sent_ = name;
  send(wire::kExtension, wire::encode(m));
}

Status CoreSession::on_sync(const wire::Sync& m) {
  bool first = !remote_synced_;
  remote_ = m;
  remote_synced_ = true;
  P2P_TRY(core_.refresh());
  if (first || advertised_length_ != core_.length()) send_sync();
  if (hooks_.on_remote_sync) hooks_.on_remote_sync();
  return pump();
}

Status CoreSession::on_request(const wire::Request& m) {
  auto refuse = [&](uint64_t reason) {
    send(wire::kNoData, wire::encode(wire::NoData{m.id, reason}));
    if (reason == kInvalidRequest && ++invalid_requests_ > kMaxInvalidRequests)
      return error(ErrorCode::verification, "the peer sent too many invalid requests");
    return Status{};
  };
  if (!core_.has_manifest()) return refuse(kNotAvailable);
  auto reader = core_.reader();
  if (!reader.ok()) return reader.status();
  bool unavailable = m.fork != core_.fork() || (m.block && !(*reader)->has(m.block->index)) ||
                     (m.upgrade && m.upgrade->start + m.upgrade->length > (*reader)->length());
  if (unavailable || (!m.block && !m.hash && !m.seek && !m.upgrade)) {
    if (!m.manifest) return refuse(kNotAvailable);
    wire::Data only_manifest;  // what the reference answers: the manifest alone
    only_manifest.request = m.id;
    only_manifest.proof.fork = core_.fork();
    only_manifest.manifest = manifest::encode(core_.manifest());
    send(wire::kData, wire::encode(only_manifest));
    return {};
  }
  merkle::ProofRequest pr{m.block, m.hash, m.seek, m.upgrade};
  auto proof = (*reader)->proof(pr);
  if (!proof.ok()) return refuse(proof.status().code() == ErrorCode::not_found ? kNotAvailable : kInvalidRequest);
  wire::Data data;
  data.request = m.id;
  data.proof = std::move(*proof);
  if (m.manifest) data.manifest = manifest::encode(core_.manifest());
  if (data.proof.block) {
    stats_.blocks_sent++;
    stats_.bytes_sent += data.proof.block->value.size();
  }
  send(wire::kData, wire::encode(data));
  return {};
}

Status CoreSession::on_data(wire::Data m) {
  auto it = requests_.find(m.request);
  if (it == requests_.end()) return {};  // unrequested or cancelled: ignored
  Pending p = it->second;
  requests_.erase(it);
  if (m.proof.seek) return error(ErrorCode::verification, "the peer sent a seek proof we did not ask for");
  if (!p.upgrade) {
    if (!m.proof.block)
      return error(ErrorCode::verification, "the peer answered a block request without the block");
    if (m.proof.block->index != p.index)
      return error(ErrorCode::verification, "the peer answered a request for block " + std::to_string(p.index) +
                                                " with block " + std::to_string(m.proof.block->index));
  }
  inbox_.push_back({p, std::move(m), kNoLeafSlot});
  if (auto& block = inbox_.back().data.proof.block) {
    inbox_bytes_ += block->value.size();
    // Hashed now, while the block is in the CPU's cache: big ones beside us.
    if (block->value.size() >= kHashAsideBytes) inbox_.back().leaf_slot = hasher_.add(block->index, block->value);
    else block->leaf = merkle::leaf_node(block->index, block->value);
  }
  // Upgrades go at once: later requests depend on the new length.
  if (p.upgrade || inbox_.size() >= kMaxInbox || inbox_bytes_ >= kMaxInboxBytes) return flush_inbox();
  return {};
}

Status CoreSession::on_drain() {
  // A batch stored beside us is reported once done, or when no more replies
  // are on their way (nothing else would bring us back here).
  if (applying_ && (requests_.empty() || applying_done())) P2P_TRY(finish_applying());
  // Each flush is a durable commit: while many replies are still on their
  // way, wait for more of them (the window refills at the flush).
  if (requests_.size() > kWindow / 2) return {};
  if (applying_) return pump();
  return flush_inbox();
}

Status CoreSession::flush_inbox() {
  P2P_TRY(finish_applying());  // batches are stored in the order they came
  if (inbox_.empty()) return {};
  std::vector<Received> batch = std::move(inbox_);
  size_t bytes = inbox_bytes_;
  inbox_.clear();
  inbox_bytes_ = 0;
  std::vector<merkle::Node> leaves = hasher_.take();
  for (Received& r : batch)
    if (r.leaf_slot != kNoLeafSlot) r.data.proof.block->leaf = leaves[r.leaf_slot];
  std::vector<Core::Incoming> items = incoming(batch);
  // A big batch while more replies are on their way: its commit (copies,
  // fsync) runs beside the reading of the next one.
  if ((bytes >= kApplyAsideBytes || batch.size() >= kApplyAsideReplies) && !requests_.empty()) {
    if (auto job = core_.block_batch(items)) {
      auto applying = std::make_unique<Applying>();
      applying->batch = std::move(batch);  // the same elements: the job's pointers stay good
      applying->outcome = std::async(std::launch::async, [job = std::move(*job), &applied = applying->applied]() mutable {
        return job.run(applied);
      });
      applying_ = std::move(applying);
      stats_.batches_stored_aside++;
      return pump();
    }
  }
  std::vector<bool> applied;
  Status s = core_.apply(items, applied);
  if (!s.ok()) return error(s.code(), "core " + core_.label() + ": " + s.message());
  return report(batch, applied);
}

std::vector<Core::Incoming> CoreSession::incoming(const std::vector<Received>& batch) {
  std::vector<Core::Incoming> items;
  items.reserve(batch.size());
  for (const Received& r : batch) items.push_back({&r.data.proof, &r.data.manifest});
  return items;
}

bool CoreSession::applying_done() const {
  return applying_->outcome.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Status CoreSession::finish_applying() {
  if (!applying_) return {};
  std::unique_ptr<Applying> done = std::move(applying_);
  if (done->outcome.get() != BlockBatch::Outcome::stored) {
    // The core moved on meanwhile, or an item is bad: apply() sorts that out
    // (and names the bad item).
    Status s = core_.apply(incoming(done->batch), done->applied);
    if (!s.ok()) return error(s.code(), "core " + core_.label() + ": " + s.message());
  }
  return report(done->batch, done->applied);
}

Status CoreSession::report(const std::vector<Received>& batch, const std::vector<bool>& applied) {
  for (size_t i = 0; i < batch.size(); i++) {
    const Received& r = batch[i];
    if (r.data.proof.block) {
      uint64_t index = r.data.proof.block->index;
      if (applied[i]) {  // (a stale duplicate stores nothing and is not counted)
        stats_.blocks_received++;
        stats_.bytes_received += r.data.proof.block->value.size();
      }
      queued_or_inflight_.erase(index);
      if (hooks_.on_block) hooks_.on_block(index);
    }
    if (r.request.upgrade) {
      upgrade_request_ = 0;
      if (hooks_.on_upgrade) hooks_.on_upgrade();
    }
  }
  return pump();
}

Status CoreSession::on_no_data(const wire::NoData& m) {
  auto it = requests_.find(m.request);
  if (it == requests_.end()) return {};
  Pending p = it->second;
  requests_.erase(it);
  if (p.upgrade) {
    upgrade_request_ = 0;
    if (hooks_.on_upgrade) hooks_.on_upgrade();
  } else {
    queued_or_inflight_.erase(p.index);
    if (hooks_.on_block_missing) hooks_.on_block_missing(p.index);
  }
  return pump();
}

Status CoreSession::on_want(const wire::Want& m) {
  if (!core_.has_manifest()) return {};
  auto reader = core_.reader();
  if (!reader.ok()) return reader.status();
  uint64_t length = (*reader)->length();
  uint64_t start = m.start / 32 * 32;
  uint64_t end = std::min({m.start + std::min(m.length, kMaxWantSpan), length, start + kMaxWantSpan});
  if (start >= end) return {};
  if (core_.writable()) {  // a writer holds every block: one range says it
    send(wire::kRange, wire::encode(wire::Range{false, 0, length}));
    return {};
  }
  wire::Bitfield bf{start, std::vector<uint32_t>((end - start + 31) / 32, 0)};
  for (uint64_t i = start; i < end; i++)
    if ((*reader)->has(i)) bf.words[(i - start) / 32] |= 1u << ((i - start) % 32);
  send(wire::kBitfield, wire::encode(bf));
  return {};
}

void CoreSession::add_remote_range(uint64_t start, uint64_t length, bool drop) {
  if (length == 0 || start + length < start) return;
  uint64_t end = start + length;
  // Cut [start, end) out of the map, then re-insert it merged unless dropping.
  auto it = remote_ranges_.upper_bound(start);
  if (it != remote_ranges_.begin()) --it;
  while (it != remote_ranges_.end() && it->first <= end) {
    uint64_t s = it->first, e = it->second;
    if (e < start) {
      ++it;
      continue;
    }
    it = remote_ranges_.erase(it);
    if (drop) {
      if (s < start) remote_ranges_[s] = start;
      if (e > end) remote_ranges_[end] = e;
    } else {
      start = std::min(start, s);
      end = std::max(end, e);
    }
  }
  if (!drop && remote_ranges_.size() < kMaxRemoteRanges) remote_ranges_[start] = end;
}

bool CoreSession::remote_has(uint64_t index) const {
  auto it = remote_ranges_.upper_bound(index);
  if (it == remote_ranges_.begin()) return false;
  --it;
  return index < it->second;
}

Status CoreSession::request_upgrade() {
  if (!opened_ || closed_ || upgrade_request_ != 0) return {};
  P2P_TRY(core_.refresh());
  if (remote_.length <= core_.length()) return {};
  wire::Request r;
  r.id = next_request_++;
  r.fork = remote_.fork;
  r.upgrade = merkle::UpgradeRequest{core_.length(), remote_.length - core_.length()};
  r.manifest = !core_.has_manifest();
  requests_[r.id] = Pending{true, 0};
  upgrade_request_ = r.id;
  send(wire::kRequest, wire::encode(r));
  return {};
}

void CoreSession::want(uint64_t index) {
  if (queued_or_inflight_.insert(index).second) queue_.push_back(index);
}

void CoreSession::cancel(uint64_t index) {
  if (!queued_or_inflight_.erase(index)) return;
  auto queued = std::find(queue_.begin(), queue_.end(), index);
  if (queued != queue_.end()) {
    queue_.erase(queued);
    return;
  }
  for (auto it = requests_.begin(); it != requests_.end(); ++it) {
    if (it->second.upgrade || it->second.index != index) continue;
    // The peer may have answered already: a reply to a forgotten id is ignored.
    if (opened_ && !closed_) send(wire::kCancel, wire::encode_cancel(it->first));
    requests_.erase(it);
    return;
  }
}

Status CoreSession::pump() {
  if (!opened_ || closed_ || !remote_synced_) return {};
  mux_.cork();
  Status s;
  while (s.ok() && !queue_.empty() && requests_.size() < kWindow) {
    uint64_t index = queue_.front();
    if (index >= core_.length()) {
      if (remote_.length > index) {  // known to exist: learn the length first
        s = request_upgrade();
        break;
      }
      queue_.pop_front();
      queued_or_inflight_.erase(index);
      if (hooks_.on_block_missing) hooks_.on_block_missing(index);
      continue;
    }
    queue_.pop_front();
    auto nodes = core_.missing_nodes(index);
    if (!nodes.ok()) {
      s = nodes.status();
      break;
    }
    wire::Request r;
    r.id = next_request_++;
    r.fork = core_.fork();
    r.block = merkle::IndexRequest{index, *nodes};
    requests_[r.id] = Pending{false, index};
    send(wire::kRequest, wire::encode(r));
  }
  mux_.uncork();
  return s;
}

}  // namespace p2p::net
