#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "core/room.h"
#include "test_util.h"

using namespace p2p;
using namespace p2p::room;

namespace {

using Blocks = std::map<Key32, std::vector<Bytes>>;

// Writer logs in memory. Each reader sees a prefix of each log: `cap` when
// set, else all of it (or none, when `see_all` is false).
struct MemLogs : LogSource {
  Blocks* blocks;
  std::map<Key32, uint64_t> cap;
  bool see_all = true;
  explicit MemLogs(Blocks& b, bool all = true) : blocks(&b), see_all(all) {}
  uint64_t available(const Key32& w) override {
    auto it = blocks->find(w);
    uint64_t size = it == blocks->end() ? 0 : it->second.size();
    auto c = cap.find(w);
    if (c != cap.end()) return std::min(c->second, size);
    return see_all ? size : 0;
  }
  Result<Bytes> get(const Key32& w, uint64_t seq) override {
    gets++;
    if (seq >= available(w)) return not_found("block not held");
    return (*blocks)[w][seq];
  }
  uint64_t gets = 0;  // blocks read: a rerun reads the whole history again
};

struct Author {
  crypto::KeyPair identity;
  Key32 writer{};
  Key32 noise{};
};

Author author(uint8_t n) {
  Key32 seed{};
  seed[0] = n;
  seed[1] = 0xa5;
  Author a;
  a.identity = crypto::key_pair_from_seed(seed);
  seed[1] = 0x5a;
  a.writer = crypto::key_pair_from_seed(seed).public_key;
  seed[1] = 0x33;
  a.noise = crypto::key_pair_from_seed(seed).public_key;
  return a;
}

Message hello_of(const Author& a, const Key32& room, uint64_t clock = 0, std::vector<Link> links = {}) {
  Message h;
  h.kind = Kind::hello;
  h.clock = clock;
  h.links = std::move(links);
  h.room = room;
  h.identity = a.identity.public_key;
  h.noise_key = a.noise;
  h.proof = crypto::sign(hello_signable(room, a.writer, a.noise), a.identity);
  return h;
}

Message text(const std::string& s, uint64_t clock = 0, std::vector<Link> links = {}) {
  Message m;
  m.kind = Kind::text;
  m.text = s;
  m.clock = clock;
  m.links = std::move(links);
  return m;
}

Message member_msg(Kind kind, const Key32& who, bool admin = false) {
  Message m;
  m.kind = kind;
  m.member = who;
  m.admin = admin;
  return m;
}

void noop(const Entry&) {}

// Writes `m` to a's log as room::append does: update, next_links, a hello
// first when the log is empty.
void post(MemLogs& logs, RoomView& view, const Author& a, Message m) {
  view.add_writer(a.writer);
  if (logs.see_all)
    for (auto& [k, v] : *logs.blocks) view.add_writer(k);
  REQUIRE(view.update(logs, noop).ok());
  NextLinks next = view.next_links(a.writer);
  auto& log = (*logs.blocks)[a.writer];
  if (log.empty()) {
    Message h = hello_of(a, view.room().key, next.clock, next.links);
    log.push_back(encode(h));
    m.clock = h.clock + 1;
    m.links.clear();
  } else {
    m.clock = std::max(next.clock, decode(log.back())->clock + 1);
    m.links = next.links;
  }
  log.push_back(encode(m));
}

using Id = std::pair<Key32, uint64_t>;  // writer, seq

std::vector<Id> replay_order(RoomView& view, LogSource& logs) {
  std::vector<Id> out;
  REQUIRE(view.replay(logs, [&](const Entry& e) {
    CHECK(e.position == out.size());
    out.push_back({e.writer, e.seq});
  }).ok());
  return out;
}

std::vector<Entry> collect(RoomView& view, LogSource& logs) {
  std::vector<Entry> out;
  REQUIRE(view.update(logs, [&](const Entry& e) { out.push_back(e); }).ok());
  return out;
}

std::vector<std::string> texts(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  for (const Entry& e : entries)
    if (e.message.kind == Kind::text) out.push_back(e.message.text);
  return out;
}

// Three (or more) authors posting in rounds; each sees a random part of the
// others' logs before each post. Returns the logs.
Blocks concurrent_rounds(const RoomRef& ref, const std::vector<Author>& authors, int rounds, uint64_t seed) {
  Blocks blocks;
  std::mt19937_64 rng(seed);
  std::vector<std::unique_ptr<RoomView>> views;
  std::vector<std::unique_ptr<MemLogs>> sees;
  for (size_t i = 0; i < authors.size(); i++) {
    views.push_back(std::make_unique<RoomView>(ref));
    sees.push_back(std::make_unique<MemLogs>(blocks, false));
  }
  for (int r = 0; r < rounds; r++) {
    std::vector<size_t> order(authors.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      MemLogs& mine = *sees[i];
      mine.cap[authors[i].writer] = UINT64_MAX;
      for (size_t j = 0; j < authors.size(); j++) {
        if (j == i) continue;
        uint64_t have = blocks[authors[j].writer].size(), seen = mine.cap[authors[j].writer];
        if (have > seen && rng() % 2) mine.cap[authors[j].writer] = seen + rng() % (have - seen + 1);
        if (mine.cap[authors[j].writer] > 0) views[i]->add_writer(authors[j].writer);
      }
      post(mine, *views[i], authors[i], text(std::to_string(i) + ":" + std::to_string(r)));
    }
  }
  return blocks;
}

// What a view's merged state says, to compare an incremental view with a replay.
struct Summary {
  NextLinks next;
  std::vector<Key32> members, admins;
  std::vector<Key32> wanted;
  bool operator==(const Summary& o) const {
    return next.clock == o.next.clock && next.links == o.next.links && members == o.members && admins == o.admins &&
           wanted == o.wanted;
  }
};

Summary summary(const RoomView& view) {
  Summary s;
  s.next = view.next_links(Key32{});
  for (const Member& m : view.members()) {
    s.members.push_back(m.identity);
    if (m.admin) s.admins.push_back(m.identity);
  }
  s.wanted = view.wanted_writers();
  return s;
}

// A fresh reader that learns of writers in a random order and gets their
// blocks in random slices, updating in between. Checks no entry is reported
// twice, and (`honest`) every entry of the final order exactly once; returns
// the final replay, and the merged state before it.
// With `each_step`, the view is compared after every update with a fresh one
// merging the same writers and blocks from the start.
std::vector<Id> arrive_randomly(const RoomRef& ref, Blocks& blocks, uint64_t seed, size_t* lates = nullptr,
                                bool honest = true, Summary* state = nullptr, bool each_step = false) {
  std::mt19937_64 rng(seed);
  MemLogs logs(blocks, false);
  RoomView view(ref);
  std::vector<Key32> pending;
  for (auto& [k, v] : blocks) pending.push_back(k);
  std::shuffle(pending.begin(), pending.end(), rng);
  std::map<Id, int> reported;
  size_t late = 0;
  auto on = [&](const Entry& e) {
    reported[{e.writer, e.seq}]++;
    late += e.late;
  };
  for (;;) {
    std::vector<Key32> growable;
    for (auto& [k, v] : blocks)
      if (logs.cap[k] < v.size()) growable.push_back(k);
    if (pending.empty() && growable.empty()) break;
    if (!pending.empty() && (growable.empty() || rng() % 4 == 0)) {
      view.add_writer(pending.back());
      pending.pop_back();
    } else {
      const Key32& k = growable[rng() % growable.size()];
      logs.cap[k] = std::min<uint64_t>(blocks[k].size(), logs.cap[k] + 1 + rng() % 8);
    }
    REQUIRE(view.update(logs, on).ok());
    if (each_step) {
      RoomView fresh(ref);
      for (const Key32& k : view.writers()) fresh.add_writer(k);
      REQUIRE(fresh.update(logs, noop).ok());
      REQUIRE(view.entries() == fresh.entries());
      REQUIRE(summary(view) == summary(fresh));
    }
  }
  REQUIRE(view.update(logs, on).ok());
  uint64_t merged = view.entries();
  if (state) *state = summary(view);
  auto order = replay_order(view, logs);
  for (auto& [id, times] : reported) CHECK(times == 1);
  CHECK(merged == order.size());
  if (honest) {
    CHECK(reported.size() == order.size());
    for (const Id& id : order) CHECK(reported[id] == 1);
    CHECK(view.wanted_writers().empty());
  }
  if (lates) *lates = late;
  return order;
}

// Logs no honest writer would write: clocks that lie, links to blocks that
// never come, to writers nobody has, forged hellos, garbage, second hellos,
// membership changes by anyone.
Blocks adversarial(const RoomRef& ref, const std::vector<Author>& authors, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Blocks blocks;
  Key32 nobody = open_room_key("a writer nobody has");
  std::vector<uint64_t> lengths;
  for (size_t i = 0; i < authors.size(); i++) lengths.push_back(5 + rng() % 40);
  for (size_t i = 0; i < authors.size(); i++) {
    const Author& a = authors[i];
    auto& log = blocks[a.writer];
    uint64_t clock = rng() % 3;
    for (uint64_t seq = 0; seq < lengths[i]; seq++) {
      std::vector<Link> links;
      for (uint64_t k = rng() % 4; k > 0; k--) {
        if (rng() % 60 == 0) {
          links.push_back({nobody, 0});
          continue;
        }
        size_t x = rng() % authors.size();
        uint64_t s = seq + rng() % 6;
        s = s > 3 ? s - 3 : 0;
        if (rng() % 30 != 0) s = std::min(s, lengths[x] - 1);  // else maybe beyond its log, for ever
        links.push_back({authors[x].writer, s});
      }
      Message m;
      int roll = static_cast<int>(rng() % 20);
      if (seq == 0) {
        m = hello_of(a, ref.key, clock, links);
        if (roll == 0) m.proof[5] ^= 1;
        if (roll == 1) m.room = nobody;
      } else if (roll == 0) {
        log.push_back(Bytes{1, 1, 0xff});
        continue;
      } else if (roll == 1) {
        m = hello_of(a, ref.key, clock, links);
      } else if (roll < 5) {
        m = member_msg(roll == 4 ? Kind::remove : Kind::add, authors[rng() % authors.size()].identity.public_key, rng() % 2);
        m.clock = clock;
        m.links = links;
      } else if (roll == 5) {
        m = text("nick" + std::to_string(seq), clock, links);
        m.kind = Kind::nick;
      } else {
        m = text(std::to_string(seq), clock, links);
      }
      log.push_back(encode(m));
      // Mostly forward by one; sometimes the clock lies low or jumps.
      if (rng() % 6 == 0) clock = clock > 2 ? clock - rng() % 3 : clock;
      else clock += rng() % 8 == 0 ? 2 + rng() % 3 : 1;
    }
  }
  return blocks;
}

RoomRef open_ref(const std::string& name) { return RoomRef{open_room_key(name), true, name}; }

}  // namespace

