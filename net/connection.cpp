#include "net/connection.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>

namespace p2p::net {

bool run_until(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms) {
  bool timed_out = false;
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  timer.data = &timed_out;
  uv_timer_start(&timer, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, timeout_ms, 0);
  while (!done() && !timed_out) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // lets the timer's close finish before it leaves scope
  return done();
}

Result<sockaddr_storage> parse_address(const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size())
    return invalid_argument("'" + host_port + "' is not HOST:PORT (for example 127.0.0.1:4977)");
  std::string host = host_port.substr(0, colon), port_text = host_port.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (*end != 0 || port < 0 || port > 65535) return invalid_argument("'" + port_text + "' is not a port number");
  sockaddr_storage out{};
  if (uv_ip4_addr(host.c_str(), static_cast<int>(port), reinterpret_cast<sockaddr_in*>(&out)) == 0) return out;
  if (uv_ip6_addr(host.c_str(), static_cast<int>(port), reinterpret_cast<sockaddr_in6*>(&out)) == 0) return out;
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res)
    return invalid_argument("cannot resolve host '" + host + "'");
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (out.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&out)->sin_port = htons(static_cast<uint16_t>(port));
  else reinterpret_cast<sockaddr_in6*>(&out)->sin6_port = htons(static_cast<uint16_t>(port));
  return out;
}

std::string format_address(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
  uv_ip6_name(a, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

Connection::Connection(uv_loop_t* loop, uv_tcp_t* tcp, bool initiator, const crypto::KeyPair& key_pair)
    : Connection(loop, tcp_transport(tcp), std::make_unique<SecretStream>(initiator, key_pair)) {}

Connection::Connection(uv_loop_t* loop, std::unique_ptr<Transport> transport, std::unique_ptr<SecretStream> stream)
    : loop_(loop),
      transport_(std::move(transport)),
      timer_(new uv_timer_t),
      stream_(std::move(stream)),
      mux_([this](ByteView frame) {
        Status s = stream_->send(frame);
        if (!s.ok()) close(s);
        // One batch of requests can ask for many big replies: they leave as
        // they are made rather than pile up in one growing buffer.
        else if (stream_->output_size() >= kWriteChunk) flush();
      }) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  remote_address_ = transport_->remote_address();
  mux_.set_backpressure([this] { return transport_->pending() > kHighWater; });
}

Connection::~Connection() {
  sessions_.clear();  // sessions reference the mux: they go first
  close();
}

Status Connection::start() {
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Connection*>(t->data);
        if (self && !self->stream_->established()) self->close(error(ErrorCode::io, "handshake timed out"));
      },
      kHandshakeTimeoutMs, 0);
  P2P_TRY(transport_->start({
      .on_data =
          [this](ByteView bytes) {
            if (closed_) return;
            bytes_in_ += bytes.size();
            last_read_ms_ = uv_now(loop_);
            received(bytes);
          },
      .on_end = [this](const Status& why) { close(why); },
      .on_drain = [this] { drained(); },
  }));
  P2P_TRY(stream_->start());
  // A stream started from a finished handshake has its header queued already.
  received({});
  return {};
}

void Connection::received(ByteView bytes) {
  // Replies pile up faster than the peer reads them: stop parsing (and
  // reading) until the transport drains, so a flood of requests costs bounded memory.
  auto backlogged = [this] { return transport_->pending() > kHighWater || mux_.holding(); };
  Status s = stream_->receive(
      bytes,
      [this](ByteView message) { return mux_.receive(message); },
      backlogged);
  if (s.ok()) s = mux_.drain();
  if (!s.ok()) {
    close(s);
    return;
  }
  if (stream_->established() && !was_established_) {
    was_established_ = true;
    uv_timer_stop(timer_);
    uv_timer_start(
        timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<Connection*>(t->data);
          if (!self || self->closed_) return;
          uint64_t now = uv_now(self->loop_);
          if (now - self->last_read_ms_ >= kIdleTimeoutMs) {
            self->close(io_error("nothing from the peer for " + std::to_string(kIdleTimeoutMs / 1000) + " s"));
            return;
          }
          if (now - self->last_write_ms_ < kKeepAliveMs) return;
          if (self->stream_->send({}).ok()) self->flush();
        },
        kKeepAliveMs, kKeepAliveMs);
    if (hooks_.on_established) hooks_.on_established();
  }
  flush();
}

void Connection::flush() {
  if (closed_ || !stream_->has_output()) return;
  Bytes out = stream_->take_output(transport_->take_spare());
  bytes_out_ += out.size();
  last_write_ms_ = uv_now(loop_);
  transport_->write(std::move(out));
  if (!closed_ && transport_->pending() > kHighWater && reading_) {  // the peer reads slower than it asks
    transport_->pause_reading();
    reading_ = false;
  }
}

void Connection::drained() {
  if (closed_ || reading_) return;
  if (mux_.holding()) {  // the rest of a batch of requests
    Status s = mux_.resume();
    if (s.ok()) s = mux_.drain();
    if (!s.ok()) {
      close(s);
      return;
    }
    flush();
  }
  if (!closed_ && !mux_.holding() && stream_->has_input()) received({});  // what was parsed no further
  if (!closed_ && !reading_ && !mux_.holding() && transport_->pending() <= kHighWater) {
    transport_->resume_reading();
    reading_ = true;
  }
}

void Connection::close(const Status& why) {
  if (closed_) return;
  closed_ = true;
  mux_.shutdown();
  uv_timer_stop(timer_);
  timer_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  transport_->close();
  if (hooks_.on_close) hooks_.on_close(why);
}

Result<std::unique_ptr<Connection>> connect(uv_loop_t* loop, const std::string& address,
                                            const crypto::KeyPair& key_pair, uint64_t timeout_ms) {
  auto addr = parse_address(address);
  if (!addr.ok()) return addr.status();
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(loop, tcp);
  struct State {
    bool done = false;
    int status = 0;
  } state;
  uv_connect_t req;
  req.data = &state;
  int rc = uv_tcp_connect(&req, tcp, reinterpret_cast<const sockaddr*>(&*addr), [](uv_connect_t* r, int status) {
    auto* st = static_cast<State*>(r->data);
    st->done = true;
    st->status = status;
  });
  auto fail = [&](const std::string& why) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    if (!state.done) run_until(loop, [&] { return state.done; }, 1000);
    return error(ErrorCode::io, "cannot connect to " + address + ": " + why);
  };
  if (rc != 0) return fail(uv_strerror(rc));
  if (!run_until(loop, [&] { return state.done; }, timeout_ms)) return fail("timed out");
  if (state.status != 0) return fail(uv_strerror(state.status));
  auto conn = std::make_unique<Connection>(loop, tcp, true, key_pair);
  Status closed_why;
  bool closed = false;
  conn->set_hooks({nullptr, [&](const Status& why) {
                     closed = true;
                     closed_why = why;
                   }});
  P2P_TRY(conn->start());
  if (!run_until(loop, [&] { return conn->established() || closed; }, timeout_ms) || closed) {
    conn->close(error(ErrorCode::io, "handshake timed out"));
    return error(ErrorCode::io, "handshake with " + address + " failed: " +
                                    (closed_why.ok() ? std::string("the peer closed the connection") : closed_why.message()));
  }
  conn->set_hooks({});
  return conn;
}

}  // namespace p2p::net
