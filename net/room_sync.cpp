#include "net/room_sync.h"

#include <list>
#include <map>
#include <set>

#include "core/encoding.h"
#include "net/connection.h"
#include "net/session.h"
#include "net/swarm.h"
#include "net/udx_transport.h"

namespace p2p::net {

namespace {

constexpr const char* kRoomProtocol = "p2p-chat/1";
constexpr uint64_t kWritersMessage = 0;
constexpr size_t kWritersPerMessage = 1024;
constexpr size_t kMaxAskedPerWriter = 4096;  // blocks requested at once from all peers
constexpr uint64_t kTickMs = 100;            // other processes' appends are noticed within this

// Proves that the opener knows the room key, bound to this connection.
Hash32 room_capability(bool initiator, const Key32& room_key, const std::array<uint8_t, 64>& handshake_hash) {
  uint8_t side = initiator ? 1 : 0;
  return crypto::hash({as_bytes(std::string_view("p2p-chat-capability")), ByteView(&side, 1), handshake_hash, room_key});
}

Bytes presence_signable(const Hash32& capability, const Key32& identity) {
  Bytes b = to_bytes(as_bytes(std::string_view("p2p-chat-presence")));
  b.insert(b.end(), capability.begin(), capability.end());
  b.insert(b.end(), identity.begin(), identity.end());
  return b;
}

}  // namespace

struct RoomSync::Impl {
  struct Peer;

  // The room's own channel on a connection: presence (the peer's identity,
  // signed) in the open handshake, then lists of writer cores.
  class Channel : public ChannelHandler {
   public:
    Channel(Impl& room, Peer& peer) : room_(room), peer_(peer) {}
    Status open();
    void send_writers(const std::vector<Key32>& writers);
    Status on_open(uint64_t channel, ByteView remote_handshake) override;
    Status on_message(uint64_t type, ByteView payload) override;
    void on_close() override {}

   private:
    Impl& room_;
    Peer& peer_;
    uint64_t channel_ = 0;
    bool opened_ = false;
  };

  struct Peer {
    std::unique_ptr<Connection> connection;
    Key32 remote{};
    std::string address;
    bool relayed = false;
    bool established = false;
    Channel* channel = nullptr;      // owned by connection->sessions()
    std::optional<Key32> identity;   // once proven
  };

  struct Writer {
    std::unique_ptr<Core> core;
    uint64_t contiguous = 0;                  // blocks 0.. held here
    std::vector<CoreSession*> sessions;       // one per peer that opened it
    std::map<uint64_t, CoreSession*> asked;   // block -> the session it was asked of
  };

  dht::Runtime& runtime;
  storage::Store& store;
  Key32 room_key;
  Hash32 topic;
  crypto::KeyPair identity;
  crypto::KeyPair connection_keys = crypto::random_key_pair();
  Hooks hooks;
  std::unique_ptr<dht::Swarm> swarm;
  std::list<Peer> peers;
  std::map<Key32, Writer> writers;
  std::map<Hash32, Key32> by_discovery_key;
  std::map<Key32, int> online;  // identity -> connections proving it
  std::vector<Peer*> dead;
  dht::Clock::TimerId tick_timer = 0, flush_timer = 0;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  Impl(dht::Runtime& rt, storage::Store& s, const Key32& room, const crypto::KeyPair& id, Hooks h)
      : runtime(rt), store(s), room_key(room), topic(crypto::discovery_key(room)), identity(id), hooks(std::move(h)) {}

  dht::Clock& clock() { return runtime.node().clock(); }
  void notice(const std::string& m) {
    if (hooks.on_notice) hooks.on_notice(m);
  }

  RoomPeer room_peer(const Peer& p) const {
    return RoomPeer{p.identity.value_or(Key32{}), p.remote, p.address, p.relayed};
  }

  // ---- connections ----

