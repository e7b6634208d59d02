#include "net/dht_uv.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace p2p::dht {

void close_loop(uv_loop_s* loop) {
  uv_run(loop, UV_RUN_NOWAIT);
  for (int i = 0; i < 8 && uv_loop_close(loop) == UV_EBUSY; i++) uv_run(loop, UV_RUN_NOWAIT);
}

// --- clock ---

struct UvClock::Impl {
  struct Timer {
    uv_timer_t handle;
    Impl* owner;
    TimerId id;
    std::function<void()> fn;
  };
  uv_loop_t* loop;
  TimerId next_id = 1;
  std::unordered_map<TimerId, Timer*> timers;

  static void close_timer(Timer* t) {
    uv_timer_stop(&t->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&t->handle),
             [](uv_handle_t* h) { delete static_cast<Timer*>(h->data); });
  }
};

UvClock::UvClock(uv_loop_s* loop) : impl_(std::make_unique<Impl>()) { impl_->loop = loop; }

UvClock::~UvClock() {
  for (auto& [id, t] : impl_->timers) Impl::close_timer(t);
}

uint64_t UvClock::now_ms() const { return uv_now(impl_->loop); }

Clock::TimerId UvClock::start_timer(uint64_t delay_ms, std::function<void()> fn) {
  auto* t = new Impl::Timer{{}, impl_.get(), impl_->next_id++, std::move(fn)};
  uv_timer_init(impl_->loop, &t->handle);
  t->handle.data = t;
  impl_->timers[t->id] = t;
  uv_timer_start(
      &t->handle,
      [](uv_timer_t* h) {
        auto* timer = static_cast<Impl::Timer*>(h->data);
        timer->owner->timers.erase(timer->id);
        auto fn = std::move(timer->fn);
        Impl::close_timer(timer);
        fn();
      },
      delay_ms, 0);
  return t->id;
}

void UvClock::cancel_timer(TimerId id) {
  auto it = impl_->timers.find(id);
  if (it == impl_->timers.end()) return;
  Impl::close_timer(it->second);
  impl_->timers.erase(it);
}

// --- socket ---

namespace {
// Reads take up to 16 buffers per recvmmsg, each up to 64 KiB: with UDP GRO
// one buffer holds a run of a peer's equal-sized datagrams.
constexpr size_t kRecvSlices = 16, kRecvSlice = 64 * 1024;
constexpr int kMaxReadRounds = 8;  // then back to the loop (epoll is level-triggered)

// A corked datagram: where it goes and where its bytes are in the buffer.
struct Held {
  Address to;
  size_t offset, size;
};
}  // namespace

struct UvUdpSocket::Impl {
  uv_udp_t* handle = nullptr;  // freed by its close callback
  // Reads go through our own poll on a duplicate of the socket (libuv's
  // watcher, on the original, only serves its send queue): libuv does not
  // pass the UDP_GRO control message that says where datagrams split.
  struct Reader {
    uv_poll_t poll;
    int fd;
    Impl* impl;
  };
  Reader* reader = nullptr;  // freed by its close callback
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  Receiver receiver;
  Address local;
  // Not zeroed: a socket that only ever gets small datagrams (a holepunching
  // one) touches a page of it, not a megabyte.
  std::unique_ptr<char[]> buffer = std::make_unique_for_overwrite<char[]>(kRecvSlices * kRecvSlice);

  // Corked datagrams: their bytes back to back, and where each goes.
  int corked = 0;
  Bytes held_bytes;
  std::vector<Held> held;
  bool gso = true;  // UDP_SEGMENT works here (cleared at the first refusal)
};

namespace {

Address from_sockaddr(const sockaddr_in& sa) {
  Address a;
  std::memcpy(a.ip.data(), &sa.sin_addr.s_addr, 4);
  a.port = ntohs(sa.sin_port);
  return a;
}

sockaddr_in to_sockaddr(const Address& a) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  std::memcpy(&sa.sin_addr.s_addr, a.ip.data(), 4);
  sa.sin_port = htons(a.port);
  return sa;
}

