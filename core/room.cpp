// Chat rooms (docs/chat.md): the message format, the merge of many writers'
// logs into one causal order, and this home's side (its writer core, new
// private rooms, appends).
#include "core/room.h"

#include <algorithm>
#include <chrono>

#include "core/encoding.h"

namespace p2p::room {

using namespace std::literals;

namespace {

constexpr uint8_t kVersion = 1;
constexpr uint64_t kMaxSafeInteger = uint64_t{1} << 53;  // what JavaScript counts exactly
constexpr auto kHelloContext = "p2p-chat-hello\0"sv;
constexpr auto kOpenRoomContext = "p2p-chat-open-room\0"sv;
constexpr auto kPrivatePrefix = "chat/private/"sv;

Status malformed(const std::string& why) { return corruption("chat message: " + why); }

uint64_t now_ms() {
  auto since = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(since).count());
}

bool valid_hello(const Message& m, const Key32& room, const Key32& writer) {
  if (m.kind != Kind::hello || m.room != room) return false;
  return crypto::verify(hello_signable(room, writer, m.noise_key), m.proof, m.identity);
}

Message signed_hello(const Key32& room, const Key32& writer, const crypto::KeyPair& identity, const Key32& noise_key) {
  Message h;
  h.kind = Kind::hello;
  h.room = room;
  h.identity = identity.public_key;
  h.noise_key = noise_key;
  h.proof = crypto::sign(hello_signable(room, writer, noise_key), identity);
  return h;
}

}  // namespace

// ---- format ----------------------------------------------------------------

Bytes encode(const Message& m) {
  enc::Encoder e;
  e.u8(kVersion);
  e.u8(static_cast<uint8_t>(m.kind));
  e.uint(m.clock);
  e.uint(m.time_ms);
  e.uint(m.links.size());
  for (const Link& l : m.links) {
    e.fixed(l.writer);
    e.uint(l.seq);
  }
  switch (m.kind) {
    case Kind::hello:
      e.fixed(m.room);
      e.fixed(m.identity);
      e.fixed(m.noise_key);
      e.fixed(m.proof);
      e.string(m.text);
      break;
    case Kind::text:
    case Kind::nick:
      e.string(m.text);
      break;
    case Kind::add:
      e.fixed(m.member);
      e.boolean(m.admin);
      break;
    case Kind::remove:
      e.fixed(m.member);
      break;
  }
  return e.take();
}

Result<Message> decode(ByteView block) {
  if (block.size() > kMaxBlockBytes)
    return malformed("block of " + std::to_string(block.size()) + " bytes (at most " + std::to_string(kMaxBlockBytes) + ")");
  enc::Decoder d(block);
  Message m;
  uint8_t version = d.u8();
  uint8_t kind = d.u8();
  if (d.ok() && version != kVersion) return malformed("unknown version " + std::to_string(version));
  if (d.ok() && kind > static_cast<uint8_t>(Kind::remove)) return malformed("unknown kind " + std::to_string(kind));
  m.kind = static_cast<Kind>(kind);
  m.clock = d.uint();
  m.time_ms = d.uint();
  uint64_t links = d.array_length(kMaxLinks);
  for (uint64_t i = 0; i < links && d.ok(); i++) {
    Link& l = m.links.emplace_back();
    l.writer = d.fixed_array<32>();
    l.seq = d.uint();
    if (l.seq > kMaxSafeInteger) return malformed("link seq beyond 2^53");
  }
  if (m.clock > kMaxSafeInteger) return malformed("clock beyond 2^53");
  // A bool is one byte, 0 or 1: anything else would not encode back the same.
  auto flag = [&] {
    uint8_t b = d.u8();
    if (b > 1) d.fail();
    return b == 1;
  };
  switch (m.kind) {
    case Kind::hello:
      m.room = d.fixed_array<32>();
      m.identity = d.fixed_array<32>();
      m.noise_key = d.fixed_array<32>();
      m.proof = d.fixed_array<64>();
      m.text = d.string(kMaxTitleBytes);
      break;
    case Kind::text:
      m.text = d.string(kMaxTextBytes);
      break;
    case Kind::nick:
      m.text = d.string(kMaxNickBytes);
      break;
    case Kind::add:
      m.member = d.fixed_array<32>();
      m.admin = flag();
      break;
    case Kind::remove:
      m.member = d.fixed_array<32>();
      break;
  }
  P2P_TRY(d.finish("chat message"));
  return m;
}