// ---- format ----------------------------------------------------------------

TEST_CASE("room: every kind encodes and decodes back", "[room]") {
  Author a = author(1);
  Key32 room = open_room_key("r");
  std::vector<Message> all;
  Message h = hello_of(a, room, 7, {{a.writer, 3}});
  h.text = "a title";
  h.time_ms = 1733000000000;
  all.push_back(h);
  all.push_back(text("hello there", 9, {{a.writer, 1}, {room, uint64_t{1} << 53}}));
  Message n = text("nick", 2);
  n.kind = Kind::nick;
  all.push_back(n);
  Message add = member_msg(Kind::add, a.identity.public_key, true);
  add.clock = uint64_t{1} << 53;
  all.push_back(add);
  all.push_back(member_msg(Kind::add, room, false));
  all.push_back(member_msg(Kind::remove, room));
  all.push_back(text(std::string(kMaxTextBytes, 'x'), 1, std::vector<Link>(kMaxLinks, Link{room, 12345678901})));
  for (const Message& m : all) {
    auto back = decode(encode(m));
    REQUIRE(back.ok());
    CHECK(*back == m);
    CHECK(encode(*back) == encode(m));
  }
  // The layout, byte for byte, for a small text message.
  Bytes small = encode(text("hi", 3, {}));
  CHECK(small == Bytes{1, 1, 3, 0, 0, 2, 'h', 'i'});
}