  void accept(dht::Established&& e) {
    peers.emplace_back();
    Peer& p = peers.back();
    p.remote = e.handshake.remote_public_key;
    p.address = e.remote.to_string();
    p.relayed = e.relayed;
    auto stream = std::make_unique<SecretStream>(e.initiator, e.handshake);
    p.connection = std::make_unique<Connection>(
        runtime.loop(), udx_transport(std::move(e.stream), clock(), std::move(e.early_data)), std::move(stream));
    Connection* c = p.connection.get();
    // A peer may open writers we learn of only later (from its list).
    c->mux().hold_unmatched_opens(true);
    c->mux().on_pair([this, &p](const std::string& protocol, ByteView id) {
      if (protocol != kHypercoreProtocol || id.size() != 32) return;
      Hash32 dk;
      std::copy(id.begin(), id.end(), dk.begin());
      auto it = by_discovery_key.find(dk);
      if (it != by_discovery_key.end()) open_session(p, it->second);
    });
    c->set_hooks({[this, &p] { established(p); }, [this, &p](const Status& why) { closed(p, why); }});
    if (Status s = c->start(); !s.ok()) c->close(s);
  }

  void established(Peer& p) {
    p.established = true;
    auto channel = std::make_unique<Channel>(*this, p);
    p.channel = channel.get();
    p.connection->sessions().push_back(std::move(channel));
    if (Status s = p.channel->open(); !s.ok()) {
      p.connection->close(s);
      return;
    }
    for (auto& [key, w] : writers) open_session(p, key);
    p.connection->flush_output();
  }

  void closed(Peer& p, const Status& why) {
    if (swarm) swarm->disconnected(p.remote);
    if (!why.ok() && p.established) notice("connection to " + p.address + " ended: " + why.message());
    if (p.identity && --online[*p.identity] == 0) {
      online.erase(*p.identity);
      if (hooks.on_leave) hooks.on_leave(room_peer(p));
    }
    p.identity.reset();
    dead.push_back(&p);
  }

  void proven(Peer& p, const Key32& id) {
    p.identity = id;
    if (online[id]++ == 0 && hooks.on_join) hooks.on_join(room_peer(p));
  }

  // ---- writers ----

  Status add_writer(const Key32& key) {
    if (writers.count(key)) return {};
    if (writers.size() >= kMaxWriters)
      return error(ErrorCode::invalid_argument, "the room has more than " + std::to_string(kMaxWriters) + " writers");
    auto core = Core::open_replica(store, key);
    if (!core.ok()) return core.status();
    Writer& w = writers[key];
    w.core = std::move(*core);
    by_discovery_key[w.core->discovery_key()] = key;
    P2P_TRY(advance(key, w));
    for (Peer& p : peers) {
      if (!p.established || p.connection->closed()) continue;
      if (p.channel) p.channel->send_writers({key});
      open_session(p, key);
      p.connection->flush_output();
    }
    return {};
  }

  void open_session(Peer& p, const Key32& key) {
    Writer& w = writers[key];
    for (CoreSession* s : w.sessions)
      if (owner_of(s) == &p) return;  // one per peer
    Connection* c = p.connection.get();
    auto session = std::make_unique<CoreSession>(c->mux(), *w.core, c->handshake(), c->initiator());
    CoreSession* s = session.get();
    session_owner[s] = &p;
    CoreSession::Hooks h;
    h.on_remote_sync = [this, key] { fetch(key); };
    h.on_upgrade = [this, key] { fetch(key); };
    h.on_block = [this, key](uint64_t index) {
      writers[key].asked.erase(index);
      schedule_flush();
    };
    h.on_block_missing = [this, key](uint64_t index) { writers[key].asked.erase(index); };
    h.on_close = [this, key, s] { forget(key, s); };
    s->set_hooks(std::move(h));
    w.sessions.push_back(s);
    c->sessions().push_back(std::move(session));
    if (Status st = s->open(); !st.ok()) c->close(st);
  }

  Peer* owner_of(CoreSession* s) {
    auto it = session_owner.find(s);
    return it == session_owner.end() ? nullptr : it->second;
  }
  std::map<CoreSession*, Peer*> session_owner;

  void forget(const Key32& key, CoreSession* s) {
    auto wit = writers.find(key);
    if (wit == writers.end()) return;
    Writer& w = wit->second;
    std::erase(w.sessions, s);
    std::erase_if(w.asked, [s](const auto& kv) { return kv.second == s; });
    session_owner.erase(s);
  }