Bytes hello_signable(const Key32& room, const Key32& writer, const Key32& noise_key) {
  Bytes out(kHelloContext.begin(), kHelloContext.end());
  out.insert(out.end(), room.begin(), room.end());
  out.insert(out.end(), writer.begin(), writer.end());
  out.insert(out.end(), noise_key.begin(), noise_key.end());
  return out;
}

Key32 open_room_key(std::string_view name) { return crypto::hash({as_bytes(kOpenRoomContext), as_bytes(name)}); }

Hash32 topic(const Key32& room_key) { return crypto::discovery_key(room_key); }

// ---- StoreLogs -------------------------------------------------------------

StoreLogs::Opened* StoreLogs::open(const Key32& writer) {
  if (auto it = cores_.find(writer); it != cores_.end()) return &it->second;
  auto core = Core::open_by_key(store_, writer);
  if (!core.ok()) return nullptr;  // not here yet: asked again next time
  return &cores_.emplace(writer, Opened{std::move(*core), 0}).first->second;
}

uint64_t StoreLogs::available(const Key32& writer) {
  Opened* o = open(writer);
  if (!o) return 0;
  if (!o->core->refresh().ok()) return std::min(o->contiguous, o->core->length());
  if (o->core->writable()) return o->core->length();
  // Core::contiguous_length() scans every stored block; a log only grows, so
  // probe onwards from what we already know is there.
  o->contiguous = std::min(o->contiguous, o->core->length());
  if (o->contiguous < o->core->length()) {
    auto reader = o->core->reader();
    if (reader.ok())
      while (o->contiguous < (*reader)->length() && (*reader)->has(o->contiguous)) o->contiguous++;
  }
  return o->contiguous;
}

Result<Bytes> StoreLogs::get(const Key32& writer, uint64_t seq) {
  Opened* o = open(writer);
  if (!o) return not_found("writer core " + to_hex(writer) + " is not in the local store");
  return o->core->get(seq);
}

// ---- the merge -------------------------------------------------------------

struct RoomView::WriterState {
  enum class Hello { unseen, signed_, accepted, invalid };
  Key32 key{};
  uint64_t* reported = nullptr;  // this writer's entry in reported_ (kept across reruns)
  Hello hello = Hello::unseen;
  Key32 identity{};
  uint64_t available = 0;  // blocks held, as of this update
  uint64_t cursor = 0;     // the next seq to merge
  bool accepted_any = false;
  uint64_t last_seq = 0;    // the last accepted message
  uint64_t last_clock = 0;
  uint64_t linked = 0;      // 1 + the highest seq of ours an accepted message of another writer names
  bool blocked = false;     // its head waits for a writer or a block we lack (until the next update)
  uint64_t changed = 0;      // tick_ at the last change another writer's verdict may depend on
  uint64_t blocked_at = 0;   // tick_ when its head was last judged blocked
  uint64_t blocked_pops = 0; // pops_ then
  std::optional<Message> head;  // the message at `cursor`, decoded, when it can be merged
};

RoomView::RoomView(RoomRef room) : room_(std::move(room)) {}

void RoomView::add_writer(const Key32& writer) {
  if (!writers_.insert(writer).second) return;
  wanted_.erase(writer);
  reported_[writer];  // the slot WriterState points at
}

std::vector<Key32> RoomView::wanted_writers() const {
  std::vector<Key32> out;
  for (const Key32& k : wanted_)
    if (!writers_.count(k)) out.push_back(k);
  return out;
}

