// p2p swarm join: peers on a topic, found through the DHT and connected by
// public key; --pipe joins stdin and stdout to the first peer.
#include <uv.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "net/swarm.h"
#include "net/udx_transport.h"
#include "tools/dht_client.h"

namespace p2p::cli {
namespace {

constexpr size_t kChunk = 64 * 1024;             // one message per stdin read
constexpr size_t kMaxQueued = 4 * 1024 * 1024;   // stdin read ahead of the network at most this

struct SwarmArgs {
  std::string topic;
  bool server = false, client = false, pipe = false;
  double timeout_s = 30;
};

struct Peer {
  Key32 key{};
  dht::Address address{};
  bool initiator = false, relayed = false;
  std::unique_ptr<net::MessageChannel> channel;
};

nlohmann::json peer_json(const char* event, const Peer& p) {
  return {{"event", event},
          {"publicKey", to_hex(p.key)},
          {"address", p.address.to_string()},
          {"how", p.relayed ? "relayed" : "direct"},
          {"initiator", p.initiator}};
}

// stdin on a thread (it may be a file, a pipe or a terminal), handed to the
// loop through a uv_async; reading waits while too much is unsent.
class StdinReader {
 public:
  StdinReader(uv_loop_t* loop, std::function<void(Bytes)> on_chunk, std::function<void()> on_eof)
      : on_chunk_(std::move(on_chunk)), on_eof_(std::move(on_eof)) {
    uv_async_init(loop, &async_, [](uv_async_t* a) { static_cast<StdinReader*>(a->data)->deliver(); });
    async_.data = this;
    thread_ = std::thread([this] { run(); });
  }
  ~StdinReader() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.detach();  // it may sit in read(); the process is ending
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
  // The network took what was given: read on.
  void sent(size_t unsent_bytes) {
    {
      std::lock_guard lock(mutex_);
      unsent_ = unsent_bytes;
    }
    cv_.notify_all();
  }

 private:
  void run() {
    std::vector<uint8_t> buf(kChunk);
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || queued_ + unsent_ < kMaxQueued; });
        if (stopping_) return;
      }
      ssize_t n = ::read(0, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mutex_);
      if (n <= 0) {
        eof_ = true;
      } else {
        chunks_.emplace_back(buf.begin(), buf.begin() + n);
        queued_ += static_cast<size_t>(n);
      }
      uv_async_send(&async_);
      if (n <= 0) return;
    }
  }
  void deliver() {
    std::deque<Bytes> chunks;
    bool eof;
    {
      std::lock_guard lock(mutex_);
      chunks.swap(chunks_);
      queued_ = 0;
      eof = eof_ && !eof_delivered_;
      if (eof) eof_delivered_ = true;
    }
    cv_.notify_all();
    for (auto& c : chunks) on_chunk_(std::move(c));
    if (eof) on_eof_();
  }

  uv_async_t async_{};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Bytes> chunks_;
  size_t queued_ = 0, unsent_ = 0;
  bool eof_ = false, eof_delivered_ = false, stopping_ = false;
  std::function<void(Bytes)> on_chunk_;
  std::function<void()> on_eof_;
};

