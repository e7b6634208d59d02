// One home's session in a chat room: the room order over every writer core
// it knows (core/room), its own writer, and — once online — the room's
// peers (net/room_sync). What `p2p chat` drives; it only formats.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "core/room.h"
#include "net/room_sync.h"

namespace p2p::net {

class ChatRoom {
 public:
  struct Events {
    std::function<void(const room::Entry&)> on_entry;  // new in the room order
    std::function<void(const RoomPeer&)> on_join, on_leave;
    std::function<void(const std::string&)> on_notice;
  };

  // `writer` is the home's corestore (it may lack the primary key when only
  // reading); `identity` signs our messages and presence.
  static Result<std::unique_ptr<ChatRoom>> open(Corestore& writer, const room::RoomRef& room,
                                                const crypto::KeyPair& identity);
  ~ChatRoom();

  const room::RoomRef& ref() const { return view_.room(); }
  // Every entry so far, in order (entries reported later are only new ones).
  Status history(const std::function<void(const room::Entry&)>& visit);
  // Merges what arrived; new entries go to on_entry.
  Status update();
  // Joins the room's peers on `runtime` (which must outlive this); a
  // `server` is also found by them (long-running commands).
  Status go_online(dht::Runtime& runtime, bool server = true);
  void set_events(Events events) { events_ = std::move(events); }

  // Appends a message of ours (our writer core is created on the first).
  Result<uint64_t> post(room::Message m);
  // Whether a peer holds everything we wrote.
  bool delivered() const;
  // Our writer core's length (0 before the first post).
  uint64_t written() const;

  // Entries in the room order so far.
  uint64_t entries() const { return view_.entries(); }
  size_t peers() const { return sync_ ? sync_->peers() : 0; }
  std::vector<RoomPeer> online() const;
  std::vector<room::Member> members() const { return view_.members(); }
  bool is_member(const Key32& identity) const { return view_.is_member(identity); }
  bool is_admin(const Key32& identity) const { return view_.is_admin(identity); }
  const Key32& identity() const { return identity_.public_key; }
  // The nickname of `identity`, or "" when it has none.
  std::string nick_of(const Key32& identity) const;

 private:
  ChatRoom(Corestore& writer, const room::RoomRef& room, const crypto::KeyPair& identity);
  Status add_writer(const Key32& writer);
  void on_data();

  Corestore& store_;
  room::RoomView view_;
  room::StoreLogs logs_;
  crypto::KeyPair identity_;
  std::unique_ptr<Core> own_;
  std::unique_ptr<RoomSync> sync_;
  Events events_;
};

}  // namespace p2p::net
