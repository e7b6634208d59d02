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
constexpr uint64_t kSilentMs = 5000;               // a piped connection without the peer's header is dropped

struct SwarmArgs {
  std::string topic;
  bool server = false, client = false, pipe = false;
  double timeout_s = 30;
  std::string relay_through;
};

struct Peer {
  Key32 key{};
  dht::Address address{};
  bool initiator = false;
  dht::How how = dht::How::direct;
  std::unique_ptr<net::MessageChannel> channel;
};

nlohmann::json peer_json(const char* event, const Peer& p) {
  return {{"event", event},
          {"publicKey", to_hex(p.key)},
          {"address", p.address.to_string()},
          {"how", dht::to_string(p.how)},
          {"initiator", p.initiator}};
}

// stdin on a thread (it may be a file, a pipe or a terminal), handed to the
// loop through a uv_async; reading waits while too much is unsent. What the
// thread touches is shared, so it may outlive the reader (blocked in read()).
class StdinReader {
 public:
  StdinReader(uv_loop_t* loop, std::function<void(Bytes)> on_chunk, std::function<void()> on_eof)
      : shared_(std::make_shared<Shared>()), on_chunk_(std::move(on_chunk)), on_eof_(std::move(on_eof)) {
    async_ = new uv_async_t;
    uv_async_init(loop, async_, [](uv_async_t* a) {
      if (a->data) static_cast<StdinReader*>(a->data)->deliver();
    });
    async_->data = this;
    shared_->async = async_;
    std::thread([shared = shared_] { run(shared); }).detach();
  }
  ~StdinReader() {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->stopping = true;
      shared_->async = nullptr;  // the thread must not signal a closed handle
    }
    shared_->cv.notify_all();
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  }
  // The network took what was given: read on.
  void sent(size_t unsent_bytes) {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->unsent = unsent_bytes;
    }
    shared_->cv.notify_all();
  }

 private:
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Bytes> chunks;
    size_t queued = 0, unsent = 0;
    bool eof = false, eof_delivered = false, stopping = false;
    uv_async_t* async = nullptr;
  };

  static void run(std::shared_ptr<Shared> s) {
    std::vector<uint8_t> buf(kChunk);
    for (;;) {
      {
        std::unique_lock lock(s->mutex);
        s->cv.wait(lock, [&] { return s->stopping || s->queued + s->unsent < kMaxQueued; });
        if (s->stopping) return;
      }
      ssize_t n = ::read(0, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(s->mutex);
      if (s->stopping) return;
      if (n <= 0) {
        s->eof = true;
      } else {
        s->chunks.emplace_back(buf.begin(), buf.begin() + n);
        s->queued += static_cast<size_t>(n);
      }
      if (s->async) uv_async_send(s->async);
      if (n <= 0) return;
    }
  }
  void deliver() {
    std::deque<Bytes> chunks;
    bool eof;
    {
      std::lock_guard lock(shared_->mutex);
      chunks.swap(shared_->chunks);
      shared_->queued = 0;
      eof = shared_->eof && !shared_->eof_delivered;
      if (eof) shared_->eof_delivered = true;
    }
    shared_->cv.notify_all();
    for (auto& c : chunks) on_chunk_(std::move(c));
    if (eof) on_eof_();
  }

  std::shared_ptr<Shared> shared_;
  uv_async_t* async_ = nullptr;
  std::function<void(Bytes)> on_chunk_;
  std::function<void()> on_eof_;
};

int join(Context& ctx, const SwarmArgs& a) {
  bool server = a.server || !a.client, client = a.client || !a.server;
  auto kp = identity_key_pair(ctx);
  if (!kp.ok()) return ctx.fail(kp.status());
  std::optional<Key32> relay;
  if (!a.relay_through.empty()) {
    relay = key_from_hex(a.relay_through);
    if (!relay) return ctx.fail(invalid_argument("--relay-through takes a relay's public key: 64 hex characters"));
  }
  auto rt = open_dht(ctx, true);
  if (!rt.ok()) return ctx.fail(rt.status());
  dht::Runtime& r = **rt;
  r.set_relay_through(relay);
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
                << dht::to_string(p.how) << (p.initiator ? " (dialled)" : " (accepted)");
      if (!why.empty()) std::cout << ": " << why;
      std::cout << std::endl;
    } else {
      ctx.info(std::string(event) + " " + to_hex(p.key).substr(0, 16) + " at " + p.address.to_string() + " (" +
               dht::to_string(p.how) + ")");
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
  uint64_t piped_at = 0;
  auto start_reading = [&] {
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
  };
  // stdin is read only once the piped peer is really there (its secret-stream
  // header came), so nothing is lost on a connection that never worked: one
  // silent for kSilentMs is dropped and the next one is piped. While reading,
  // stdin waits when too much is unsent; tell it as the network drains.
  std::function<void()> watch_pipe = [&] {
    if (piped && piped->channel) {
      if (!reader && piped->channel->established()) {
        start_reading();
      } else if (!reader && clock.now_ms() - piped_at > kSilentMs) {
        Key32 key = piped->key;
        report("disconnected", *piped, "no answer on the connection");
        piped = nullptr;
        peers.erase(key);
        swarm.disconnected(key);
      }
      if (reader && piped) reader->sent(piped->channel->pending());
    }
    clock.start_timer(10, watch_pipe);
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
    p.how = e.how;
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
              std::cout.flush();  // a reader of the pipe sees each message as it comes
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
    if (is_pipe) piped_at = clock.now_ms();
  });
  swarm.join(topic, server, client);
  if (a.pipe) watch_pipe();

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
  join_cmd->add_option("--relay-through", a->relay_through,
                       "A blind relay's key (p2p relay): peers that cannot be punched to go through it")
      ->option_text("KEY");
  join_cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return join(ctx, *a); }; });
}

}  // namespace p2p::cli