TEST_CASE("room: decode refuses every bound and malformed shape", "[room]") {
  Key32 room = open_room_key("r");
  auto refused = [](const Bytes& b) {
    auto m = decode(b);
    return !m.ok() && m.status().code() == ErrorCode::corruption;
  };
  CHECK(refused(encode(text(std::string(kMaxTextBytes + 1, 'x')))));
  Message n = text(std::string(kMaxNickBytes + 1, 'n'));
  n.kind = Kind::nick;
  CHECK(refused(encode(n)));
  n.text.pop_back();
  CHECK(decode(encode(n)).ok());
  Message h = hello_of(author(1), room);
  h.text = std::string(kMaxTitleBytes + 1, 't');
  CHECK(refused(encode(h)));
  h.text.pop_back();
  CHECK(decode(encode(h)).ok());
  CHECK(refused(encode(text("x", 1, std::vector<Link>(kMaxLinks + 1, Link{room, 1})))));
  CHECK(refused(encode(text("x", (uint64_t{1} << 53) + 1))));
  CHECK(refused(encode(text("x", 1, {{room, (uint64_t{1} << 53) + 1}}))));
  CHECK(refused(Bytes(kMaxBlockBytes + 1, 0)));
  Bytes good = encode(text("x", 1));
  Bytes b = good;
  b[0] = 2;  // version
  CHECK(refused(b));
  b = good;
  b[1] = 5;  // kind
  CHECK(refused(b));
  b = good;
  b.push_back(0);  // trailing
  CHECK(refused(b));
  for (size_t len = 0; len < good.size(); len++) CHECK(refused(Bytes(good.begin(), good.begin() + len)));
  Bytes add = encode(member_msg(Kind::add, room, true));
  add.back() = 2;  // a bool is 0 or 1
  CHECK(refused(add));
  Bytes hello = encode(hello_of(author(1), room));
  for (size_t len = 0; len < hello.size(); len++) CHECK(refused(Bytes(hello.begin(), hello.begin() + len)));
  CHECK(refused({}));
}

TEST_CASE("room: random and mutated blocks decode without harm", "[room]") {
  std::mt19937_64 rng(42);
  Key32 room = open_room_key("fuzz");
  std::vector<Bytes> seeds = {encode(hello_of(author(1), room, 3, {{room, 1}})), encode(text("some text", 4, {{room, 2}})),
                              encode(member_msg(Kind::add, room, true)), encode(member_msg(Kind::remove, room))};
  size_t decoded = 0;
  for (int i = 0; i < 10000; i++) {
    Bytes b;
    if (i % 3 == 0) {
      b.resize(rng() % 300);
      for (auto& x : b) x = static_cast<uint8_t>(rng() % 8 == 0 ? rng() % 6 : rng());
    } else {
      b = seeds[rng() % seeds.size()];
      int edits = 1 + rng() % 4;
      for (int e = 0; e < edits && !b.empty(); e++) {
        size_t at = rng() % b.size();
        switch (rng() % 4) {
          case 0: b[at] = static_cast<uint8_t>(rng()); break;
          case 1: b.erase(b.begin() + at); break;
          case 2: b.insert(b.begin() + at, static_cast<uint8_t>(rng())); break;
          case 3: b.resize(at); break;
        }
      }
    }
    auto m = decode(b);
    if (m.ok()) {
      decoded++;
      auto again = decode(encode(*m));
      REQUIRE(again.ok());
      CHECK(*again == *m);
    }
  }
  CHECK(decoded > 100);  // the mutations reach past the first checks
}