// The segment size of a GRO buffer, or its whole length.
size_t gro_segment(msghdr& m, size_t length) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_GRO) continue;
    int size = 0;
    std::memcpy(&size, CMSG_DATA(c), sizeof size);
    if (size > 0) return static_cast<size_t>(size);
  }
  return length;
}

}  // namespace

UvUdpSocket::UvUdpSocket() : impl_(std::make_unique<Impl>()) {}

// Everything waiting, a bounded number of batches; each datagram to the
// receiver, which may destroy this socket (then nothing here is touched).
void UvUdpSocket::read_ready(Impl& impl) {
  auto alive = impl.alive;
  for (int round = 0; round < kMaxReadRounds; round++) {
    mmsghdr msgs[kRecvSlices];
    iovec iov[kRecvSlices];
    sockaddr_in from[kRecvSlices];
    alignas(cmsghdr) char control[kRecvSlices][CMSG_SPACE(sizeof(int))];
    for (size_t i = 0; i < kRecvSlices; i++) {
      iov[i] = {impl.buffer.get() + i * kRecvSlice, kRecvSlice};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = control[i];
      msgs[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    int n = ::recvmmsg(impl.reader->fd, msgs, kRecvSlices, MSG_DONTWAIT, nullptr);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (int k = 0; k < n; k++) {
      msghdr& m = msgs[k].msg_hdr;
      size_t length = msgs[k].msg_len;
      if ((m.msg_flags & MSG_TRUNC) || m.msg_namelen != sizeof(sockaddr_in) || from[k].sin_family != AF_INET) continue;
      size_t segment = gro_segment(m, length);
      Address a = from_sockaddr(from[k]);
      const auto* base = reinterpret_cast<const uint8_t*>(iov[k].iov_base);
      for (size_t off = 0; off < length; off += segment) {
        if (!impl.receiver) break;
        impl.receiver(a, ByteView(base + off, std::min(segment, length - off)));
        if (!*alive) return;
      }
    }
    if (n < static_cast<int>(kRecvSlices)) return;
  }
}

Result<std::unique_ptr<UvUdpSocket>> UvUdpSocket::bind(uv_loop_s* loop, const std::string& host, uint16_t port) {
  std::unique_ptr<UvUdpSocket> s(new UvUdpSocket());
  sockaddr_in sa{};
  if (uv_ip4_addr(host.c_str(), port, &sa) != 0) {
    return invalid_argument("not an IPv4 address to bind: " + host);
  }
  auto* handle = new uv_udp_t;
  uv_udp_init(loop, handle);
  handle->data = s->impl_.get();
  s->impl_->handle = handle;
  if (int rc = uv_udp_bind(handle, reinterpret_cast<const sockaddr*>(&sa), 0); rc != 0) {
    return io_error(std::string("cannot bind UDP ") + host + ":" + std::to_string(port) + ": " + uv_strerror(rc));
  }
  // Streams arrive in bursts: a larger kernel buffer drops fewer datagrams
  // (the kernel caps it at net.core.rmem_max).
  int buffer = 4 * 1024 * 1024;
  uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(handle), &buffer);
  buffer = 4 * 1024 * 1024;
  uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(handle), &buffer);
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(handle), &fd) != 0) return io_error("the UDP socket has no descriptor");
  // Don't fragment (as libudx sends): a UDX packet larger than the path
  // allows is lost, which is how MTU probing learns the limit. PROBE rather
  // than DO: the probes, not ICMP, decide.
  int pmtu = IP_PMTUDISC_PROBE;
  setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  int gro = 1;  // the kernel may hand over a run of datagrams in one buffer
  setsockopt(fd, SOL_UDP, UDP_GRO, &gro, sizeof gro);
  sockaddr_in bound{};
  int len = sizeof bound;
  uv_udp_getsockname(handle, reinterpret_cast<sockaddr*>(&bound), &len);
  s->impl_->local = from_sockaddr(bound);
  int read_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (read_fd < 0) return io_error(std::string("cannot duplicate the UDP socket: ") + std::strerror(errno));
  auto* reader = new Impl::Reader{{}, read_fd, s->impl_.get()};
  uv_poll_init(loop, &reader->poll, read_fd);
  reader->poll.data = reader;
  s->impl_->reader = reader;
  // Reading on an error too: recvmmsg then takes the socket's pending error.
  uv_poll_start(&reader->poll, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* r = static_cast<Impl::Reader*>(p->data);
    if (r->impl) read_ready(*r->impl);
  });
  return s;
}

