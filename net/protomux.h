// Protomux (spec g): many protocol channels over one message stream. Sans
// I/O: frames from the peer go into receive(), frames to send leave through
// the `send` callback (one secret-stream message each).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::net {

// What a channel's owner gets once both sides opened it.
class ChannelHandler {
 public:
  virtual ~ChannelHandler() = default;
  // Both sides opened: our channel id and the remote's open handshake. An
  // error closes the connection.
  virtual Status on_open(uint64_t channel, ByteView remote_handshake) = 0;
  virtual Status on_message(uint64_t type, ByteView payload) = 0;
  // The remote closed or rejected the channel, or the connection ended.
  virtual void on_close() = 0;
  // Everything received so far was delivered: a moment to commit batched work.
  virtual Status on_drain() { return {}; }
};

class Mux {
 public:
  using Send = std::function<void(ByteView frame)>;
  // An open from the peer that matches no channel of ours: the callback may
  // open one (same protocol and id) to accept it; otherwise it is rejected.
  using Pair = std::function<void(const std::string& protocol, ByteView id)>;

  // More channels than this on one connection is a misbehaving peer.
  static constexpr size_t kMaxChannels = 4096;
  // A batch frame is sent once it grows past this (protomux's MAX_BATCH).
  static constexpr size_t kMaxBatch = 8 * 1024 * 1024;

  explicit Mux(Send send) : send_(std::move(send)) {}
  // Asked before each message of a batch frame: while it returns true (our
  // output backs up), the rest of the batch waits for resume(). A peer that
  // asks for a thousand big blocks in one frame costs bounded memory.
  void set_backpressure(std::function<bool()> full) { full_ = std::move(full); }
  void on_pair(Pair pair) { pair_ = std::move(pair); }
  // Keep opens nobody accepted (up to a bound) for a later open() to pair
  // with, instead of rejecting them: a client that attaches cores after
  // connecting must not refuse a peer that opened first.
  void hold_unmatched_opens(bool hold) { hold_unmatched_ = hold; }

  // Opens our side; the handler hears on_open once the remote opened too.
  // Returns our channel id.
  Result<uint64_t> open(const std::string& protocol, ByteView id, ByteView handshake, ChannelHandler* handler);
  void send(uint64_t channel, uint64_t type, ByteView payload);
  void close(uint64_t channel);
  bool is_open(uint64_t channel) const;

  // Messages sent between cork() and uncork() leave as one batch frame.
  void cork() { corked_++; }
  void uncork();

  // One frame from the peer; an error means the peer broke the protocol.
  Status receive(ByteView frame);
  // Calls on_drain on every open channel (after a burst of input).
  Status drain();
  // A batch frame is partly delivered: feed no further frame until resume()
  // has delivered the rest (it may stop again).
  bool holding() const { return held_batch_.has_value(); }
  Status resume();
  // The connection ended: every channel hears on_close.
  void shutdown();

 private:
  struct Channel {
    std::string protocol;
    Bytes id;
    ChannelHandler* handler = nullptr;
    uint64_t remote_id = 0;  // 0 until the remote opened
    bool opened = false;     // both sides open, on_open delivered
  };
  Status on_control(uint64_t type, ByteView rest);
  // Delivers a batch's entries from `channel` on; returns how many bytes of
  // `entries` it used (fewer when the output backs up).
  Result<size_t> on_batch(uint64_t channel, ByteView entries);
  Status on_remote_open(uint64_t remote_id, const std::string& protocol, ByteView id, ByteView handshake);
  Status deliver(uint64_t remote_id, ByteView message);
  void drop(uint64_t local_id, bool notify);
  void uncork_pending();

  struct HeldOpen {
    uint64_t remote_id;
    std::string protocol;
    Bytes id, handshake;
  };
  static constexpr size_t kMaxHeldOpens = 64;

  Send send_;
  Pair pair_;
  bool hold_unmatched_ = false;
  std::vector<HeldOpen> held_;
  std::map<uint64_t, Channel> channels_;      // by our id
  std::map<uint64_t, uint64_t> by_remote_;    // remote id -> our id
  uint64_t next_id_ = 1;
  int corked_ = 0;
  Bytes batch_;                 // entries of the pending batch frame
  uint64_t batch_channel_ = 0;  // channel of the last batch entry
  std::function<bool()> full_;
  struct HeldBatch {
    uint64_t channel;  // of the next entry
    Bytes entries;
    size_t pos = 0;    // how far they were delivered
  };
  std::optional<HeldBatch> held_batch_;
};

}  // namespace p2p::net