TEST_CASE("room: keys, topics and the hello signable", "[room]") {
  Key32 a = open_room_key("lobby");
  CHECK(a == open_room_key("lobby"));
  CHECK(a != open_room_key("lobby2"));
  CHECK(a == crypto::hash({as_bytes(std::string_view("p2p-chat-open-room\0", 19)), as_bytes("lobby")}));
  CHECK(topic(a) == crypto::discovery_key(a));
  Key32 w = open_room_key("w"), n = open_room_key("n");
  Bytes s = hello_signable(a, w, n);
  CHECK(s.size() == 15 + 96);
  CHECK(std::string(s.begin(), s.begin() + 15) == std::string("p2p-chat-hello\0", 15));
  CHECK(std::equal(a.begin(), a.end(), s.begin() + 15));
  CHECK(std::equal(n.begin(), n.end(), s.begin() + 79));
}

// ---- the merge -------------------------------------------------------------

TEST_CASE("room: concurrent writers converge whatever arrives when", "[room]") {
  RoomRef ref = open_ref("converge");
  std::vector<Author> authors = {author(1), author(2), author(3)};
  Blocks blocks = concurrent_rounds(ref, authors, 30, 7);
  MemLogs all(blocks);
  RoomView reference(ref);
  for (auto& [k, v] : blocks) reference.add_writer(k);
  auto order = replay_order(reference, all);
  CHECK(order.size() == 3 + 90);  // every hello and every text: honest writers are never skipped
  size_t total_late = 0;
  for (uint64_t seed = 1; seed <= 12; seed++) {
    size_t late = 0;
    CHECK(arrive_randomly(ref, blocks, seed, &late, true, nullptr, true) == order);
    total_late += late;
  }
  CHECK(total_late > 0);  // some arrival orders had to rewind
  // Updating everything at once reports the order itself, nothing late.
  RoomView once(ref);
  for (auto& [k, v] : blocks) once.add_writer(k);
  auto entries = collect(once, all);
  REQUIRE(entries.size() == order.size());
  for (size_t i = 0; i < order.size(); i++) {
    CHECK(Id{entries[i].writer, entries[i].seq} == order[i]);
    CHECK(entries[i].position == i);
    CHECK_FALSE(entries[i].late);
  }
  CHECK(collect(once, all).empty());
}

TEST_CASE("room: 1,000 messages from three writers, three arrival orders, one order", "[room]") {
  RoomRef ref = open_ref("thousand");
  std::vector<Author> authors = {author(4), author(5), author(6)};
  Blocks blocks = concurrent_rounds(ref, authors, 334, 99);
  MemLogs all(blocks);
  RoomView reference(ref);
  for (auto& [k, v] : blocks) reference.add_writer(k);
  auto order = replay_order(reference, all);
  CHECK(order.size() == 3 + 3 * 334);
  for (uint64_t seed : {11, 22, 33}) CHECK(arrive_randomly(ref, blocks, seed) == order);
  // Causal: within the order every message comes after what it links to.
  std::map<Key32, uint64_t> merged;
  for (const Id& id : order) {
    auto m = decode(blocks[id.first][id.second]);
    for (const Link& l : m->links) CHECK(merged.count(l.writer));
    for (const Link& l : m->links) CHECK(merged[l.writer] >= l.seq);
    merged[id.first] = id.second;
  }
}

TEST_CASE("room: adversarial logs still merge to one order whatever arrives when", "[room]") {
  std::vector<Author> authors = {author(1), author(2), author(3), author(4), author(5)};
  size_t entries = 0;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    // Private rooms too: the first author's writer is the root.
    RoomRef ref = seed % 2 ? open_ref("adversarial") : RoomRef{authors[0].writer, false, ""};
    Blocks blocks = adversarial(ref, authors, seed);
    MemLogs all(blocks);
    RoomView reference(ref);
    for (auto& [k, v] : blocks) reference.add_writer(k);
    auto order = replay_order(reference, all);
    Summary expected = summary(reference);
    entries += order.size();
    for (uint64_t arrival = 1; arrival <= 4; arrival++) {
      Summary got;
      INFO("seed " << seed << " arrival " << arrival);
      CHECK(arrive_randomly(ref, blocks, seed * 100 + arrival, nullptr, false, &got, true) == order);
      CHECK(got == expected);
    }
  }
  // The merge lets some through: most random links name messages whose clocks
  // are not below the linker's, and after a skipped message its writer's
  // clocks jump, so hostile writers lose most of what they write.
  CHECK(entries > 50);
}

