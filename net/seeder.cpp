#include "net/seeder.h"

#include <uv.h>

#include <algorithm>
#include <csignal>
#include <list>
#include <map>
#include <set>

#include "core/corestore.h"
#include "net/connection.h"
#include "net/dht_runtime.h"
#include "net/dht_uv.h"
#include "net/swarm.h"
#include "net/udx_transport.h"
#include "net/bee_extension.h"
#include "net/session.h"

namespace p2p::net {

namespace {

constexpr int kBacklog = 128;
// Connections beyond this are refused at once (each costs buffers).
constexpr size_t kMaxConnections = 1024;
constexpr uint64_t kRescanMs = 5000;  // new cores are announced within this

}  // namespace

struct Seeder::Impl {
  storage::Store& store;
  crypto::KeyPair key_pair;
  SeedOptions options;
  Report report;
  uv_loop_t loop{};
  uv_tcp_t server{};
  uv_timer_t poll{};
  uv_signal_t sigint{}, sigterm{};
  std::string address;
  std::map<Hash32, std::unique_ptr<Core>> cores;  // by discovery key
  std::list<std::unique_ptr<Connection>> connections;
  std::unique_ptr<dht::Runtime> dht;
  std::unique_ptr<dht::Swarm> swarm;
  std::set<Hash32> announced;  // discovery keys joined as topics
  std::vector<Connection*> dead;
  bool stopping = false;
  uint64_t last_scan_ms = 0;

  Impl(storage::Store& s, const crypto::KeyPair& kp, SeedOptions o, Report r)
      : store(s), key_pair(kp), options(std::move(o)), report(std::move(r)) {
    uv_loop_init(&loop);
  }

  Status load_cores() {
    std::vector<Key32> keys = options.cores;
    if (keys.empty()) {
      auto all = Corestore(store, std::nullopt).list();
      if (!all.ok()) return all.status();
      for (const auto& info : *all) keys.push_back(info.key);
    }
    for (const Key32& key : keys) {
      Hash32 dk = crypto::discovery_key(key);
      if (cores.count(dk)) continue;
      auto core = Core::open_by_key(store, key);
      if (!core.ok()) return core.status();
      cores[dk] = std::move(*core);
    }
    return {};
  }

  bool allowed(const Key32& remote) const {
    return options.allow.empty() || std::find(options.allow.begin(), options.allow.end(), remote) != options.allow.end();
  }

  Core* find(ByteView discovery_key) {
    if (discovery_key.size() != 32) return nullptr;
    Hash32 dk;
    std::copy(discovery_key.begin(), discovery_key.end(), dk.begin());
    auto it = cores.find(dk);
    // Serving everything: a core made since start? (Rescanning the store is
    // not free, so unknown keys trigger it at most once a second.)
    if (it == cores.end() && options.cores.empty() && uv_now(&loop) - last_scan_ms >= 1000) {
      last_scan_ms = uv_now(&loop);
      if (load_cores().ok()) it = cores.find(dk);
    }
    return it == cores.end() ? nullptr : it->second.get();
  }

  SeedEvent event_for(SeedEvent::Kind kind, Connection& c) {
    SeedEvent e;
    e.kind = kind;
    e.address = c.remote_address();
    if (c.established() || kind == SeedEvent::disconnected) e.remote_key = c.handshake().remote_public_key;
    e.bytes_in = c.bytes_in();
    e.bytes_out = c.bytes_out();
    for (auto& s : c.sessions()) {
      const auto& st = static_cast<CoreSession&>(*s).stats();
      e.blocks_sent += st.blocks_sent;
      e.bytes_sent += st.bytes_sent;
    }
    return e;
  }