void RoomView::reset() {
  state_.clear();
  identities_.clear();
  creator_.reset();
  wanted_.clear();
  heap_.clear();
  taken_.reset();
  max_clock_ = 0;
  position_ = 0;
  ahead_ = 0;
}

void RoomView::push(WriterState& w) {
  heap_.emplace_back(w.head->clock, w.key);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

// Every cursor step goes through here so ahead_ stays exact.
void RoomView::advance(WriterState& w) {
  bool was_ahead = *w.reported > w.cursor;
  w.cursor++;
  if (was_ahead && *w.reported <= w.cursor) ahead_--;
}

// Loads the next message of `w` that could be merged. What can be judged from
// the writer alone is judged here, as soon as a block is held: a bad hello
// rules the writer out; later a block that does not decode, a second hello or
// a clock that does not grow is skipped. The outcome is the same whenever it
// is loaded, so it does not depend on what arrived when.
Status RoomView::load_head(LogSource& logs, WriterState& w) {
  w.head.reset();
  while (w.hello != WriterState::Hello::invalid && w.cursor < w.available) {
    auto block = logs.get(w.key, w.cursor);
    if (!block.ok()) return block.status();
    auto m = decode(*block);
    if (w.cursor == 0) {
      if (!m.ok() || !valid_hello(*m, room_.key, w.key)) {
        w.hello = WriterState::Hello::invalid;
        w.changed = ++tick_;  // links to it are ignored from now on
        if (*w.reported > w.cursor) ahead_--;  // its entries left the order
        return {};
      }
      w.hello = WriterState::Hello::signed_;
      w.identity = m->identity;
      w.head = std::move(*m);
      return {};
    }
    if (m.ok() && m->kind != Kind::hello && m->clock > w.last_clock) {
      w.head = std::move(*m);
      return {};
    }
    advance(w);
  }
  return {};
}

// Whether the head `m` of `w` may join the order now. Block beats skip: a
// block only means "not yet", and the rerun rule in resume() makes up for it.
RoomView::Verdict RoomView::judge(const WriterState& w, const Message& m, bool note_wanted) {
  bool block = false, skip = false;
  // A clock may exceed what it follows by one only: a writer cannot jump
  // the room's clocks toward the format's limit.
  uint64_t ceiling = w.accepted_any ? w.last_clock : 0;
  for (const Link& l : m.links) {
    if (l.writer == w.key) {  // our own earlier message: must be merged and below us
      if (l.seq >= w.cursor || (l.seq >= w.last_seq && w.last_clock >= m.clock)) skip = true;
      continue;
    }
    auto it = state_.find(l.writer);
    if (it == state_.end()) {
      if (note_wanted) wanted_.insert(l.writer);
      block = true;
      continue;
    }
    const WriterState& x = *it->second;
    if (x.hello == WriterState::Hello::invalid) continue;
    if (l.seq >= x.cursor) {
      // Not merged yet: if it were held and free it would sort before us,
      // so naming it means our clock lies.
      if (x.blocked || l.seq >= x.available) block = true;
      else skip = true;
      continue;
    }
    if (x.accepted_any && l.seq >= x.last_seq && x.last_clock >= m.clock) skip = true;
    ceiling = std::max(ceiling, x.last_clock);
  }
  if (m.clock > ceiling + 1) skip = true;
  return block ? Verdict::block : skip ? Verdict::skip : Verdict::accept;
}

// An accepted message changes the room; true when it is shown.
bool RoomView::apply(WriterState& w, const Message& m) {
  w.accepted_any = true;
  w.last_seq = w.cursor;
  w.last_clock = m.clock;
  max_clock_ = std::max(max_clock_, m.clock);
  for (const Link& l : m.links) {
    if (l.writer == w.key) continue;
    if (auto it = state_.find(l.writer); it != state_.end()) it->second->linked = std::max(it->second->linked, l.seq + 1);
  }
  Identity& me = identities_[w.identity];
  switch (m.kind) {
    case Kind::hello:
      w.hello = WriterState::Hello::accepted;
      if (std::find(me.noise_keys.begin(), me.noise_keys.end(), m.noise_key) == me.noise_keys.end())
        me.noise_keys.push_back(m.noise_key);
      if (room_.open) {
        me.member = true;
        return true;
      }
      if (w.key == room_.key && !creator_) {
        creator_ = w.identity;
        me.member = me.admin = true;
        return true;
      }
      return me.member;
    case Kind::text:
      return me.member;
    case Kind::nick:
      if (!me.member) return false;
      me.nick = m.text;
      return true;
    case Kind::add:
    case Kind::remove: {
      if (room_.open || !me.member || !me.admin || m.member == creator_) return false;
      Identity& them = identities_[m.member];
      them.member = m.kind == Kind::add;
      them.admin = m.kind == Kind::add && m.admin;
      return true;
    }
  }
  return false;
}

// A fresh merge: every writer back at seq 0.
Status RoomView::start(LogSource& logs) {
  reset();
  for (const Key32& k : writers_) {
    auto w = std::make_shared<WriterState>();
    w->key = k;
    w->reported = &reported_[k];
    if (*w->reported > 0) ahead_++;
    w->available = logs.available(k);
    state_.emplace(k, std::move(w));
  }
  for (auto& [k, w] : state_) {
    P2P_TRY(load_head(logs, *w));
    if (w->head) push(*w);
  }
  return {};
}

// Brings in what became available since the last run, continuing the run
// only when that gives the order a rerun from the start would give:
// - a head that appears (new blocks, a new writer) must not sort before a
//   head already taken, or it would have been merged earlier;
// - a blocked head whose wait may be over was judged against the state at
//   its turn: it may go on only if nothing was taken since.
// Otherwise the merge reruns from the start.
Status RoomView::resume(LogSource& logs, bool& rewind) {
  for (const Key32& k : writers_) {
    auto& w = state_[k];
    if (!w) {
      w = std::make_shared<WriterState>();
      w->key = k;
      w->reported = &reported_[k];
      w->changed = ++tick_;
    }
    uint64_t available = logs.available(k);
    if (available == w->available) continue;
    w->available = available;
    if (!w->blocked) w->changed = ++tick_;  // a blocked writer still blocks those waiting on it
  }
  std::vector<WriterState*> fresh;
  for (auto& [k, w] : state_) {
    if (w->head || w->cursor >= w->available) continue;  // in the heap, blocked, or nothing new
    P2P_TRY(load_head(logs, *w));
    if (w->head) fresh.push_back(w.get());
  }
  for (WriterState* w : fresh)
    if (taken_ && HeadKey{w->head->clock, w->key} < *taken_) {
      rewind = true;
      return {};
    }
  for (WriterState* w : fresh) push(*w);
  // Going on with one writer can free those waiting on it.
  for (bool progress = true; progress;) {
    progress = false;
    for (auto& [k, w] : state_) {
      if (!w->blocked || surely_blocked(*w) || !waits_changed(*w)) continue;
      if (pops_ > w->blocked_pops) {
        rewind = true;
        return {};
      }
      if (judge(*w, *w->head, true) == Verdict::block) {
        w->blocked_at = ++tick_;
        continue;
      }
      w->blocked = false;
      w->changed = ++tick_;
      push(*w);
      progress = true;
    }
  }
  return {};
}

// A wait a rerun would hit as well: a writer not added, or a block beyond
// what is held.
bool RoomView::surely_blocked(const WriterState& w) const {
  for (const Link& l : w.head->links) {
    if (l.writer == w.key) continue;
    auto it = state_.find(l.writer);
    if (it == state_.end()) return true;
    const WriterState& x = *it->second;
    if (x.hello != WriterState::Hello::invalid && l.seq >= x.available) return true;
  }
  return false;
}

// Whether a writer the blocked head names changed since it was judged.
bool RoomView::waits_changed(const WriterState& w) const {
  for (const Link& l : w.head->links) {
    if (l.writer == w.key) continue;
    auto it = state_.find(l.writer);
    if (it != state_.end() && it->second->changed > w.blocked_at) return true;
  }
  return false;
}

// Takes heads in (clock, writer) order until every writer is done or blocked.
Status RoomView::run(LogSource& logs, const Report& on_entry, bool report_all) {
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    HeadKey key = heap_.back();
    heap_.pop_back();
    if (!taken_ || *taken_ < key) taken_ = key;
    pops_++;
    WriterState& w = *state_[key.second];
    w.changed = ++tick_;
    Message& m = *w.head;
    Verdict v = judge(w, m, true);
    if (v == Verdict::block) {
      w.blocked = true;
      w.blocked_at = w.changed;
      w.blocked_pops = pops_;
      continue;
    }
    if (v == Verdict::skip && w.cursor == 0) {  // a hello out of order: no writer
      w.hello = WriterState::Hello::invalid;
      if (*w.reported > w.cursor) ahead_--;
      w.head.reset();
      continue;
    }
    if (v == Verdict::accept) {
      std::string nick_before;
      if (m.kind == Kind::nick) nick_before = identities_[w.identity].nick;
      bool shown = apply(w, m);
      uint64_t seq = w.cursor;
      advance(w);
      if (shown) {
        uint64_t position = position_++;
        if (report_all || seq >= *w.reported) {
          *w.reported = std::max(*w.reported, seq + 1);
          Entry e;
          e.writer = w.key;
          e.seq = seq;
          e.position = position;
          e.author = w.identity;
          e.nick = m.kind == Kind::nick ? std::move(nick_before) : identities_[w.identity].nick;
          e.late = !report_all && ahead_ > 0;
          e.message = std::move(m);
          on_entry(e);
        }
      }
    } else {
      advance(w);
    }
    P2P_TRY(load_head(logs, w));
    if (w.head) push(w);
  }
  return {};
}