TEST_CASE("room: a message whose clock lies low, or jumps, is skipped", "[room]") {
  RoomRef ref = open_ref("liar");
  Author a = author(1), b = author(2);
  Blocks blocks;
  blocks[a.writer] = {encode(hello_of(a, ref.key)), encode(text("a1", 1)), encode(text("a2", 2)), encode(text("a3", 3))};
  blocks[b.writer] = {encode(hello_of(b, ref.key)),
                      encode(text("claims to follow a3", 2, {{a.writer, 3}})),  // 2 is not above 3
                      encode(text("b4", 4, {{a.writer, 3}})),                   // 1 above a3
                      encode(text("b4 again", 4)),                              // not above b's own 4
                      encode(text("b9", 9)),                                    // jumps: more than 1 above b4
                      encode(text("b5", 5))};
  MemLogs logs(blocks);
  RoomView view(ref);
  view.add_writer(a.writer);
  view.add_writer(b.writer);
  auto entries = collect(view, logs);
  CHECK(texts(entries) == std::vector<std::string>{"a1", "a2", "a3", "b4", "b5"});
  CHECK(view.next_links(a.writer).clock == 6);
}

TEST_CASE("room: a link to a block not held blocks its writer until it comes", "[room]") {
  RoomRef ref = open_ref("wait");
  // Ties in clock go by writer key: name the authors in key order.
  std::vector<Author> sorted = {author(1), author(2), author(3)};
  std::sort(sorted.begin(), sorted.end(), [](const Author& x, const Author& y) { return x.writer < y.writer; });
  Author a = sorted[0], b = sorted[1], c = sorted[2];
  Blocks blocks;
  blocks[a.writer] = {encode(hello_of(a, ref.key)), encode(text("a1", 1)), encode(text("a2", 2)), encode(text("a3", 3))};
  blocks[b.writer] = {encode(hello_of(b, ref.key)), encode(text("b4", 4, {{a.writer, 3}})), encode(text("b5", 5))};
  blocks[c.writer] = {encode(hello_of(c, ref.key))};
  for (uint64_t i = 1; i <= 6; i++) blocks[c.writer].push_back(encode(text("c" + std::to_string(i), i)));
  MemLogs logs(blocks);
  logs.cap[a.writer] = 3;
  RoomView view(ref);
  for (const Author* x : {&a, &b, &c}) view.add_writer(x->writer);
  auto first = collect(view, logs);
  CHECK(texts(first) == std::vector<std::string>{"a1", "c1", "a2", "c2", "c3", "c4", "c5", "c6"});
  for (const Entry& e : first) CHECK_FALSE(e.late);
  CHECK(collect(view, logs).empty());  // nothing new: no rerun, nothing repeated
  logs.cap[a.writer] = 4;
  auto second = collect(view, logs);
  REQUIRE(texts(second) == std::vector<std::string>{"a3", "b4", "b5"});
  for (const Entry& e : second) CHECK(e.late);  // each sorts before c5 or c6, reported already
  std::vector<std::string> all_texts;
  REQUIRE(view.replay(logs, [&](const Entry& e) {
    CHECK_FALSE(e.late);
    if (e.message.kind == Kind::text) all_texts.push_back(e.message.text);
  }).ok());
  CHECK(all_texts == std::vector<std::string>{"a1", "c1", "a2", "c2", "a3", "c3", "b4", "c4", "b5", "c5", "c6"});
}

TEST_CASE("room: a link to an unknown writer asks for it and waits", "[room]") {
  RoomRef ref = open_ref("unknown");
  Author a = author(1), b = author(2);
  Blocks blocks;
  blocks[a.writer] = {encode(hello_of(a, ref.key)), encode(text("a1", 1))};
  blocks[b.writer] = {encode(hello_of(b, ref.key)), encode(text("b2", 2, {{a.writer, 1}})), encode(text("b3", 3))};
  MemLogs logs(blocks);
  RoomView view(ref);
  view.add_writer(b.writer);
  CHECK(texts(collect(view, logs)).empty());
  CHECK(view.wanted_writers() == std::vector<Key32>{a.writer});
  view.add_writer(a.writer);
  CHECK(view.wanted_writers().empty());
  auto entries = collect(view, logs);
  CHECK(texts(entries) == std::vector<std::string>{"a1", "b2", "b3"});
  CHECK(entries.size() == 4);  // and a's hello (b's was reported first)
}

