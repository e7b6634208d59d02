// A chat room on the network: joins the room's topic on the swarm, proves
// each peer's identity, tells peers which writer cores the room has, and
// replicates every one of them with every peer, both ways (docs/chat.md).
// Any peer serves any writer's log, so history outlives its author's uptime.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "net/dht_runtime.h"
#include "storage/store.h"

namespace p2p::net {

struct RoomPeer {
  Key32 identity{};    // proven on the room channel
  Key32 connection{};  // the connection's Noise key
  std::string address;
  bool relayed = false;
};

class RoomSync {
 public:
  struct Hooks {
    std::function<void()> on_data;                        // writer cores grew
    std::function<void(const Key32& writer)> on_writer;   // a writer we did not know
    std::function<void(const RoomPeer&)> on_join, on_leave;
    std::function<void(const std::string&)> on_notice;    // for -v style reporting
  };
  // Writers beyond this are not replicated (a peer cannot make us open more).
  static constexpr size_t kMaxWriters = 4096;

  // `identity` signs our presence on every room channel; connections use a
  // fresh key pair per process, so several commands of one home can be in a
  // room at once.
  RoomSync(dht::Runtime& runtime, storage::Store& store, const Key32& room_key, const crypto::KeyPair& identity,
           Hooks hooks);
  ~RoomSync();
  RoomSync(const RoomSync&) = delete;
  RoomSync& operator=(const RoomSync&) = delete;

  // Looks up the room's topic, and announces it when `server` (one-shot
  // commands do not: their records would outlive them).
  void join(bool server = true);
  // Replicates `writer` with every peer and tells them of it.
  Status add_writer(const Key32& writer);
  // A writer core grew here (our append): tell the peers now.
  void notify();

  size_t peers() const;
  std::vector<RoomPeer> online() const;
  // Whether a connected peer of another identity (another process of this
  // home shares our store: that is not delivery) holds the first `length`
  // blocks of `writer`.
  bool peer_holds(const Key32& writer, uint64_t length) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::net
