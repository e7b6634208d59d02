#include <uv.h>

#include <vector>

#include "net/connection.h"
#include "net/transport.h"

namespace p2p::net {
namespace {

constexpr size_t kReadBuffer = 256 * 1024;
constexpr size_t kMaxSpareBuffers = 16;

class TcpTransport : public Transport {
 public:
  explicit TcpTransport(uv_tcp_t* tcp) : tcp_(tcp) {
    tcp_->data = this;
    sockaddr_storage peer{};
    int len = sizeof peer;
    if (uv_tcp_getpeername(tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) remote_ = format_address(peer);
    uv_tcp_nodelay(tcp_, 1);
  }
  ~TcpTransport() override { close(); }

  Status start(Handlers handlers) override {
    handlers_ = std::move(handlers);
    int rc = uv_read_start(stream(), on_alloc, on_read);
    if (rc != 0) return io_error(std::string("cannot read from the socket: ") + uv_strerror(rc));
    reading_ = true;
    return {};
  }

  void write(Bytes data) override {
    if (!tcp_) return;
    auto* w = new Write{{}, std::move(data), this};
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->data.data()), static_cast<unsigned>(w->data.size()));
    pending_ += w->data.size();
    int rc = uv_write(&w->req, stream(), &buf, 1, on_write);
    if (rc != 0) {
      pending_ -= w->data.size();
      delete w;
      end(io_error(std::string("cannot write to the socket: ") + uv_strerror(rc)));
    }
  }

  size_t pending() const override { return pending_; }

  void pause_reading() override {
    if (!tcp_ || !reading_) return;
    uv_read_stop(stream());
    reading_ = false;
  }

  void resume_reading() override {
    if (!tcp_ || reading_) return;
    uv_read_start(stream(), on_alloc, on_read);
    reading_ = true;
  }

  void close() override {
    if (!tcp_) return;
    handlers_ = {};
    // The handle outlives us until libuv finishes closing it: detach it.
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }

  std::string remote_address() const override { return remote_; }

  Bytes take_spare() override {
    if (spare_.empty()) return {};
    Bytes b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }

 private:
  struct Write {
    uv_write_t req;
    Bytes data;
    TcpTransport* owner;
  };
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(tcp_); }

  void end(const Status& why) {
    auto on_end = handlers_.on_end;
    close();
    if (on_end) on_end(why);
  }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* self = static_cast<TcpTransport*>(h->data);
    if (!self) {
      *buf = uv_buf_init(nullptr, 0);
      return;
    }
    self->read_buffer_.resize(kReadBuffer);
    *buf = uv_buf_init(self->read_buffer_.data(), kReadBuffer);
  }

  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = static_cast<TcpTransport*>(s->data);
    if (!self) return;
    if (n < 0) {
      self->end(n == UV_EOF ? Status{} : io_error(std::string("connection lost: ") + uv_strerror(static_cast<int>(n))));
      return;
    }
    if (self->handlers_.on_data)
      self->handlers_.on_data(ByteView(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n)));
  }

  static void on_write(uv_write_t* req, int status) {
    auto* w = static_cast<Write*>(req->data);
    auto* self = static_cast<TcpTransport*>(req->handle->data);
    if (self) {
      self->pending_ -= w->data.size();
      if (self->spare_.size() < kMaxSpareBuffers && w->data.capacity() <= 4 * Connection::kWriteChunk)
        self->spare_.push_back(std::move(w->data));
      if (status != 0) self->end(io_error(std::string("write failed: ") + uv_strerror(status)));
      else if (!self->reading_ && self->pending_ < Connection::kHighWater / 4 && self->handlers_.on_drain)
        self->handlers_.on_drain();
    }
    delete w;
  }

  uv_tcp_t* tcp_;
  Handlers handlers_;
  bool reading_ = false;
  size_t pending_ = 0;
  std::string remote_;
  std::vector<char> read_buffer_;
  std::vector<Bytes> spare_;
};

}  // namespace

std::unique_ptr<Transport> tcp_transport(uv_tcp_s* tcp) { return std::make_unique<TcpTransport>(tcp); }

}  // namespace p2p::net