TEST_CASE("room: growth that sorts last, and waits that cannot end, cost no rerun", "[room]") {
  RoomRef ref = open_ref("cheap");
  Author a = author(1), b = author(2), c = author(3);
  Blocks blocks;
  blocks[a.writer] = {encode(hello_of(a, ref.key)), encode(text("waits for ever", 1, {{open_room_key("nobody"), 0}}))};
  blocks[b.writer] = {encode(hello_of(b, ref.key))};
  for (uint64_t i = 1; i <= 200; i++) blocks[b.writer].push_back(encode(text("b", i, {{a.writer, 0}})));
  blocks[c.writer] = {encode(hello_of(c, ref.key)), encode(text("c", 2, {{b.writer, 1}})),
                      encode(text("c", 3, {{a.writer, 1}}))};  // waits on a's blocked message
  MemLogs logs(blocks);
  logs.cap[b.writer] = 5;  // b's clocks 1..4: past c's blocked head (3)
  RoomView view(ref);
  for (const Author* x : {&a, &b, &c}) view.add_writer(x->writer);
  uint64_t shown = 0;
  REQUIRE(view.update(logs, [&](const Entry&) { shown++; }).ok());
  CHECK(shown == 3 + 4 + 1);  // hellos, b's first four, c's first
  CHECK(view.wanted_writers().size() == 1);
  shown = 0;
  for (uint64_t n = 6; n <= 201; n++) {
    logs.cap[b.writer] = n;
    uint64_t before = logs.gets;
    REQUIRE(view.update(logs, [&](const Entry& e) {
      shown++;
      CHECK_FALSE(e.late);
    }).ok());
    CHECK(logs.gets - before <= 1);  // just the new block
  }
  CHECK(shown == 196);  // the rest of b's; a's text and c's second wait
  // Adding a writer with nothing held yet costs nothing either.
  Author d = author(4);
  view.add_writer(d.writer);
  uint64_t before = logs.gets;
  REQUIRE(view.update(logs, noop).ok());
  CHECK(logs.gets == before);
}

TEST_CASE("room: a writer whose hello does not verify is ignored", "[room]") {
  RoomRef ref = open_ref("forged");
  Author a = author(1), b = author(2), c = author(3), d = author(4);
  Blocks blocks;
  Message forged = hello_of(a, ref.key);
  forged.proof[0] ^= 1;
  blocks[a.writer] = {encode(forged), encode(text("from a", 1))};
  blocks[b.writer] = {encode(hello_of(b, ref.key)), encode(text("b1", 1, {{a.writer, 1}})),
                      encode(hello_of(b, ref.key, 3)), encode(text("b2", 2))};
  blocks[c.writer] = {encode(hello_of(c, open_room_key("another room"))), encode(text("from c", 1))};
  blocks[d.writer] = {encode(text("no hello", 0)), encode(text("from d", 1))};
  MemLogs logs(blocks);
  RoomView view(ref);
  for (const Author* x : {&a, &b, &c, &d}) view.add_writer(x->writer);
  auto entries = collect(view, logs);
  CHECK(texts(entries) == std::vector<std::string>{"b1", "b2"});  // a's link ignored; b's second hello skipped
  CHECK(entries.size() == 3);
  CHECK(view.members().size() == 1);
  CHECK(view.is_member(b.identity.public_key));
  CHECK_FALSE(view.is_member(a.identity.public_key));
  CHECK_FALSE(view.is_admin(b.identity.public_key));  // an open room has no admins
  auto next = view.next_links(c.writer);
  CHECK(next.links == std::vector<Link>{{b.writer, 3}});
}

TEST_CASE("room: private room membership", "[room]") {
  Author root = author(1), m = author(2), n = author(3), x = author(4);
  RoomRef ref{root.writer, false, ""};
  Blocks blocks;
  MemLogs logs(blocks);
  RoomView rv(ref), mv(ref), nv(ref), xv(ref);
  // The root writer's hello, as create_private writes it.
  blocks[root.writer].push_back(encode(hello_of(root, ref.key)));
  rv.add_writer(root.writer);
  for (RoomView* v : {&mv, &nv, &xv}) v->add_writer(root.writer);
  post(logs, mv, m, text("m before"));
  post(logs, rv, root, member_msg(Kind::add, m.identity.public_key, false));
  post(logs, mv, m, text("m after add"));
  post(logs, mv, m, member_msg(Kind::add, n.identity.public_key));  // m is no admin: nothing
  post(logs, nv, n, text("n unseen"));
  post(logs, rv, root, member_msg(Kind::add, m.identity.public_key, true));
  post(logs, mv, m, member_msg(Kind::add, n.identity.public_key));  // now it counts
  post(logs, nv, n, text("n seen"));
  post(logs, nv, n, member_msg(Kind::add, x.identity.public_key));  // n is no admin
  post(logs, xv, x, text("x unseen"));
  post(logs, mv, m, member_msg(Kind::remove, root.identity.public_key));  // the creator stays
  post(logs, rv, root, member_msg(Kind::remove, n.identity.public_key));
  post(logs, nv, n, text("n removed"));
  post(logs, rv, root, text("root"));

  RoomView view(ref);
  for (const Author* a : {&root, &m, &n, &x}) view.add_writer(a->writer);
  std::vector<std::string> shown;
  std::set<Key32> authors;
  REQUIRE(view.replay(logs, [&](const Entry& e) {
    authors.insert(e.author);
    switch (e.message.kind) {
      case Kind::text: shown.push_back(e.message.text); break;
      case Kind::add: shown.push_back(std::string("add") + (e.message.admin ? " admin" : "")); break;
      case Kind::remove: shown.push_back("remove"); break;
      case Kind::hello: shown.push_back("hello"); break;
      case Kind::nick: break;
    }
  }).ok());
  CHECK(shown == std::vector<std::string>{"hello", "add", "m after add", "add admin", "add", "n seen", "remove", "root"});
  CHECK_FALSE(authors.count(x.identity.public_key));  // non-members are shown nowhere
  CHECK(view.is_admin(root.identity.public_key));
  CHECK(view.is_admin(m.identity.public_key));
  CHECK_FALSE(view.is_member(n.identity.public_key));
  CHECK_FALSE(view.is_member(x.identity.public_key));
  auto members = view.members();
  REQUIRE(members.size() == 2);
  for (const Member& mem : members) {
    CHECK(mem.admin);
    REQUIRE(mem.noise_keys.size() == 1);
    CHECK(mem.noise_keys[0] == (mem.identity == root.identity.public_key ? root.noise : m.noise));
  }
}