UvUdpSocket::~UvUdpSocket() {
  *impl_->alive = false;
  if (auto* r = impl_->reader) {
    r->impl = nullptr;
    uv_poll_stop(&r->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&r->poll), [](uv_handle_t* h) {
      auto* reader = static_cast<Impl::Reader*>(h->data);
      ::close(reader->fd);
      delete reader;
    });
  }
  if (!impl_->handle) return;
  uv_close(reinterpret_cast<uv_handle_t*>(impl_->handle), [](uv_handle_t* h) { delete reinterpret_cast<uv_udp_t*>(h); });
}

void UvUdpSocket::send(const Address& to, ByteView datagram) {
  if (impl_->corked > 0) {
    impl_->held.push_back({to, impl_->held_bytes.size(), datagram.size()});
    impl_->held_bytes.insert(impl_->held_bytes.end(), datagram.begin(), datagram.end());
    return;
  }
  send_now(to, datagram);
}

void UvUdpSocket::cork() { impl_->corked++; }

namespace {

// Consecutive held datagrams that one UDP_SEGMENT send can carry: same
// destination, equal sizes (the last may be shorter), within the kernel's limits.
size_t segment_run(const std::vector<Held>& held, size_t from) {
  constexpr size_t kMaxSegments = 64, kMaxBytes = 65000;
  size_t n = 1, bytes = held[from].size;
  while (from + n < held.size() && n < kMaxSegments) {
    const auto& next = held[from + n];
    if (!(next.to == held[from].to) || next.size > held[from].size || bytes + next.size > kMaxBytes) break;
    bytes += next.size;
    n++;
    if (next.size < held[from].size) break;  // a short one ends the run
  }
  return n;
}

}  // namespace

void UvUdpSocket::uncork() {
  if (impl_->corked == 0 || --impl_->corked > 0) return;
  auto& held = impl_->held;
  const uint8_t* bytes = impl_->held_bytes.data();
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(impl_->handle), &fd);
  size_t i = 0;
  // One system call for a burst: runs of equal-sized datagrams to one peer
  // become a single UDP_SEGMENT (GSO) send, as many runs as fit in one
  // sendmmsg. Whatever the kernel does not take goes out one by one (and
  // into libuv's queue when the socket buffer is full).
  while (fd >= 0 && i < held.size()) {
    constexpr size_t kMaxMessages = 64;
    mmsghdr msgs[kMaxMessages];
    iovec iov[kMaxMessages];
    sockaddr_in addrs[kMaxMessages];
    alignas(cmsghdr) char control[kMaxMessages][CMSG_SPACE(sizeof(uint16_t))];
    size_t first[kMaxMessages], count[kMaxMessages];
    size_t m = 0, j = i;
    for (; m < kMaxMessages && j < held.size(); m++) {
      size_t n = impl_->gso ? segment_run(held, j) : 1;
      size_t len = 0;
      for (size_t k = j; k < j + n; k++) len += held[k].size;
      addrs[m] = to_sockaddr(held[j].to);
      iov[m] = {const_cast<uint8_t*>(bytes + held[j].offset), len};
      msgs[m] = {};
      msgs[m].msg_hdr.msg_name = &addrs[m];
      msgs[m].msg_hdr.msg_namelen = sizeof addrs[m];
      msgs[m].msg_hdr.msg_iov = &iov[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
      if (n > 1) {
        msgs[m].msg_hdr.msg_control = control[m];
        msgs[m].msg_hdr.msg_controllen = sizeof control[m];
        cmsghdr* c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segment = static_cast<uint16_t>(held[j].size);
        std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
      }
      first[m] = j;
      count[m] = n;
      j += n;
    }
    int sent;
    do sent = ::sendmmsg(fd, msgs, static_cast<unsigned>(m), MSG_DONTWAIT);
    while (sent < 0 && errno == EINTR);
    if (sent <= 0) {
      // GSO refused (an old kernel, a device without it): never again.
      if (sent < 0 && count[0] > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
        impl_->gso = false;
        continue;
      }
      break;
    }
    i = first[sent - 1] + count[sent - 1];
  }
  for (; i < held.size(); i++) send_now(held[i].to, ByteView(bytes + held[i].offset, held[i].size));
  held.clear();
  impl_->held_bytes.clear();
}