  // Brings a writer up to what its peers have: one upgrade at a time, then
  // every missing block, each asked of one peer that has it.
  void fetch(const Key32& key) {
    Writer& w = writers[key];
    if (!w.core->refresh().ok()) return;
    bool upgrading = false;
    for (CoreSession* s : w.sessions) upgrading |= s->upgrading();
    if (!upgrading) {
      for (CoreSession* s : w.sessions) {
        if (s->remote_length() <= w.core->length()) continue;
        if (Status st = s->request_upgrade(); !st.ok()) notice("upgrade of " + w.core->label() + ": " + st.message());
        break;
      }
    }
    for (uint64_t i = w.contiguous; i < w.core->length() && w.asked.size() < kMaxAskedPerWriter; i++) {
      if (w.asked.count(i)) continue;
      auto held = w.core->has(i);
      if (held.ok() && *held) continue;
      for (CoreSession* s : w.sessions) {
        if (!s->remote_has(i)) continue;
        s->want(i);
        w.asked[i] = s;
        break;
      }
    }
    for (CoreSession* s : w.sessions)
      if (Status st = s->pump_requests(); !st.ok()) notice("requests for " + w.core->label() + ": " + st.message());
    flush_all();
  }

  // The writer grew here (downloaded, or appended by us or another
  // process): tell every peer what we now hold.
  Status advance(const Key32& key, Writer& w) {
    P2P_TRY(w.core->refresh());
    uint64_t before = w.contiguous;
    while (w.contiguous < w.core->length()) {
      auto held = w.core->has(w.contiguous);
      if (!held.ok()) return held.status();
      if (!*held) break;
      w.contiguous++;
    }
    for (CoreSession* s : w.sessions) {
      P2P_TRY(s->notify_length());
      if (w.contiguous > before) s->announce_range(before, w.contiguous - before);
    }
    (void)key;
    return {};
  }

  bool advance_all() {
    bool grew = false;
    for (auto& [key, w] : writers) {
      uint64_t before = w.contiguous;
      if (Status s = advance(key, w); !s.ok()) notice("writer " + w.core->label() + ": " + s.message());
      grew |= w.contiguous > before;
    }
    flush_all();
    return grew;
  }

  void flush_all() {
    for (Peer& p : peers)
      if (!p.connection->closed()) p.connection->flush_output();
  }

  // Blocks arrive in bursts: peers hear of them and the owner is told once.
  void schedule_flush() {
    if (flush_timer) return;
    std::weak_ptr<bool> live = alive;
    flush_timer = clock().start_timer(0, [this, live] {
      if (live.expired()) return;
      flush_timer = 0;
      advance_all();
      for (auto& [key, w] : writers) fetch(key);
      if (hooks.on_data) hooks.on_data();
    });
  }