TEST_CASE("room: nicknames travel with entries", "[room]") {
  RoomRef ref = open_ref("nicks");
  Author a = author(1);
  Blocks blocks;
  MemLogs logs(blocks);
  RoomView av(ref);
  Message nick = text("alice");
  nick.kind = Kind::nick;
  post(logs, av, a, text("anonymous"));
  post(logs, av, a, nick);
  post(logs, av, a, text("named"));
  RoomView view(ref);
  view.add_writer(a.writer);
  auto entries = collect(view, logs);
  REQUIRE(entries.size() == 4);
  CHECK(entries[1].nick.empty());
  CHECK(entries[2].nick.empty());  // the nick change carries the old one; the new one is its text
  CHECK(entries[2].message.text == "alice");
  CHECK(entries[3].nick == "alice");
  REQUIRE(view.members().size() == 1);
  CHECK(view.members()[0].nick == "alice");
}

TEST_CASE("room: next_links names the frontier", "[room]") {
  RoomRef ref = open_ref("frontier");
  Author a = author(1), b = author(2), c = author(3);
  Blocks blocks;
  MemLogs all(blocks);
  RoomView av(ref), bv(ref);
  post(all, av, a, text("a1"));  // a: hello(1), a1(2)
  bv.add_writer(a.writer);
  post(all, bv, b, text("b1"));  // b: hello(3, links a@1), b1(4)
  RoomView view(ref);
  view.add_writer(a.writer);
  view.add_writer(b.writer);
  REQUIRE(view.update(all, noop).ok());
  auto next = view.next_links(c.writer);
  CHECK(next.clock == 5);
  CHECK(next.links == std::vector<Link>{{b.writer, 1}});  // b's hello already names a's last
  MemLogs a_alone(blocks, false);
  a_alone.cap[a.writer] = UINT64_MAX;
  RoomView lone(ref);
  post(a_alone, lone, a, text("a2"));  // a did not see b: a2 has clock 3
  REQUIRE(view.update(all, noop).ok());
  next = view.next_links(c.writer);
  CHECK(next.clock == 5);
  CHECK(next.links == std::vector<Link>{{b.writer, 1}, {a.writer, 2}});  // higher clock first
  CHECK(view.next_links(a.writer).links == std::vector<Link>{{b.writer, 1}});
  CHECK(RoomView(ref).next_links(a.writer).clock == 1);

  // More concurrent writers than links: the highest clocks are kept.
  RoomRef wide = open_ref("wide");
  Blocks many;
  MemLogs many_logs(many, false);
  RoomView observer(wide);
  for (int i = 0; i < 70; i++) {
    Author w = author(static_cast<uint8_t>(10 + i));
    many_logs.cap.clear();
    many_logs.cap[w.writer] = UINT64_MAX;
    RoomView own(wide);
    for (int k = 0; k <= i % 5; k++) post(many_logs, own, w, text("x"));
    observer.add_writer(w.writer);
  }
  MemLogs see_many(many);
  REQUIRE(observer.update(see_many, noop).ok());
  auto wide_next = observer.next_links(Key32{});
  REQUIRE(wide_next.links.size() == kMaxLinks);
  CHECK(wide_next.clock == 1 + 1 + 5);
  uint64_t lowest_kept = UINT64_MAX;
  std::set<Key32> kept;
  for (const Link& l : wide_next.links) {
    kept.insert(l.writer);
    lowest_kept = std::min(lowest_kept, decode(many[l.writer][l.seq])->clock);
  }
  for (auto& [k, log] : many)
    if (!kept.count(k)) CHECK(decode(log.back())->clock <= lowest_kept);
}

// ---- a real store ----------------------------------------------------------