Status RoomView::update(LogSource& logs, const std::function<void(const Entry&)>& on_entry) {
  bool rewind = dirty_;
  Status s;
  if (!rewind) s = resume(logs, rewind);
  if (s.ok() && rewind) s = start(logs);
  if (s.ok()) s = run(logs, on_entry, false);
  dirty_ = !s.ok();  // a half-done merge starts over next time
  return s;
}

Status RoomView::replay(LogSource& logs, const std::function<void(const Entry&)>& on_entry) {
  Status s = start(logs);
  if (s.ok()) s = run(logs, on_entry, true);
  dirty_ = !s.ok();
  return s;
}

NextLinks RoomView::next_links(const Key32& own_writer) const {
  NextLinks out;
  out.clock = max_clock_ + 1;
  std::vector<std::pair<uint64_t, Link>> heads;
  for (const auto& [k, w] : state_) {
    if (k == own_writer || w->hello != WriterState::Hello::accepted) continue;
    if (w->linked > w->last_seq) continue;  // an accepted message already names it (or later)
    heads.push_back({w->last_clock, Link{k, w->last_seq}});
  }
  // Over the limit, the most recent heads matter most: they carry the clock.
  std::sort(heads.begin(), heads.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second.writer < b.second.writer;
  });
  if (heads.size() > kMaxLinks) heads.resize(kMaxLinks);
  for (auto& h : heads) out.links.push_back(h.second);
  return out;
}

