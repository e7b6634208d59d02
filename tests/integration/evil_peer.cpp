// A misbehaving replication peer for the robustness tests. Modes:
//   evil_peer serve HOME CORE_NAME MODE       serve CORE_NAME's core (from the store at HOME)
//       with tampered replies; MODE: flip-block | bad-signature | bad-node.
//       Prints "port N" once listening; serves until killed.
//   evil_peer attack ADDRESS KEY MODE         connect to a seeder and misbehave;
//       MODE: bad-capability | garbage-frames | invalid-requests | huge-request.
//       Exits 0 when the seeder disconnected us (as it should), 1 otherwise.
#include <cstdio>
#include <cstring>
#include <iostream>

#include "core/home.h"
#include "core/keys.h"
#include "net/connection.h"
#include "net/session.h"
#include "net/wire.h"

using namespace p2p;

namespace {

// Serves one core, tampering every data reply as `mode` says.
class EvilSession : public net::ChannelHandler {
 public:
  EvilSession(net::Mux& mux, Core& core, const net::HandshakeResult& hs, bool initiator, std::string mode)
      : mux_(mux), core_(core), hs_(hs), initiator_(initiator), mode_(std::move(mode)) {}
  void open() {
    net::wire::Handshake h{true, net::replication_capability(initiator_, core_.key(), hs_.hash)};
    (void)mux_.open(net::kHypercoreProtocol, core_.discovery_key(), net::wire::encode(h), this);
  }
  Status on_open(uint64_t channel, ByteView) override {
    channel_ = channel;
    net::wire::Sync s;
    s.has_manifest = true;
    s.length = core_.length();
    mux_.send(channel_, net::wire::kSync, net::wire::encode(s));
    mux_.send(channel_, net::wire::kRange, net::wire::encode(net::wire::Range{false, 0, core_.length()}));
    return {};
  }
  Status on_message(uint64_t type, ByteView payload) override {
    if (type != net::wire::kRequest) return {};
    auto req = net::wire::decode_request(payload);
    if (!req.ok()) return req.status();
    auto proof = core_.proof({req->block, req->hash, req->seek, req->upgrade});
    if (!proof.ok()) return {};
    net::wire::Data d;
    d.request = req->id;
    d.proof = *proof;
    if (req->manifest) d.manifest = manifest::encode(core_.manifest());
    if (mode_ == "flip-block" && d.proof.block && !d.proof.block->value.empty()) d.proof.block->value[0] ^= 1;
    if (mode_ == "bad-signature" && d.proof.upgrade) d.proof.upgrade->signature[10] ^= 1;
    if (mode_ == "bad-node") {
      if (d.proof.block && !d.proof.block->nodes.empty()) d.proof.block->nodes[0].hash[0] ^= 1;
      else if (d.proof.upgrade && !d.proof.upgrade->nodes.empty()) d.proof.upgrade->nodes[0].hash[0] ^= 1;
    }
    mux_.send(channel_, net::wire::kData, net::wire::encode(d));
    return {};
  }
  void on_close() override {}