TEST_CASE("room: own writers, append and private rooms on a store", "[room]") {
  test::TempDir dir;
  storage::LmdbOptions o;
  o.map_size = uint64_t{1} << 30;
  auto store = storage::open_lmdb(dir.path, o);
  REQUIRE(store.ok());
  Corestore alice_store(**store, crypto::random_key()), bob_store(**store, crypto::random_key());
  auto alice = crypto::random_key_pair(), bob = crypto::random_key_pair();
  Key32 alice_noise = crypto::random_key(), bob_noise = crypto::random_key();
  StoreLogs logs(**store);
  CHECK(logs.available(crypto::random_key()) == 0);
  CHECK(logs.get(crypto::random_key(), 0).status().is_not_found());

  SECTION("open room") {
    RoomRef ref = open_ref("lobby");
    auto aw = own_writer(alice_store, ref);
    REQUIRE(aw.ok());
    CHECK((*aw)->key() == (*alice_store.open_name("chat/" + to_hex(ref.key)))->key());
    RoomView av(ref);
    CHECK(*append(**aw, av, logs, alice, alice_noise, text("hi")) == 2);  // hello + text in one append
    CHECK(av.writers().count((*aw)->key()));
    Message nick = text("alice");
    nick.kind = Kind::nick;
    CHECK(*append(**aw, av, logs, alice, alice_noise, nick) == 3);
    auto too_long = append(**aw, av, logs, alice, alice_noise, text(std::string(kMaxTextBytes + 1, 'x')));
    CHECK(too_long.status().code() == ErrorCode::invalid_argument);
    CHECK(too_long.status().message().find("4096") != std::string::npos);
    nick.text = std::string(kMaxNickBytes + 1, 'n');
    CHECK(append(**aw, av, logs, alice, alice_noise, nick).status().code() == ErrorCode::invalid_argument);
    CHECK((*aw)->length() == 3);

    auto bw = own_writer(bob_store, ref);
    REQUIRE(bw.ok());
    RoomView bv(ref);
    bv.add_writer((*aw)->key());
    CHECK(*append(**bw, bv, logs, bob, bob_noise, text("hello alice")) == 2);
    // The same writer opened again (another process of that home) keeps the clock growing.
    auto aw2 = own_writer(alice_store, ref);
    RoomView stale(ref);
    CHECK(*append(**aw2, stale, logs, alice, alice_noise, text("from a stale view")) == 4);

    RoomView view(ref);
    view.add_writer((*aw)->key());
    view.add_writer((*bw)->key());
    auto entries = collect(view, logs);
    // Bob's hello (clock 4) and the stale one (4) tie on clocks: writer keys decide.
    CHECK(texts(entries) == std::vector<std::string>{"hi", "from a stale view", "hello alice"});
    CHECK(entries.size() == 6);
    for (const Entry& e : entries) {
      CHECK(e.message.time_ms > 0);
      if (e.message.text == "from a stale view") CHECK(e.nick == "alice");
      if (e.message.text == "hello alice") CHECK(e.author == bob.public_key);
    }
    CHECK(view.members().size() == 2);
    CHECK(*append(**aw, view, logs, alice, alice_noise, text("more")) == 5);
    CHECK(texts(collect(view, logs)) == std::vector<std::string>{"more"});
  }

  SECTION("private room") {
    auto made = create_private(alice_store, alice, alice_noise, "team");
    REQUIRE(made.ok());
    RoomRef ref = *made;
    CHECK_FALSE(ref.open);
    auto again = create_private(alice_store, alice, alice_noise, "team");
    CHECK(again.status().code() == ErrorCode::invalid_argument);
    CHECK(again.status().message().find("already exists") != std::string::npos);
    auto untitled = create_private(alice_store, alice, alice_noise, "");
    REQUIRE(untitled.ok());
    CHECK(untitled->key != ref.key);

    auto root = own_writer(alice_store, ref);
    REQUIRE(root.ok());
    CHECK((*root)->key() == ref.key);
    CHECK((*root)->writable());
    auto hello = decode(*(*root)->get(0));
    REQUIRE(hello.ok());
    CHECK(hello->text == "team");
    CHECK(hello->clock == 0);

    auto bw = own_writer(bob_store, ref);
    REQUIRE(bw.ok());
    CHECK((*bw)->key() != ref.key);
    RoomView bv(ref);
    bv.add_writer(ref.key);
    REQUIRE(append(**bw, bv, logs, bob, bob_noise, text("let me in")).ok());

    RoomView av(ref);
    av.add_writer((*bw)->key());
    CHECK(*append(**root, av, logs, alice, alice_noise, member_msg(Kind::add, bob.public_key)) == 2);
    REQUIRE(append(**bw, bv, logs, bob, bob_noise, text("thanks")).ok());

    RoomView view(ref);
    view.add_writer(ref.key);
    view.add_writer((*bw)->key());
    auto entries = collect(view, logs);
    CHECK(texts(entries) == std::vector<std::string>{"thanks"});
    CHECK(entries.front().message.kind == Kind::hello);
    CHECK(entries.front().author == alice.public_key);
    CHECK(view.is_admin(alice.public_key));
    CHECK(view.is_member(bob.public_key));
    CHECK_FALSE(view.is_admin(bob.public_key));
  }
}

TEST_CASE("room: StoreLogs follows a core as it grows", "[room]") {
  auto store = storage::open_memory();
  Corestore cs(*store, crypto::random_key());
  auto core = std::move(*cs.get("chat/x"));
  StoreLogs logs(*store);
  CHECK(logs.available(core->key()) == 0);
  REQUIRE(core->append(as_bytes("a")).ok());
  CHECK(logs.available(core->key()) == 1);
  std::vector<Bytes> more = {Bytes{1}, Bytes{2}, Bytes{3}};
  std::vector<ByteView> views(more.begin(), more.end());
  REQUIRE(core->append(views).ok());
  CHECK(logs.available(core->key()) == 4);
  CHECK(*logs.get(core->key(), 3) == Bytes{3});
}