int join(Context& ctx, const SwarmArgs& a) {
  bool server = a.server || !a.client, client = a.client || !a.server;
  auto kp = identity_key_pair(ctx);
  if (!kp.ok()) return ctx.fail(kp.status());
  auto rt = open_dht(ctx, true);
  if (!rt.ok()) return ctx.fail(rt.status());
  dht::Runtime& r = **rt;
  if (Status s = join_dht(r, a.timeout_s); !s.ok()) return ctx.fail(s);
  Hash32 topic = dht::topic_from_text(a.topic);
  ctx.info("joined " + to_hex(topic).substr(0, 16) + "... as " + to_hex(kp->public_key) +
           (server && client ? " (server and client)" : server ? " (server)" : " (client)"));

  dht::Swarm swarm(r.connector(), r.dht(), *kp);
  std::map<Key32, Peer> peers;
  Peer* piped = nullptr;
  bool stdin_done = false, peer_done = false, finished = false;
  Status failure;
  std::unique_ptr<StdinReader> reader;

  auto report = [&](const char* event, const Peer& p, const std::string& why = "") {
    if (ctx.json) {
      auto j = peer_json(event, p);
      if (!why.empty()) j["reason"] = why;
      // With --pipe stdout carries the peer's bytes: events go to stderr.
      (a.pipe ? std::cerr : std::cout) << j.dump() << std::endl;
    } else if (!a.pipe) {
      std::cout << event << " " << to_hex(p.key) << " " << p.address.to_string() << " "
                << (p.relayed ? "relayed" : "direct") << (p.initiator ? " (dialled)" : " (accepted)");
      if (!why.empty()) std::cout << ": " << why;
      std::cout << std::endl;
    } else {
      ctx.info(std::string(event) + " " + to_hex(p.key).substr(0, 16) + " at " + p.address.to_string());
    }
  };

  swarm.set_on_notice([&](const std::string& m) { ctx.info(m); });
  swarm.set_on_replace([&](const Key32& key) {
    auto it = peers.find(key);
    if (it == peers.end() || &it->second == piped) return;
    report("disconnected", it->second, "replaced by a new connection");
    peers.erase(it);
  });
  // stdin waits while too much is unsent; tell it as the network drains.
  dht::Clock& clock = r.node().clock();
  std::function<void()> watch_drain = [&] {
    if (reader && piped && piped->channel) reader->sent(piped->channel->pending());
    clock.start_timer(10, watch_drain);
  };
  swarm.set_on_connection([&](dht::Established&& e) {
    if (a.pipe && piped) {  // one peer only: the rest are refused
      swarm.disconnected(e.handshake.remote_public_key);
      return;
    }
    Key32 key = e.handshake.remote_public_key;
    Peer& p = peers[key];
    p.key = key;
    p.address = e.remote;
    p.initiator = e.initiator;
    p.relayed = e.relayed;
    auto stream = std::make_unique<net::SecretStream>(e.initiator, e.handshake);
    p.channel = std::make_unique<net::MessageChannel>(net::udx_transport(std::move(e.stream), r.node().clock(), std::move(e.early_data)),
                                                      std::move(stream));
    report("connected", p);
    bool is_pipe = a.pipe && !piped;
    if (is_pipe) piped = &p;
    Status s = p.channel->start({
        .on_message =
            [&, is_pipe](ByteView m) {
              if (!is_pipe) return;
              std::cout.write(reinterpret_cast<const char*>(m.data()), static_cast<std::streamsize>(m.size()));
            },
        .on_end =
            [&, is_pipe] {
              if (!is_pipe) return;
              std::cout.flush();
              peer_done = true;
            },
        .on_close =
            [&, key, is_pipe](const Status& why) {
              Peer& gone = peers[key];
              report("disconnected", gone, why.ok() ? "" : why.message());
              swarm.disconnected(key);
              if (is_pipe) {
                std::cout.flush();
                if (!why.ok()) failure = why;
                finished = true;
              }
            },
    });
    if (!s.ok()) ctx.info("connection to " + to_hex(key).substr(0, 16) + " failed: " + s.message());
    if (is_pipe) {
      reader = std::make_unique<StdinReader>(
          r.loop(),
          [&](Bytes chunk) {
            if (!piped || !piped->channel) return;
            Status st = piped->channel->send(chunk);
            if (!st.ok()) failure = st;
            reader->sent(piped->channel->pending());
          },
          [&] {
            stdin_done = true;
            if (piped && piped->channel) piped->channel->end();
          });
    }
  });
  swarm.join(topic, server, client);
  if (a.pipe) watch_drain();

  auto stop = r.run_until([&] { return finished; }, 0);
  reader.reset();
  std::cout.flush();
  if (stop == dht::Runtime::Stop::signal) return a.pipe ? 130 : kOk;
  if (!failure.ok()) return ctx.fail(failure);
  return kOk;
}

}  // namespace

void add_swarm_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<SwarmArgs>();
  auto* swarm = app.add_subcommand("swarm", "Peers by topic: find them through the DHT and connect by public key");
  swarm->require_subcommand(1);
  auto* join_cmd = swarm->add_subcommand("join", "Join a topic and report peers as they connect and leave, until interrupted");
  join_cmd->add_option("TOPIC", a->topic, "64 hex characters, or any text (hashed with BLAKE2b-256)")->required();
  join_cmd->add_flag("--server", a->server, "Only accept connections (announce the topic)");
  join_cmd->add_flag("--client", a->client, "Only dial the peers found (look the topic up)");
  join_cmd->add_flag("--pipe", a->pipe,
                     "Join stdin and stdout to the first peer: bytes both ways; exits when both sides have ended");
  join_cmd->add_option("--timeout", a->timeout_s, "Give up joining the DHT after this many seconds")->capture_default_str();
  join_cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return join(ctx, *a); }; });
}

}  // namespace p2p::cli
