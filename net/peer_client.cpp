#include "net/peer_client.h"

#include <algorithm>
#include <set>

#include "net/dht_uv.h"
#include "net/udx_transport.h"

namespace p2p::net {

Result<std::unique_ptr<PeerClient>> PeerClient::connect(const std::string& address, const crypto::KeyPair& key_pair) {
  std::unique_ptr<PeerClient> client(new PeerClient());
  client->address_ = address;
  client->own_loop_ = std::make_unique<uv_loop_t>();
  client->loop_ = client->own_loop_.get();
  uv_loop_init(client->loop_);
  auto conn = net::connect(client->loop_, address, key_pair, kTimeoutMs);
  if (!conn.ok()) return conn.status();
  client->adopt(std::move(*conn));
  return client;
}

void PeerClient::adopt(std::unique_ptr<Connection> conn) {
  conn_ = std::move(conn);
  conn_->mux().hold_unmatched_opens(true);
  conn_->set_hooks({nullptr, [this](const Status& why) {
                      closed_ = true;
                      closed_why_ = why;
                    }});
}

Result<std::unique_ptr<PeerClient>> PeerClient::connect_dht(dht::RuntimeOptions options, const Key32& key,
                                                            const crypto::KeyPair& key_pair, uint64_t timeout_ms) {
  std::unique_ptr<PeerClient> client(new PeerClient());
  auto rt = dht::Runtime::open(std::move(options));
  if (!rt.ok()) return rt.status();
  client->dht_ = std::move(*rt);
  dht::Runtime& r = *client->dht_;
  client->loop_ = r.loop();
  Hash32 topic = crypto::discovery_key(key);
  // Ask every peer found on the topic until one connection completes its
  // handshake; the first wins, later ones are dropped. Callbacks may come
  // after we return: they share this state, not our stack.
  struct Search {
    std::optional<dht::Established> found;
    std::set<Key32> tried;
    std::string last_error;
    size_t dialing = 0;
    bool lookup_done = false, joined = false, over = false;
  };
  auto st = std::make_shared<Search>();
  dht::Runtime* rp = &r;
  auto look = [st, rp, topic, key_pair] {
    st->lookup_done = false;
    rp->dht().lookup(
        topic,
        [st, rp, key_pair](const dht::FoundPeer& p) {
          if (st->over || st->found || p.peer.public_key == key_pair.public_key) return;
          if (!st->tried.insert(p.peer.public_key).second) return;
          st->dialing++;
          rp->connector().connect(key_pair, p.peer.public_key, p.peer.relay_addresses, [st](Result<dht::Established> e) {
            st->dialing--;
              if (!e.ok()) st->last_error = e.status().message();
            else if (!st->found && !st->over) st->found = std::move(*e);
          });
        },
        [st](const dht::QueryResult&) { st->lookup_done = true; });
  };
  r.node().bootstrap([st, look] {
    if (st->over) return;
    st->joined = true;
    look();
  });
  // Look again every few seconds while nothing answered: the seeder may be starting.
  uint64_t started = uv_now(client->loop_);
  auto elapsed = [&] { return uv_now(client->loop_) - started; };
  while (!st->found && elapsed() < timeout_ms) {
    run_until(client->loop_, [&] { return st->found.has_value() || (st->joined && st->lookup_done && st->dialing == 0); },
              timeout_ms - elapsed());
    if (st->found || elapsed() >= timeout_ms) break;
    run_until(client->loop_, [] { return false; }, std::min<uint64_t>(2000, timeout_ms - elapsed()));
    if (st->joined) look();
  }
  st->over = true;
  std::optional<dht::Established> found = std::move(st->found);
  st->found.reset();
  const std::string& last_error = st->last_error;
  if (!found) {
    std::string why = last_error.empty() ? "" : " (last attempt: " + last_error + ")";
    return error(ErrorCode::not_found, "no peer holding " + to_hex(key) + " found on the DHT within " +
                                           std::to_string(timeout_ms / 1000) + " s" + why);
  }
  client->address_ = found->remote.to_string() + " (" + to_hex(found->handshake.remote_public_key).substr(0, 16) + ")";
  auto stream = std::make_unique<SecretStream>(found->initiator, found->handshake);
  auto conn = std::make_unique<Connection>(client->loop_, udx_transport(std::move(found->stream), r.node().clock(), std::move(found->early_data)),
                                           std::move(stream));
  Connection* c = conn.get();
  bool closed = false;
  conn->set_hooks({nullptr, [&](const Status&) { closed = true; }});
  if (Status s = conn->start(); !s.ok()) return s;
  if (!run_until(client->loop_, [&] { return c->established() || closed; }, Connection::kHandshakeTimeoutMs) || closed) {
    return error(ErrorCode::io, "the peer " + client->address_ + " did not complete the secret stream");
  }
  client->adopt(std::move(conn));
  return client;
}

PeerClient::~PeerClient() {
  cores_.clear();  // (the cores themselves belong to the caller and are gone by now)
  if (conn_) {
    conn_->set_hooks({});
    conn_.reset();  // closes the socket
  }
  dht_.reset();
  if (own_loop_) dht::close_loop(own_loop_.get());
}

RemoteCore* PeerClient::remote(const Core& core) {
  for (auto& c : cores_)
    if (&c->core() == &core) return c.get();
  return nullptr;
}

uint64_t PeerClient::blocks_fetched() const {
  uint64_t n = 0;
  for (const auto& c : cores_) n += c->blocks_fetched();
  return n;
}

uint64_t PeerClient::bytes_fetched() const {
  uint64_t n = 0;
  for (const auto& c : cores_) n += c->bytes_fetched();
  return n;
}

Status PeerClient::connection_status() const {
  if (!closed_) return {};
  if (!closed_why_.ok() && closed_why_.code() != ErrorCode::io)  // we hung up: the peer sent something bad
    return error(closed_why_.code(), "dropped the peer " + address_ + ": " + closed_why_.message());
  return error(ErrorCode::io, "the peer " + address_ + " closed the connection" +
                                  (closed_why_.ok() ? std::string() : ": " + closed_why_.message()));
}

Result<RemoteCore*> PeerClient::attach(Core& core) {
  P2P_TRY(connection_status());
  auto session = std::make_unique<CoreSession>(conn_->mux(), core, conn_->handshake(), conn_->initiator());
  CoreSession* s = session.get();
  conn_->sessions().push_back(std::move(session));
  P2P_TRY(s->open());
  conn_->flush_output();
  std::unique_ptr<RemoteCore> remote(new RemoteCore(*this, s));
  P2P_TRY(remote->wait([s] { return s->remote_synced() || s->closed(); }, "the peer's answer"));
  if (!s->remote_synced())
    return not_found("the peer " + address_ + " does not have core " + core.label());
  core.set_fetcher(remote.get());
  cores_.push_back(std::move(remote));
  return cores_.back().get();
}

Status RemoteCore::wait(const std::function<bool()>& done, const std::string& what) {
  client_.conn_->flush_output();
  bool ok = run_until(client_.loop_, [&] { return done() || client_.closed_; }, PeerClient::kTimeoutMs);
  if (done()) return {};
  P2P_TRY(client_.connection_status());
  if (!ok) return error(ErrorCode::io, "timed out waiting for " + what + " from " + client_.address_);
  return {};
}

Result<uint64_t> RemoteCore::update() {
  CoreSession* s = session_;
  P2P_TRY(s->core().refresh());
  if (s->remote_length() <= s->core().length()) return s->core().length();
  P2P_TRY(s->request_upgrade());
  P2P_TRY(wait([s] { return !s->upgrading() || s->closed(); }, "the upgrade"));
  if (s->closed()) return client_.connection_status().ok() ? io_error("the peer closed the channel") : client_.connection_status();
  return s->core().length();
}

Result<Bytes> RemoteCore::fetch(Core& core, uint64_t index) {
  CoreSession* s = session_;
  missing_ = UINT64_MAX;
  bool arrived = false;
  auto hooks_before = std::function<void(uint64_t)>();
  CoreSession::Hooks hooks;
  hooks.on_block = [&](uint64_t i) { arrived |= i == index; };
  hooks.on_block_missing = [&](uint64_t i) { if (i == index) missing_ = i; };
  s->set_hooks(hooks);
  s->want(index);
  Status pumped = s->pump_requests();
  Status w = pumped.ok() ? wait([&] { return arrived || missing_ == index || s->closed(); },
                                "block " + std::to_string(index))
                         : pumped;
  s->set_hooks({});
  if (!arrived) s->cancel(index);  // (a timeout: the peer need not answer any more)
  P2P_TRY(w);
  if (!arrived && s->closed()) P2P_TRY(client_.connection_status());
  if (!arrived)
    return not_found("the peer " + client_.address_ + " does not have block " + std::to_string(index) + " of core " +
                     core.label());
  // The block is stored now: read it back through a fresh snapshot.
  core.set_fetcher(nullptr);
  auto block = core.get(index);
  core.set_fetcher(this);
  return block;
}

Result<std::vector<Bytes>> RemoteCore::fetch_range(Core& core, uint64_t first, uint64_t count) {
  P2P_TRY(download(first, first + count));
  // Stored now: read them back through a fresh snapshot.
  core.set_fetcher(nullptr);
  std::vector<Bytes> out;
  Status s;
  for (uint64_t i = first; i < first + count && s.ok(); i++) {
    auto b = core.get(i);
    if (b.ok()) out.push_back(std::move(*b));
    else s = b.status();
  }
  core.set_fetcher(this);
  if (!s.ok()) return s;
  return out;
}

Status RemoteCore::download(uint64_t first, uint64_t end,
                            const std::function<void(uint64_t done, uint64_t total)>& progress) {
  std::vector<uint64_t> indices;
  end = std::min(end, session_->core().length());
  for (uint64_t i = first; i < end; i++) indices.push_back(i);
  return download(std::move(indices), progress);
}

Status RemoteCore::download(std::vector<uint64_t> indices,
                            const std::function<void(uint64_t done, uint64_t total)>& progress) {
  CoreSession* s = session_;
  Core& core = s->core();
  std::vector<uint64_t> todo;
  {
    auto reader = core.reader();
    if (!reader.ok()) return reader.status();
    std::sort(indices.begin(), indices.end());
    indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
    for (uint64_t i : indices)
      if (!(*reader)->has(i)) todo.push_back(i);
  }
  uint64_t total = todo.size(), done = 0, missing = 0;
  uint64_t first_missing = UINT64_MAX;
  CoreSession::Hooks hooks;
  hooks.on_block = [&](uint64_t) {
    done++;
    if (progress) progress(done, total);
  };
  hooks.on_block_missing = [&](uint64_t i) {
    missing++;
    first_missing = std::min(first_missing, i);
  };
  s->set_hooks(hooks);
  for (uint64_t i : todo) s->want(i);
  Status st = s->pump_requests();
  while (st.ok() && done + missing < total) {
    uint64_t before = done + missing;
    st = wait([&] { return done + missing > before || s->closed(); }, "blocks");
    if (st.ok() && s->closed() && done + missing < total) {
      st = client_.connection_status();
      if (st.ok()) st = io_error("the peer closed the channel");
    }
  }
  s->set_hooks({});
  P2P_TRY(st);
  if (missing > 0)
    return not_found("the peer " + client_.address_ + " lacks " + std::to_string(missing) + " of the blocks (first: " +
                     std::to_string(first_missing) + ")");
  return {};
}

}  // namespace p2p::net
