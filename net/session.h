// One core replicated over one connection: a protomux "hypercore/alpha"
// channel speaking the Hypercore protocol (spec h). It serves what the local
// core holds and downloads what its owner asks for, verifying every proof
// before it is stored (Core::apply). See docs/replication.md.
#pragma once

#include <deque>
#include <functional>
#include <future>
#include <map>
#include <set>

#include "core/leaf_hasher.h"
#include "core/log.h"
#include "net/noise.h"
#include "net/protomux.h"
#include "net/version.h"
#include "net/wire.h"

namespace p2p::net {


// The capability that proves knowledge of the core key (spec h.1).
Hash32 replication_capability(bool initiator, const Key32& core_key, const std::array<uint8_t, 64>& handshake_hash);

struct SessionStats {
  uint64_t blocks_sent = 0, bytes_sent = 0;
  uint64_t blocks_received = 0, bytes_received = 0;
  uint64_t batches_stored_aside = 0;  // verified and committed on another thread
};

class CoreSession : public ChannelHandler {
 public:
  struct Hooks {
    std::function<void()> on_remote_sync;              // the peer told us its length
    std::function<void(uint64_t index)> on_block;      // a block arrived, verified and stored
    std::function<void(uint64_t index)> on_block_missing;  // the peer does not have it
    std::function<void()> on_upgrade;                  // our length moved to the peer's
    std::function<void()> on_close;
  };

  // Requests in flight per peer; enough to keep a loopback link busy.
  static constexpr size_t kWindow = 1024;
  // Replies applied (verified and stored) in one transaction, at most.
  static constexpr size_t kMaxInbox = 512;
  static constexpr size_t kMaxInboxBytes = 32 * 1024 * 1024;

  CoreSession(Mux& mux, Core& core, const HandshakeResult& handshake, bool initiator);
  ~CoreSession() override;
  // Sends our open; the session starts when the peer opens too.
  Status open();
  void close();
  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

  Core& core() { return core_; }
  bool opened() const { return opened_; }
  bool closed() const { return closed_; }
  bool remote_synced() const { return remote_synced_; }
  uint64_t remote_length() const { return remote_.length; }
  bool remote_has(uint64_t index) const;
  const SessionStats& stats() const { return stats_; }

  // ---- downloading ----
  // Asks for an upgrade to the peer's length (no-op when not behind).
  Status request_upgrade();
  bool upgrading() const { return upgrade_request_ != 0; }
  // Queues blocks to fetch; they are requested as the window allows.
  void want(uint64_t index);
  // No longer wanted: dropped from the queue, or cancelled at the peer.
  void cancel(uint64_t index);
  // Sends queued requests as the window allows (also after every reply).
  Status pump_requests() { return pump(); }
  size_t inflight() const { return requests_.size(); }
  size_t queued() const { return queue_.size(); }

  // ---- extensions: named messages on the channel (hypercore's registerExtension) ----
  // Messages for names without a handler are ignored, as the reference does.
  using ExtensionHandler = std::function<void(CoreSession& session, ByteView message)>;
  void on_extension(const std::string& name, ExtensionHandler handler);
  void send_extension(const std::string& name, ByteView message);

  // ---- serving ----
  // Our core grew (appended here or by another process): tell the peer.
  Status notify_length();
  // We now hold blocks [start, start + length) (a replica that downloaded
  // them): the peer may ask us for them, as hypercore broadcasts `range`.
  void announce_range(uint64_t start, uint64_t length);

  // ChannelHandler
  Status on_open(uint64_t channel, ByteView remote_handshake) override;
  Status on_message(uint64_t type, ByteView payload) override;
  void on_close() override;
  Status on_drain() override;

 private:
  struct Pending {
    bool upgrade = false;
    uint64_t index = 0;
  };
  void send(uint64_t type, ByteView payload);
  Status send_sync();
  Status on_sync(const wire::Sync& m);
  Status on_request(const wire::Request& m);
  Status on_data(wire::Data m);
  Status flush_inbox();
  Status on_no_data(const wire::NoData& m);
  Status on_want(const wire::Want& m);
  void add_remote_range(uint64_t start, uint64_t length, bool drop);
  Status pump();

  Mux& mux_;
  Core& core_;
  HandshakeResult handshake_;
  bool initiator_;
  uint64_t channel_ = 0;
  bool opened_ = false, closed_ = false, remote_synced_ = false;
  wire::Sync remote_;
  uint64_t advertised_length_ = 0;  // the length our last sync told
  std::map<uint64_t, uint64_t> remote_ranges_;  // start -> end of blocks the peer has
  std::map<uint64_t, Pending> requests_;        // by request id
  uint64_t next_request_ = 1;
  uint64_t upgrade_request_ = 0;
  static constexpr size_t kNoLeafSlot = SIZE_MAX;
  static constexpr size_t kHashAsideBytes = 16 * 1024;  // smaller blocks: hashing costs less than handing over
  struct Received {
    Pending request;
    wire::Data data;
    size_t leaf_slot;  // in hasher_, or kNoLeafSlot
  };
  std::vector<Received> inbox_;  // replies waiting to be verified and stored together
  size_t inbox_bytes_ = 0;
  merkle::LeafHasher hasher_;  // after inbox_: goes first, waiting for its reads of inbox_'s blocks
  // A big batch verified and stored on another thread (Core::block_batch)
  // while this one goes on receiving; reported when done, one at a time.
  // Worth a thread: a batch of this many bytes or replies.
  static constexpr size_t kApplyAsideBytes = 4 * 1024 * 1024, kApplyAsideReplies = 128;
  struct Applying {
    std::vector<Received> batch;
    std::vector<bool> applied;
    std::future<BlockBatch::Outcome> outcome;
  };
  std::unique_ptr<Applying> applying_;
  static std::vector<Core::Incoming> incoming(const std::vector<Received>& batch);
  bool applying_done() const;
  Status finish_applying();
  Status report(const std::vector<Received>& batch, const std::vector<bool>& applied);
  std::deque<uint64_t> queue_;
  std::set<uint64_t> queued_or_inflight_;
  uint64_t invalid_requests_ = 0;
  std::map<std::string, ExtensionHandler> extensions_;
  std::string last_extension_sent_, last_extension_received_;  // an empty name repeats the last
  SessionStats stats_;
  Hooks hooks_;
};

}  // namespace p2p::net
