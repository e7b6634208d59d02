// A chat room: many writers, one order (docs/chat.md). Every member appends
// to its own core in the room; every peer merges the cores it holds into the
// same causal order. Pure logic over logs: the network feeds the cores.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/corestore.h"

namespace p2p::room {

constexpr size_t kMaxTextBytes = 4096;   // one message's text
constexpr size_t kMaxNickBytes = 64;
constexpr size_t kMaxTitleBytes = 128;   // a private room's title
constexpr size_t kMaxLinks = 64;         // heads named by one message
constexpr size_t kMaxBlockBytes = 8192;  // any encoded message

enum class Kind : uint8_t { hello = 0, text = 1, nick = 2, add = 3, remove = 4 };

// A message names the latest message of another writer it had seen.
struct Link {
  Key32 writer{};
  uint64_t seq = 0;
  bool operator==(const Link&) const = default;
};

// One block of a writer core. Block 0 is always the writer's hello.
struct Message {
  Kind kind = Kind::text;
  uint64_t clock = 0;    // 1 + the largest clock of what it follows (hello: 0)
  uint64_t time_ms = 0;  // the author's wall clock, for display only
  std::vector<Link> links;
  // hello: binds this writer core to the member's identity.
  Key32 room{};        // the room key (no replay across rooms)
  Key32 identity{};    // the member's identity public key (`p2p id`)
  Key32 noise_key{};   // the member's Noise key: how peers recognise it online
  Signature64 proof{}; // identity signs hello_signable(room, writer, noise_key)
  std::string text;    // text: the message; nick: the nickname; hello: a private room's title
  Key32 member{};      // add / remove: an identity key
  bool admin = false;  // add: the member may add and remove too
  bool operator==(const Message&) const = default;
};

Bytes encode(const Message& m);
// Bounded by the constants above; corruption on anything malformed.
Result<Message> decode(ByteView block);
Bytes hello_signable(const Key32& room, const Key32& writer, const Key32& noise_key);

// An open room's key: anyone who knows the name derives it, reads and writes.
Key32 open_room_key(std::string_view name);
// The swarm topic of a room: its key's discovery key (so a hash of an open room's name).
Hash32 topic(const Key32& room_key);

// Which room, and whose messages count.
struct RoomRef {
  Key32 key{};
  bool open = true;  // false: a private room whose key is its creator's writer core
  std::string name;  // an open room's name (empty for private rooms)
};

// Where the merge reads writer cores. `available` is how many blocks from 0
// on are held (a replica may still be downloading).
class LogSource {
 public:
  virtual ~LogSource() = default;
  virtual uint64_t available(const Key32& writer) = 0;
  virtual Result<Bytes> get(const Key32& writer, uint64_t seq) = 0;
};

// LogSource over the cores of a store (opened by key, read-only, cached).
class StoreLogs : public LogSource {
 public:
  explicit StoreLogs(storage::Store& store) : store_(store) {}
  uint64_t available(const Key32& writer) override;
  Result<Bytes> get(const Key32& writer, uint64_t seq) override;

 private:
  struct Opened {
    std::unique_ptr<Core> core;
    uint64_t contiguous = 0;  // blocks 0..contiguous-1 are known to be stored
  };
  Opened* open(const Key32& writer);

  storage::Store& store_;
  std::map<Key32, Opened> cores_;
};

// One message in room order, as shown to the user.
struct Entry {
  Key32 writer{};
  uint64_t seq = 0;
  uint64_t position = 0;  // index in the room order (counts every valid entry)
  Key32 author{};         // identity key
  std::string nick;       // the author's nickname at this point ("" when none)
  Message message;
  bool late = false;      // arrived after entries that sort after it were reported
};

// The heads to name in our next message, and its clock.
struct NextLinks {
  uint64_t clock = 1;
  std::vector<Link> links;
};

struct Member {
  Key32 identity{};
  bool admin = false;
  std::string nick;
  std::vector<Key32> noise_keys;  // of its writers' hellos
};

// The room order, kept up to date as logs grow. Memory is proportional to
// the writers and members, not to the history: the order is a merge of the
// writers' logs by (clock, writer key), each log already sorted by clock.
class RoomView {
 public:
  explicit RoomView(RoomRef room);

