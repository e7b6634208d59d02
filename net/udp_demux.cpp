#include "net/udp_demux.h"

#include "core/crypto.h"

namespace p2p::dht {

UdpDemux::UdpDemux(DatagramSocket& socket) : socket_(socket), dht_view_(*this, socket), outbound_(*this, socket) {
  socket_.set_receiver([this](const Address& from, ByteView d) { on_datagram(from, d); });
}

UdpDemux::~UdpDemux() { socket_.set_receiver(nullptr); }

void UdpDemux::guard_reachability_check(Clock& clock, std::function<bool()> firewalled) {
  clock_ = &clock;
  firewalled_ = std::move(firewalled);
}

void UdpDemux::sent_to(const Address& to) {
  if (!clock_) return;
  uint64_t now = clock_->now_ms();
  if (contacted_.size() >= kMaxContacts && !contacted_.count(to)) {
    std::erase_if(contacted_, [&](const auto& kv) { return now - kv.second > kContactMemoryMs; });
    if (contacted_.size() >= kMaxContacts) contacted_.erase(contacted_.begin());
  }
  contacted_[to] = now;
}

bool UdpDemux::contacted_lately(const Address& from) const {
  auto it = contacted_.find(from);
  return it != contacted_.end() && clock_->now_ms() - it->second <= kContactMemoryMs;
}

void UdpDemux::on_datagram(const Address& from, ByteView d) {
  if (d.size() == 1) {
    // hyperdht's holepunch probe (0x00); dht-rpc ignores datagrams this short anyway.
    if (probes_) probes_(from);
    return;
  }
  if (d.size() >= 2 && d[0] == 0xff && d[1] == 0x01 && streams_ && streams_(from, d)) return;
  if (!d.empty() && d[0] == kResponseByte) {
    if (responses_ && responses_(from, d)) return;
    if (clock_ && firewalled_ && firewalled_() && contacted_lately(from)) return;  // no proof of reachability
  }
  if (dht_view_.receiver_) dht_view_.receiver_(from, d);
}

// --- MainSocketRequests ---

MainSocketRequests::MainSocketRequests(Clock& clock, UdpDemux& demux) : clock_(clock), demux_(demux) {
  crypto::random_bytes(reinterpret_cast<uint8_t*>(&next_tid_), sizeof next_tid_);
  demux_.set_response_handler([this](const Address& from, ByteView d) { return on_response(from, d); });
}

MainSocketRequests::~MainSocketRequests() {
  demux_.set_response_handler(nullptr);
  for (auto& [tid, p] : pending_) clock_.cancel_timer(p.timer);
}

bool MainSocketRequests::request(const Address& to, const OutboundRequest& req, Callback cb, int retries) {
  if (pending_.size() >= kMaxPending) return false;
  uint16_t tid = next_tid_++;
  while (pending_.count(tid)) tid = next_tid_++;
  Request msg{.tid = tid,
              .to = to,
              .id = std::nullopt,  // an ephemeral sender: the main socket's address is not our id here
              .token = req.token,
              .internal = req.internal,
              .command = req.command,
              .target = req.target,
              .value = req.value};
  pending_[tid] = Pending{.to = to, .packet = encode_request(msg), .retries = retries, .cb = std::move(cb)};
  transmit(tid);
  return true;
}

bool MainSocketRequests::ping(const Address& to, Callback cb, int retries) {
  return request(to, OutboundRequest{.internal = true, .command = kPing}, std::move(cb), retries);
}

void MainSocketRequests::transmit(uint16_t tid) {
  Pending& p = pending_.at(tid);
  p.sent++;
  p.sent_at = clock_.now_ms();
  demux_.outbound().send(p.to, p.packet);
  p.timer = clock_.start_timer(kTimeoutMs, [this, tid] { on_timeout(tid); });
}

void MainSocketRequests::on_timeout(uint16_t tid) {
  auto it = pending_.find(tid);
  if (it == pending_.end()) return;
  it->second.timer = 0;
  if (it->second.sent <= it->second.retries) return transmit(tid);
  Callback cb = std::move(it->second.cb);
  pending_.erase(it);
  if (cb) cb(nullptr);
}

bool MainSocketRequests::on_response(const Address& from, ByteView datagram) {
  if (pending_.empty()) return false;  // the usual case: every response is the node's
  auto msg = decode_response(datagram);
  if (!msg) return false;
  auto it = pending_.find(msg->tid);
  // Only the node asked answers (a tid alone is easy to guess); anything
  // else is the node's.
  if (it == pending_.end() || it->second.to != from) return false;
  Pending p = std::move(it->second);
  pending_.erase(it);
  clock_.cancel_timer(p.timer);
  Reply r{.from = from,
          .from_id = std::nullopt,
          .to = msg->to,
          .token = msg->token,
          .closer_nodes = std::move(msg->closer_nodes),
          .error = msg->error,
          .value = std::move(msg->value),
          .rtt_ms = clock_.now_ms() - p.sent_at,
          .on_main_socket = true};
  if (msg->id && *msg->id == node_id(from)) r.from_id = msg->id;
  if (p.cb) p.cb(&r);
  return true;
}

}  // namespace p2p::dht
