#include "net/chat_room.h"

#include "core/room_index.h"

namespace p2p::net {

namespace {

// The name of this home's writer core in an open room (room::own_writer's rule).
std::string writer_name(const Key32& room_key) { return "chat/" + to_hex(room_key); }

// Whether this home wrote in the room before (reading must not create a writer).
bool has_own_writer(Corestore& store, const room::RoomRef& room) {
  if (!store.has_primary_key()) return false;
  if (store.open_name(writer_name(room.key)).ok()) return true;
  if (room.open) return false;
  auto all = store.list();
  if (!all.ok()) return false;
  for (const NamedCore& c : *all)
    if (c.key == room.key && c.name.starts_with("chat/private/")) return true;  // we created it
  return false;
}

}  // namespace

ChatRoom::ChatRoom(Corestore& writer, const room::RoomRef& room, const crypto::KeyPair& identity)
    : store_(writer), view_(room), logs_(writer.store()), identity_(identity) {}

ChatRoom::~ChatRoom() = default;

Result<std::unique_ptr<ChatRoom>> ChatRoom::open(Corestore& writer, const room::RoomRef& room,
                                                 const crypto::KeyPair& identity) {
  std::unique_ptr<ChatRoom> c(new ChatRoom(writer, room, identity));
  if (!room.open) c->view_.add_writer(room.key);  // the creator's core is the room key
  auto known = room::known_writers(writer.store(), room.key);
  if (!known.ok()) return known.status();
  for (const Key32& w : *known) c->view_.add_writer(w);
  if (has_own_writer(writer, room)) {
    auto own = room::own_writer(writer, room);
    if (own.ok() && (*own)->writable()) {
      c->own_ = std::move(*own);
      c->view_.add_writer(c->own_->key());
    }
  }
  return c;
}

Status ChatRoom::add_writer(const Key32& writer) {
  if (view_.writers().count(writer)) return {};
  view_.add_writer(writer);
  P2P_TRY(room::remember_writers(store_.store(), view_.room().key, std::span<const Key32>(&writer, 1)));
  if (sync_) P2P_TRY(sync_->add_writer(writer));
  return {};
}

Status ChatRoom::history(const std::function<void(const room::Entry&)>& visit) {
  return view_.replay(logs_, visit);
}

Status ChatRoom::update() {
  auto report = [this](const room::Entry& e) {
    if (events_.on_entry) events_.on_entry(e);
  };
  P2P_TRY(view_.update(logs_, report));
  // Links name writers we did not know: fetch them, then merge again.
  auto wanted = view_.wanted_writers();
  if (wanted.empty()) return {};
  for (const Key32& w : wanted) P2P_TRY(add_writer(w));
  return view_.update(logs_, report);
}

void ChatRoom::on_data() {
  if (Status s = update(); !s.ok() && events_.on_notice) events_.on_notice("merging the room: " + s.message());
}

Status ChatRoom::go_online(dht::Runtime& runtime, bool server) {
  if (sync_) return {};
  RoomSync::Hooks hooks;
  hooks.on_data = [this] { on_data(); };
  hooks.on_writer = [this](const Key32& w) {
    if (Status s = add_writer(w); !s.ok() && events_.on_notice) events_.on_notice(s.message());
  };
  hooks.on_join = [this](const RoomPeer& p) {
    if (events_.on_join) events_.on_join(p);
  };
  hooks.on_leave = [this](const RoomPeer& p) {
    if (events_.on_leave) events_.on_leave(p);
  };
  hooks.on_notice = [this](const std::string& m) {
    if (events_.on_notice) events_.on_notice(m);
  };
  sync_ = std::make_unique<RoomSync>(runtime, store_.store(), view_.room().key, identity_, std::move(hooks));
  for (const Key32& w : view_.writers()) P2P_TRY(sync_->add_writer(w));
  sync_->join(server);
  return {};
}

Result<uint64_t> ChatRoom::post(room::Message m) {
  if (!own_) {
    auto own = room::own_writer(store_, view_.room());
    if (!own.ok()) return own.status();
    if (!(*own)->writable()) return error(ErrorCode::permission, "this home cannot write in the room");
    own_ = std::move(*own);
    P2P_TRY(add_writer(own_->key()));
  }
  // Entries that came since the last merge are shown before ours.
  P2P_TRY(update());
  auto length = room::append(*own_, view_, logs_, identity_, identity_.public_key, std::move(m));
  if (!length.ok()) return length;
  P2P_TRY(update());
  if (sync_) sync_->notify();
  return length;
}

bool ChatRoom::delivered() const { return own_ && sync_ && sync_->peer_holds(own_->key(), own_->length()); }

uint64_t ChatRoom::written() const { return own_ ? own_->length() : 0; }

std::vector<RoomPeer> ChatRoom::online() const { return sync_ ? sync_->online() : std::vector<RoomPeer>{}; }

std::string ChatRoom::nick_of(const Key32& identity) const {
  for (const room::Member& m : view_.members())
    if (m.identity == identity) return m.nick;
  return "";
}

}  // namespace p2p::net
