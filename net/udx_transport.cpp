#include "net/udx_transport.h"

namespace p2p::net {
namespace {

constexpr uint64_t kDrainPollMs = 5;
constexpr size_t kDrainedBelow = 1024 * 1024;

class UdxTransport : public Transport {
 public:
  UdxTransport(std::unique_ptr<udx::Stream> stream, dht::Clock& clock, std::shared_ptr<Bytes> early)
      : stream_(std::move(stream)), clock_(clock), early_(std::move(early)) {}
  ~UdxTransport() override { close(); }

  Status start(Handlers handlers) override {
    handlers_ = std::move(handlers);
    if (early_) held_ = std::move(*early_);
    early_.reset();
    stream_->on_data = [this](ByteView b) {
      if (reading_ && handlers_.on_data) handlers_.on_data(b);
      else held_.insert(held_.end(), b.begin(), b.end());
    };
    stream_->on_end = [this] {
      if (handlers_.on_peer_end) return handlers_.on_peer_end();
      auto on_end = handlers_.on_end;
      if (on_end) on_end(Status{});
    };
    stream_->on_close = [this](const std::string& why) {
      auto on_end = handlers_.on_end;
      closed_by_peer_ = true;
      if (on_end) on_end(why.empty() ? Status{} : io_error("connection lost: " + why));
    };
    // What came before we started: the owner sees it first.
    if (!held_.empty()) resume_reading();
    return {};
  }

  void write(Bytes data) override {
    if (!stream_ || closed_by_peer_) return;
    stream_->write(data);
    if (stream_->buffered() > kDrainedBelow && poll_ == 0) poll();
  }

  void end() override {
    if (stream_ && !closed_by_peer_) stream_->end();
  }

  size_t pending() const override { return stream_ && !closed_by_peer_ ? stream_->buffered() : 0; }

  void pause_reading() override { reading_ = false; }

  void resume_reading() override {
    reading_ = true;
    if (held_.empty() || !handlers_.on_data) return;  // (delivered once started)
    Bytes held = std::move(held_);
    held_.clear();
    handlers_.on_data(held);
  }

  void close() override {
    handlers_ = {};
    if (poll_) clock_.cancel_timer(poll_);  // (the clock may be gone once we are closed)
    poll_ = 0;
    if (!stream_) return;
    stream_->on_data = nullptr;
    stream_->on_end = nullptr;
    stream_->on_close = nullptr;
    // A finished stream goes quietly; a live one is reset (DESTROY).
    if (!closed_by_peer_ && !stream_->closed()) stream_->destroy();
    stream_.reset();
  }

  std::string remote_address() const override { return stream_ ? stream_->remote().to_string() : ""; }

 private:
  // UDX has no drain event: watch the unacknowledged bytes while a writer waits.
  void poll() {
    poll_ = clock_.start_timer(kDrainPollMs, [this] {
      poll_ = 0;
      if (!stream_ || closed_by_peer_) return;
      if (stream_->buffered() > kDrainedBelow) return poll();
      if (handlers_.on_drain) handlers_.on_drain();
    });
  }

  std::unique_ptr<udx::Stream> stream_;
  dht::Clock& clock_;
  Handlers handlers_;
  bool reading_ = true, closed_by_peer_ = false;
  Bytes held_;
  std::shared_ptr<Bytes> early_;
  dht::Clock::TimerId poll_ = 0;
};

}  // namespace

std::unique_ptr<Transport> udx_transport(std::unique_ptr<udx::Stream> stream, dht::Clock& clock,
                                         std::shared_ptr<Bytes> early) {
  return std::make_unique<UdxTransport>(std::move(stream), clock, std::move(early));
}

MessageChannel::MessageChannel(std::unique_ptr<Transport> transport, std::unique_ptr<SecretStream> stream)
    : transport_(std::move(transport)), stream_(std::move(stream)) {}

MessageChannel::~MessageChannel() { close(); }

Status MessageChannel::start(Handlers handlers) {
  handlers_ = std::move(handlers);
  P2P_TRY(transport_->start({
      .on_data =
          [this](ByteView bytes) {
            if (closed_) return;
            Status s = stream_->receive(bytes, [this](ByteView m) {
              if (handlers_.on_message) handlers_.on_message(m);
              return Status{};
            });
            if (!s.ok()) {
              auto on_close = handlers_.on_close;
              close();
              if (on_close) on_close(s);
              return;
            }
            flush();
          },
      .on_end =
          [this](const Status& why) {
            if (closed_) return;
            auto on_close = handlers_.on_close;
            closed_ = true;
            if (on_close) on_close(why);
          },
      .on_drain = nullptr,
      .on_peer_end =
          [this] {
            if (handlers_.on_end) handlers_.on_end();
          },
  }));
  P2P_TRY(stream_->start());
  flush();
  return {};
}

Status MessageChannel::send(ByteView message) {
  if (closed_) return io_error("the connection is closed");
  P2P_TRY(stream_->send(message));
  flush();
  return {};
}

void MessageChannel::end() {
  flush();
  transport_->end();
}

void MessageChannel::flush() {
  if (!closed_ && stream_->has_output()) transport_->write(stream_->take_output());
}

void MessageChannel::close() {
  if (closed_ && !transport_) return;
  closed_ = true;
  handlers_ = {};
  if (transport_) transport_->close();
}

}  // namespace p2p::net