std::vector<Member> RoomView::members() const {
  std::vector<Member> out;
  for (const auto& [id, who] : identities_) {
    if (!who.member) continue;
    out.push_back(Member{id, who.admin, who.nick, who.noise_keys});
  }
  return out;
}

bool RoomView::is_member(const Key32& identity) const {
  auto it = identities_.find(identity);
  return it != identities_.end() && it->second.member;
}

bool RoomView::is_admin(const Key32& identity) const {
  auto it = identities_.find(identity);
  return it != identities_.end() && it->second.member && it->second.admin;
}

// ---- this home's side ------------------------------------------------------

Result<std::unique_ptr<Core>> own_writer(Corestore& store, const RoomRef& room) {
  if (!room.open) {
    // A room we created: we write in its root core.
    auto cores = store.list();
    if (!cores.ok()) return cores.status();
    for (const NamedCore& c : *cores) {
      if (c.key != room.key || !c.name.starts_with(kPrivatePrefix)) continue;
      auto core = store.open_name(c.name);
      if (!core.ok() || (*core)->writable()) return core;
      // Named here but derived from another primary key: not ours to write.
    }
  }
  return store.get("chat/" + to_hex(room.key));
}

Result<RoomRef> create_private(Corestore& store, const crypto::KeyPair& identity, const Key32& noise_key,
                               std::string_view title) {
  if (title.size() > kMaxTitleBytes)
    return invalid_argument("a room title is at most " + std::to_string(kMaxTitleBytes) + " bytes");
  std::string name(kPrivatePrefix);
  if (title.empty()) {
    Key32 r = crypto::random_key();
    name += to_hex(ByteView(r).first(16));
  } else {
    name += title;
  }
  auto existing = store.open_name(name);
  // A core left empty (a crash before its hello) is taken over.
  if (existing.ok() && (*existing)->length() > 0)
    return invalid_argument("a private room titled '" + std::string(title) + "' already exists: " + to_hex((*existing)->key()));
  auto core = store.get(name);
  if (!core.ok()) return core.status();
  const Key32 key = (*core)->key();
  Message hello = signed_hello(key, key, identity, noise_key);
  hello.time_ms = now_ms();
  hello.text = std::string(title);
  Bytes block = encode(hello);
  P2P_TRY((*core)->append(block));
  return RoomRef{key, false, ""};
}