 private:
  net::Mux& mux_;
  Core& core_;
  net::HandshakeResult hs_;
  bool initiator_;
  std::string mode_;
  uint64_t channel_ = 0;
};

int serve(const std::string& home_path, const std::string& name, const std::string& mode) {
  auto home = Home::open({home_path, std::nullopt});
  if (!home.ok()) return std::cerr << home.status().message() << "\n", 1;
  auto core = (*home)->reader().open_name(name);
  if (!core.ok()) return std::cerr << core.status().message() << "\n", 1;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t server;
  uv_tcp_init(&loop, &server);
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&server, reinterpret_cast<sockaddr*>(&addr), 0);
  struct State {
    uv_loop_t* loop;
    Core* core;
    std::string mode;
    std::vector<std::unique_ptr<net::Connection>> conns;
    crypto::KeyPair kp = crypto::random_key_pair();
  } state{&loop, core->get(), mode, {}};
  server.data = &state;
  uv_listen(reinterpret_cast<uv_stream_t*>(&server), 16, [](uv_stream_t* s, int) {
    auto* st = static_cast<State*>(s->data);
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(st->loop, tcp);
    if (uv_accept(s, reinterpret_cast<uv_stream_t*>(tcp)) != 0) return;
    st->conns.push_back(std::make_unique<net::Connection>(st->loop, tcp, false, st->kp));
    net::Connection* c = st->conns.back().get();
    c->mux().on_pair([st, c](const std::string&, ByteView) {
      auto session = std::make_unique<EvilSession>(c->mux(), *st->core, c->handshake(), c->initiator(), st->mode);
      session->open();
      c->sessions().push_back(std::move(session));
    });
    (void)c->start();
  });
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&bound), &len);
  std::cout << "port " << ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port) << std::endl;
  uv_run(&loop, UV_RUN_DEFAULT);
  return 0;
}

// Opens a channel for `key` and breaks the protocol on it.
class Attacker : public net::ChannelHandler {
 public:
  Attacker(net::Mux& mux, std::string mode) : mux_(mux), mode_(std::move(mode)) {}
  Status on_open(uint64_t channel, ByteView) override {
    if (mode_ == "invalid-requests") {
      for (int i = 0; i < 200; i++) {  // upgrades past the end: invalid every time
        net::wire::Request r;
        r.id = static_cast<uint64_t>(i + 1);
        r.upgrade = merkle::UpgradeRequest{0, 0};
        r.hash = merkle::IndexRequest{1u << 30, 60};
        mux_.send(channel, net::wire::kRequest, net::wire::encode(r));
      }
    } else if (mode_ == "huge-request") {
      Bytes payload = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};  // truncated u64 uint
      mux_.send(channel, net::wire::kRequest, payload);
    } else if (mode_ == "garbage-frames") {
      for (int i = 0; i < 50; i++) {
        Bytes junk(1 + i * 37);
        crypto::random_bytes(junk.data(), junk.size());
        mux_.send(channel, static_cast<uint64_t>(i % 12), junk);
      }
    }
    return {};
  }
  Status on_message(uint64_t, ByteView) override { return {}; }
  void on_close() override {}

 private:
  net::Mux& mux_;
  std::string mode_;
};

int attack(const std::string& address, const std::string& key_text, const std::string& mode) {
  auto key = keys::parse(key_text);
  if (!key) return std::cerr << "bad key\n", 1;
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto conn = net::connect(&loop, address, crypto::random_key_pair(), 5000);
  if (!conn.ok()) return std::cerr << conn.status().message() << "\n", 1;
  bool closed = false;
  (*conn)->set_hooks({nullptr, [&](const Status&) { closed = true; }});
  Attacker attacker((*conn)->mux(), mode);
  Hash32 capability = net::replication_capability(true, *key, (*conn)->handshake().hash);
  if (mode == "bad-capability") capability[0] ^= 1;
  net::wire::Handshake hs{true, capability};
  (void)(*conn)->mux().open(net::kHypercoreProtocol, crypto::discovery_key(*key), net::wire::encode(hs), &attacker);
  (*conn)->flush_output();
  net::run_until(&loop, [&] { return closed; }, 10000);
  std::cout << (closed ? "disconnected" : "still connected") << std::endl;
  conn->reset();
  uv_run(&loop, UV_RUN_NOWAIT);  // lets the handles finish closing
  uv_loop_close(&loop);
  return closed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  crypto::init();
  if (argc == 5 && std::strcmp(argv[1], "serve") == 0) return serve(argv[2], argv[3], argv[4]);
  if (argc == 5 && std::strcmp(argv[1], "attack") == 0) return attack(argv[2], argv[3], argv[4]);
  std::cerr << "usage: evil_peer serve HOME CORE MODE | evil_peer attack ADDRESS KEY MODE\n";
  return 2;
}