  void accept() {
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(&loop, tcp);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&server), reinterpret_cast<uv_stream_t*>(tcp)) != 0 ||
        connections.size() >= kMaxConnections || stopping) {
      uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
      return;
    }
    adopt(std::make_unique<Connection>(&loop, tcp, false, key_pair));
  }

  // A connection made through the DHT: a UDX stream and the handshake's keys.
  void accept_dht(dht::Established&& e) {
    Key32 remote = e.handshake.remote_public_key;
    if (connections.size() >= kMaxConnections || stopping) {
      swarm->disconnected(remote);
      return;
    }
    auto stream = std::make_unique<SecretStream>(e.initiator, e.handshake);
    adopt(std::make_unique<Connection>(&loop, udx_transport(std::move(e.stream), dht->node().clock(), std::move(e.early_data)), std::move(stream)),
          remote);
  }

  Status join_dht() {
    dht::RuntimeOptions o;
    o.loop = &loop;
    o.adaptive = true;
    o.bootstrap = options.bootstrap;
    o.nodes_file = options.dht_nodes_file;
    auto rt = dht::Runtime::open(std::move(o));
    if (!rt.ok()) return rt.status();
    dht = std::move(*rt);
    dht->node().bootstrap(nullptr);
    dht::SwarmOptions so;
    so.max_peers = kMaxConnections;
    swarm = std::make_unique<dht::Swarm>(dht->connector(), dht->dht(), key_pair, so);
    swarm->set_on_connection([this](dht::Established&& e) { accept_dht(std::move(e)); });
    announce_cores();
    return {};
  }

  // Each core's discovery key is a topic, as corestore peers join it.
  void announce_cores() {
    if (!swarm) return;
    for (const auto& [dk, core] : cores) {
      if (announced.insert(dk).second) swarm->join(dk, true, false);
    }
  }

  void adopt(std::unique_ptr<Connection> conn, std::optional<Key32> swarm_peer = std::nullopt) {
    connections.push_back(std::move(conn));
    Connection* c = connections.back().get();
    bool* established = new bool(false);
    c->mux().on_pair([this, c](const std::string& protocol, ByteView id) {
      if (protocol != kHypercoreProtocol && protocol != "hypercore") return;
      if (!allowed(c->handshake().remote_public_key)) return;  // (closed once the handshake is reported)
      Core* core = find(id);
      if (!core) return;
      auto session = std::make_unique<CoreSession>(c->mux(), *core, c->handshake(), c->initiator());
      CoreSession* s = session.get();
      use_bee_extension(*s);
      c->sessions().push_back(std::move(session));
      if (Status st = s->open(); !st.ok()) c->close(st);
    });
    c->set_hooks({[this, c, established] {
                    *established = true;
                    if (!allowed(c->handshake().remote_public_key)) {
                      SeedEvent e = event_for(SeedEvent::refused, *c);
                      e.reason = "its key is not in the --allow list";
                      report(e);
                      c->close(error(ErrorCode::permission, e.reason));
                      return;
                    }
                    report(event_for(SeedEvent::connected, *c));
                  },
                  [this, c, established, swarm_peer](const Status& why) {
                    bool was = *established;
                    if (swarm_peer && swarm) swarm->disconnected(*swarm_peer);
                    delete established;
                    dead.push_back(c);
                    if (!was && why.ok()) return;  // a port probe: not worth a line
                    SeedEvent e = event_for(SeedEvent::disconnected, *c);
                    if (!why.ok()) e.reason = why.message();
                    report(e);
                  }});
    if (Status s = c->start(); !s.ok()) c->close(s);
  }

  // Other processes may have appended: every session compares its core's
  // length with what it last told its peer (a refresh is one header read).
  void tick() {
    // Serving every core: ones made since start are announced too (a rescan
    // is a store listing, so at most every few seconds).
    if (swarm && options.cores.empty() && uv_now(&loop) - last_scan_ms >= kRescanMs) {
      last_scan_ms = uv_now(&loop);
      if (load_cores().ok()) announce_cores();
    }
    for (Connection* d : dead)
      connections.remove_if([d](const std::unique_ptr<Connection>& c) { return c.get() == d; });
    dead.clear();
    for (auto& c : connections) {
      if (c->closed()) continue;
      for (auto& h : c->sessions()) {
        if (Status st = static_cast<CoreSession&>(*h).notify_length(); !st.ok()) {
          c->close(st);
          break;
        }
      }
      c->flush_output();
    }
  }
};

Seeder::Seeder(storage::Store& store, const crypto::KeyPair& key_pair, SeedOptions options, Report report)
    : impl_(std::make_unique<Impl>(store, key_pair, std::move(options), std::move(report))) {}

Seeder::~Seeder() {
  Impl& m = *impl_;
  m.connections.clear();
  m.swarm.reset();
  m.dht.reset();
  auto close_if = [](uv_handle_t* h) {
    if (h->loop && !uv_is_closing(h)) uv_close(h, nullptr);
  };
  close_if(reinterpret_cast<uv_handle_t*>(&m.server));
  close_if(reinterpret_cast<uv_handle_t*>(&m.poll));
  close_if(reinterpret_cast<uv_handle_t*>(&m.sigint));
  close_if(reinterpret_cast<uv_handle_t*>(&m.sigterm));
  dht::close_loop(&m.loop);
}

const std::string& Seeder::address() const { return impl_->address; }

Status Seeder::listen() {
  Impl& m = *impl_;
  P2P_TRY(m.load_cores());
  if (m.options.dht) {
    P2P_TRY(m.join_dht());
    SeedEvent e;
    e.kind = SeedEvent::listening;
    e.address = "dht";
    e.remote_key = m.key_pair.public_key;
    m.report(e);
  }
  if (m.options.listen.empty()) return {};
  auto addr = parse_address(m.options.listen);
  if (!addr.ok()) return addr.status();
  uv_tcp_init(&m.loop, &m.server);
  m.server.data = &m;
  int rc = uv_tcp_bind(&m.server, reinterpret_cast<const sockaddr*>(&*addr), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&m.server), kBacklog, [](uv_stream_t* s, int status) {
      if (status == 0) static_cast<Impl*>(s->data)->accept();
    });
  if (rc != 0)
    return error(ErrorCode::io, "cannot listen on " + m.options.listen + ": " + uv_strerror(rc) +
                                    (rc == UV_EADDRINUSE ? " (choose another port, or :0 for any free one)" : ""));
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&m.server, reinterpret_cast<sockaddr*>(&bound), &len);
  m.address = format_address(bound);
  SeedEvent e;
  e.kind = SeedEvent::listening;
  e.address = m.address;
  m.report(e);
  return {};
}

void Seeder::stop() {
  impl_->stopping = true;
  uv_stop(&impl_->loop);
}

Status Seeder::run() {
  Impl& m = *impl_;
  uv_timer_init(&m.loop, &m.poll);
  m.poll.data = &m;
  uv_timer_start(&m.poll, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->tick(); }, m.options.poll_ms,
                 m.options.poll_ms);
  uv_signal_init(&m.loop, &m.sigint);
  uv_signal_init(&m.loop, &m.sigterm);
  m.sigint.data = m.sigterm.data = this;
  auto on_signal = [](uv_signal_t* s, int) { static_cast<Seeder*>(s->data)->stop(); };
  uv_signal_start(&m.sigint, on_signal, SIGINT);
  uv_signal_start(&m.sigterm, on_signal, SIGTERM);
  while (!m.stopping) uv_run(&m.loop, UV_RUN_DEFAULT);
  for (auto& c : m.connections) c->close();
  // Connections over the DHT hold its streams: they go before it.
  m.dead.clear();
  m.connections.clear();
  m.swarm.reset();
  m.dht.reset();
  uv_run(&m.loop, UV_RUN_NOWAIT);
  return {};
}

}  // namespace p2p::net