  void tick() {
    for (Peer* d : dead) peers.remove_if([d](const Peer& p) { return &p == d; });
    dead.clear();
    if (advance_all() && hooks.on_data) hooks.on_data();
    for (auto& [key, w] : writers) fetch(key);
    std::weak_ptr<bool> live = alive;
    tick_timer = clock().start_timer(kTickMs, [this, live] {
      if (!live.expired()) tick();
    });
  }
};

Status RoomSync::Impl::Channel::open() {
  const HandshakeResult& hs = peer_.connection->handshake();
  Hash32 cap = room_capability(peer_.connection->initiator(), room_.room_key, hs.hash);
  Signature64 sig = crypto::sign(presence_signable(cap, room_.identity.public_key), room_.identity);
  enc::Encoder e;
  e.fixed(cap);
  e.fixed(room_.identity.public_key);
  e.fixed(sig);
  auto id = peer_.connection->mux().open(kRoomProtocol, room_.topic, e.bytes(), this);
  if (!id.ok()) return id.status();
  channel_ = *id;
  return {};
}

Status RoomSync::Impl::Channel::on_open(uint64_t channel, ByteView remote_handshake) {
  channel_ = channel;
  enc::Decoder d(remote_handshake);
  auto cap = d.fixed_array<32>();
  auto identity = d.fixed_array<32>();
  auto sig = d.fixed_array<64>();
  P2P_TRY(d.finish("room channel handshake"));
  const HandshakeResult& hs = peer_.connection->handshake();
  if (cap != room_capability(!peer_.connection->initiator(), room_.room_key, hs.hash))
    return error(ErrorCode::verification, "the peer does not know the room key");
  if (!crypto::verify(presence_signable(cap, identity), sig, identity))
    return error(ErrorCode::verification, "the peer's presence signature is invalid");
  opened_ = true;
  room_.proven(peer_, identity);
  std::vector<Key32> all;
  for (const auto& [key, w] : room_.writers) all.push_back(key);
  send_writers(all);
  return {};
}

void RoomSync::Impl::Channel::send_writers(const std::vector<Key32>& writers) {
  if (!opened_) return;  // the list goes out once the channel opens
  for (size_t i = 0; i < writers.size(); i += kWritersPerMessage) {
    size_t n = std::min(kWritersPerMessage, writers.size() - i);
    enc::Encoder e;
    e.uint(n);
    for (size_t j = 0; j < n; j++) e.fixed(writers[i + j]);
    peer_.connection->mux().send(channel_, kWritersMessage, e.bytes());
  }
}

Status RoomSync::Impl::Channel::on_message(uint64_t type, ByteView payload) {
  if (type != kWritersMessage) return {};  // newer message types are ignored
  enc::Decoder d(payload);
  uint64_t n = d.array_length(kWritersPerMessage);
  std::vector<Key32> keys;
  for (uint64_t i = 0; i < n && d.ok(); i++) keys.push_back(d.fixed_array<32>());
  P2P_TRY(d.finish("room writers message"));
  for (const Key32& k : keys) {
    if (room_.writers.count(k)) continue;
    if (room_.writers.size() >= kMaxWriters) break;
    if (Status s = room_.add_writer(k); !s.ok()) return s;
    if (room_.hooks.on_writer) room_.hooks.on_writer(k);
  }
  return {};
}

RoomSync::RoomSync(dht::Runtime& runtime, storage::Store& store, const Key32& room_key,
                   const crypto::KeyPair& identity, Hooks hooks)
    : impl_(std::make_unique<Impl>(runtime, store, room_key, identity, std::move(hooks))) {}

RoomSync::~RoomSync() {
  Impl& m = *impl_;
  m.clock().cancel_timer(m.tick_timer);
  m.clock().cancel_timer(m.flush_timer);
  for (Impl::Peer& p : m.peers) {
    p.connection->set_hooks({});
    p.connection->close();
  }
  m.peers.clear();
  m.swarm.reset();
}

void RoomSync::join(bool server) {
  Impl& m = *impl_;
  m.swarm = std::make_unique<dht::Swarm>(m.runtime.connector(), m.runtime.dht(), m.connection_keys);
  m.swarm->set_on_connection([&m](dht::Established&& e) { m.accept(std::move(e)); });
  m.swarm->set_on_notice([&m](const std::string& s) { m.notice(s); });
  m.swarm->join(m.topic, server, true);
  m.tick();
}

Status RoomSync::add_writer(const Key32& writer) { return impl_->add_writer(writer); }

void RoomSync::notify() {
  if (impl_->advance_all() && impl_->hooks.on_data) impl_->hooks.on_data();
}

size_t RoomSync::peers() const {
  size_t n = 0;
  for (const Impl::Peer& p : impl_->peers) n += p.identity.has_value();
  return n;
}

std::vector<RoomPeer> RoomSync::online() const {
  std::vector<RoomPeer> out;
  std::set<Key32> seen;
  for (const Impl::Peer& p : impl_->peers)
    if (p.identity && seen.insert(*p.identity).second) out.push_back(impl_->room_peer(p));
  return out;
}

bool RoomSync::peer_holds(const Key32& writer, uint64_t length) const {
  auto it = impl_->writers.find(writer);
  if (it == impl_->writers.end()) return false;
  if (length == 0) return true;
  for (CoreSession* s : it->second.sessions) {
    const Impl::Peer* p = impl_->owner_of(s);
    bool elsewhere = p && p->identity && *p->identity != impl_->identity.public_key;
    if (elsewhere && s->remote_has(length - 1) && s->remote_length() >= length) return true;
  }
  return false;
}

}  // namespace p2p::net