void UvUdpSocket::send_now(const Address& to, ByteView datagram) {
  sockaddr_in sa = to_sockaddr(to);
  uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(datagram.data())),
                             static_cast<unsigned>(datagram.size()));
  int rc = uv_udp_try_send(impl_->handle, &buf, 1, reinterpret_cast<const sockaddr*>(&sa));
  if (rc != UV_EAGAIN) return;  // sent, or failed the way UDP may fail
  // The kernel's queue is full: queue a copy in libuv.
  struct Send {
    uv_udp_send_t req;
    Bytes bytes;
  };
  auto* s = new Send{{}, to_bytes(datagram)};
  s->req.data = s;
  buf = uv_buf_init(reinterpret_cast<char*>(s->bytes.data()), static_cast<unsigned>(s->bytes.size()));
  if (uv_udp_send(&s->req, impl_->handle, &buf, 1, reinterpret_cast<const sockaddr*>(&sa),
                  [](uv_udp_send_t* r, int) { delete static_cast<Send*>(r->data); }) != 0) {
    delete s;
  }
}

void UvUdpSocket::send_ttl(const Address& to, ByteView datagram, int ttl) {
  // libuv has no per-send TTL (libudx has udx_socket_send_ttl): set IP_TTL
  // around one synchronous send and put the old value back. A datagram the
  // kernel cannot take at once is dropped rather than queued, since a queued
  // copy would leave later with whatever TTL is set then; probes are best
  // effort anyway.
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(impl_->handle), &fd) != 0) return;
  int old = 64;
  socklen_t len = sizeof old;
  if (getsockopt(fd, IPPROTO_IP, IP_TTL, &old, &len) != 0) return;
  if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) != 0) return;
  sockaddr_in sa = to_sockaddr(to);
  uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(datagram.data())),
                             static_cast<unsigned>(datagram.size()));
  uv_udp_try_send(impl_->handle, &buf, 1, reinterpret_cast<const sockaddr*>(&sa));
  setsockopt(fd, IPPROTO_IP, IP_TTL, &old, sizeof old);
}

size_t UvUdpSocket::link_mtu(const Address& to) const {
  // As libudx does: the MTU the kernel would use toward `to`, from a
  // throw-away socket connected there (connecting a UDP socket sends nothing).
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in sa = to_sockaddr(to);
  int mtu = 0;
  socklen_t len = sizeof mtu;
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&
            getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len) == 0;
  ::close(fd);
  return ok && mtu > 0 ? static_cast<size_t>(mtu) : 0;
}

Address UvUdpSocket::local_address() const { return impl_->local; }

void UvUdpSocket::set_receiver(Receiver receiver) { impl_->receiver = std::move(receiver); }

}  // namespace p2p::dht