  const RoomRef& room() const { return room_; }
  // A writer core to merge (announced by a peer, or our own).
  void add_writer(const Key32& writer);
  const std::set<Key32>& writers() const { return writers_; }
  // Writers named by links but not added yet: the network should fetch them.
  std::vector<Key32> wanted_writers() const;

  // Merges whatever became available. `on_entry` hears each entry not
  // reported before, in room order (a late one after a rewind is marked).
  Status update(LogSource& logs, const std::function<void(const Entry&)>& on_entry);
  // Re-runs the whole order from the start, reporting every entry.
  Status replay(LogSource& logs, const std::function<void(const Entry&)>& on_entry);

  // For composing our next message (after update()).
  NextLinks next_links(const Key32& own_writer) const;
  // Members of a private room (every writer with a valid hello in an open one).
  std::vector<Member> members() const;
  bool is_member(const Key32& identity) const;
  bool is_admin(const Key32& identity) const;
  uint64_t entries() const { return position_; }

 private:
  struct WriterState;  // one writer's place in the merge (room.cpp)
  // What the order has said about one identity key so far.
  struct Identity {
    bool member = false;
    bool admin = false;
    std::string nick;
    std::vector<Key32> noise_keys;
  };
  using HeadKey = std::pair<uint64_t, Key32>;  // (clock, writer): the merge order
  enum class Verdict { accept, skip, block };
  using Report = std::function<void(const Entry&)>;

  void reset();
  Status start(LogSource& logs);
  Status resume(LogSource& logs, bool& rewind);
  Status run(LogSource& logs, const Report& on_entry, bool report_all);
  Status load_head(LogSource& logs, WriterState& w);
  void push(WriterState& w);
  void advance(WriterState& w);
  Verdict judge(const WriterState& w, const Message& m, bool note_wanted);
  bool surely_blocked(const WriterState& w) const;
  bool waits_changed(const WriterState& w) const;
  bool apply(WriterState& w, const Message& m);

  RoomRef room_;
  std::set<Key32> writers_;
  std::set<Key32> wanted_;
  std::map<Key32, std::shared_ptr<WriterState>> state_;
  std::map<Key32, Identity> identities_;
  std::optional<Key32> creator_;        // a private room's root identity, once its hello is merged
  std::map<Key32, uint64_t> reported_;  // writer -> entries reported up to this seq (+1)
  std::vector<HeadKey> heap_;           // a min-heap: one head per writer ready to merge
  std::optional<HeadKey> taken_;        // the largest head taken so far in this run
  uint64_t max_clock_ = 0;              // the largest accepted clock
  uint64_t position_ = 0;
  uint64_t tick_ = 0;  // counts changes to writers' merge states (never reset)
  uint64_t pops_ = 0;  // counts heads taken (never reset)
  size_t ahead_ = 0;  // writers whose reported entries lie beyond their cursor (a rerun's late ones)
  bool dirty_ = true;
};

// ---- this home's side of a room ----

// The core this home writes in `room`: corestore name "chat/<hex room key>",
// or, for a private room this home created, its root core. Created on first use.
Result<std::unique_ptr<Core>> own_writer(Corestore& store, const RoomRef& room);
// A new private room: its root core gets a hello (with `title`) and becomes
// the room key. The corestore name is "chat/private/<title or random>".
Result<RoomRef> create_private(Corestore& store, const crypto::KeyPair& identity, const Key32& noise_key,
                               std::string_view title);
// Appends `m` to our writer (writing the hello first when the core is new),
// filling clock, links and time from `view`.
Result<uint64_t> append(Core& writer, RoomView& view, LogSource& logs, const crypto::KeyPair& identity,
                        const Key32& noise_key, Message m);

}  // namespace p2p::room