Result<uint64_t> append(Core& writer, RoomView& view, LogSource& logs, const crypto::KeyPair& identity,
                        const Key32& noise_key, Message m) {
  switch (m.kind) {
    case Kind::hello:
      return invalid_argument("a writer's hello is written by append itself");
    case Kind::text:
      if (m.text.size() > kMaxTextBytes)
        return invalid_argument("a message is at most " + std::to_string(kMaxTextBytes) + " bytes (this one has " +
                                std::to_string(m.text.size()) + ")");
      break;
    case Kind::nick:
      if (m.text.size() > kMaxNickBytes)
        return invalid_argument("a nickname is at most " + std::to_string(kMaxNickBytes) + " bytes");
      break;
    case Kind::add:
    case Kind::remove:
      break;
  }
  if (!writer.writable()) return error(ErrorCode::permission, "core " + writer.label() + " is not writable here");
  if (!view.writers().count(writer.key())) view.add_writer(writer.key());
  P2P_TRY(view.update(logs, [](const Entry&) {}));
  NextLinks next = view.next_links(writer.key());

  auto w = writer.writer();  // holds the write lock: another process appending waits
  if (!w.ok()) return w.status();
  const uint64_t length = (*w)->length();
  const uint64_t time = now_ms();
  std::vector<Bytes> blocks;
  m.time_ms = time;
  if (length == 0) {
    Message hello = signed_hello(view.room().key, writer.key(), identity, noise_key);
    hello.clock = next.clock;
    hello.links = std::move(next.links);
    hello.time_ms = time;
    blocks.push_back(encode(hello));
    m.clock = hello.clock + 1;
    m.links.clear();
  } else {
    // Another process may have appended since our view merged: stay above its clock.
    m.clock = next.clock;
    auto last = (*w)->get(length - 1);
    if (!last.ok()) return last.status();
    if (auto prev = decode(*last); prev.ok()) m.clock = std::max(m.clock, prev->clock + 1);
    m.links = std::move(next.links);
  }
  blocks.push_back(encode(m));
  std::vector<ByteView> views;
  for (const Bytes& b : blocks) {
    if (b.size() > kMaxBlockBytes) return invalid_argument("the message encodes to more than " + std::to_string(kMaxBlockBytes) + " bytes");
    views.emplace_back(b);
  }
  P2P_TRY((*w)->append(views));
  P2P_TRY((*w)->commit());
  return writer.length();
}

}  // namespace p2p::room
