#include "net/udx.h"

#include <algorithm>
#include <deque>
#include <map>

#include "core/crypto.h"

namespace p2p::udx {
namespace {

constexpr uint64_t kInitialRto = 1000, kMinRto = 1000, kMaxRto = 30000;
constexpr uint32_t kMaxRtoTimeouts = 6;  // a packet this often timed out closes the stream at the next
// At most about the 4 MiB receive window in full packets: more only overflows
// the receiver's socket buffer (on loopback: 1.5% of packets lost at 4096).
constexpr uint32_t kInitialCwnd = 10, kMinCwnd = 2, kMaxCwnd = 2048;
// RACK's reorder window starts at srtt/4 and may grow to 2 srtt (RFC 8985
// stops at srtt; heavy reordering, as on the simulated network, needs more).
constexpr uint32_t kMaxReorderQuarters = 8, kReorderPersist = 16;
// Packets between the peer's cumulative ack and our next seq; bounds the
// sender's state (and the work a hostile SACK can cause).
constexpr uint64_t kMaxOutstanding = 8192;
constexpr uint64_t kLingerMs = 2 * kMaxRto;
constexpr size_t kMaxLingering = 1024;
constexpr size_t kCompactPending = 64 * 1024;
const std::string kTimedOut = "timed out";
const std::string kReset = "connection reset by peer";

uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void put_u32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; i++) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Sequence numbers are u32 on the wire and wrap; we keep them as u64.
int32_t seq_diff(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b); }

}  // namespace

void write_header(Bytes& out, const Header& h) {
  out.insert(out.end(), {kMagic, kVersion, h.type, h.data_offset});
  put_u32(out, h.id);
  put_u32(out, h.rwnd);
  put_u32(out, h.seq);
  put_u32(out, h.ack);
}

std::optional<Header> read_header(ByteView d) {
  if (d.size() < kHeaderSize || d[0] != kMagic || d[1] != kVersion) return std::nullopt;
  return Header{d[2], d[3], get_u32(&d[4]), get_u32(&d[8]), get_u32(&d[12]), get_u32(&d[16])};
}

// --- the stream's protocol state ---

struct Stream::State {
  using TimerId = dht::Clock::TimerId;

  struct Sent {
    Bytes payload;
    uint8_t type = 0;
    uint8_t padding = 0;  // an MTU probe's zeros, on its first transmission only
    uint64_t sent_at = 0;
    uint32_t transmits = 0, rto_timeouts = 0;
    bool lost = false, sacked = false;  // lost: waiting in `retransmits`
  };
  struct Received {
    uint8_t type = 0;
    Bytes data;
  };
  enum class Phase { kOpen, kRecovery, kLoss };

  explicit State(Stream& s) : self(s) {}

  Stream& self;
  // Copied before every user callback: tells whether the stream survived it.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  // Sending: `pending` holds written bytes not yet in a packet; `outgoing`
  // the packets [remote_acked, seq) until cumulatively acked.
  Bytes pending;
  size_t pending_off = 0;
  size_t unacked_bytes = 0;
  bool end_wanted = false, end_sent = false, end_acked = false;
  uint64_t end_seq = 0;
  std::deque<Sent> outgoing;
  std::deque<uint64_t> retransmits;
  uint64_t seq = 0, remote_acked = 0;
  uint32_t inflight = 0;  // sent, not acked, sacked or lost
  uint32_t send_rwnd = kDefaultWindow, wl1 = 0, wl2 = 0;

  // Congestion control: AIMD in packets, NewReno-style recovery.
  uint32_t cwnd = kInitialCwnd, ssthresh = 0xffff, ca_count = 0;
  bool cwnd_limited = false;
  Phase phase = Phase::kOpen;
  uint64_t recovery_end = 0;

  // RTT (RFC 6298) and RACK-lite loss detection (RFC 8985).
  bool have_rtt = false, rack_valid = false;
  uint64_t srtt = 0, rttvar = 0, rto = kInitialRto, min_rtt = 0;
  // The reorder window in quarters of srtt: widened when a packet we called
  // lost turns out delivered, back to one after kReorderPersist recoveries.
  uint32_t reorder_quarters = 1, recoveries_left = kReorderPersist;
  uint64_t rack_sent_at = 0, rack_seq = 0, rack_rtt = 0;

  // MTU probing (spec 1.2): the first delivery starts the search; a probe is
  // the next full data packet padded to probe_size. Delivered: the MTU grows
  // and the next probe is wanted; lost kMtuMaxProbes times: the search ends.
  enum class MtuSearch { kBase, kSearching, kDone };
  MtuSearch mtu_search = MtuSearch::kBase;
  size_t mtu = kMtuBase, mtu_max = kMtuBase, probe_size = 0;
  uint32_t probes_lost = 0;
  bool probe_wanted = false, probe_in_flight = false;
  uint64_t probe_seq = 0;

  TimerId rto_timer = 0, loss_timer = 0, probe_timer = 0, zwp_timer = 0, flush_timer = 0, ack_timer = 0,
          moved_timer = 0;
  std::optional<uint64_t> moved_at;  // seq when change_remote moved the stream, until confirmed
  uint64_t zwp_delay = 0;
  bool probed = false;  // a tail loss probe went out since the last delivery

  // Receiving: `ack` is the next seq we expect; `early` holds in-order bytes
  // that arrived before connect().
  uint64_t ack = 0;
  std::map<uint64_t, Received> ooo;
  size_t ooo_bytes = 0;
  std::optional<ByteView> in_order;
  Bytes packet_buffer;  // the packet just accepted, when it needed no buffering
  Bytes early;
  uint32_t window_max = kDefaultWindow;
  bool ack_needed = false, remote_ended = false, end_reported = false;

  dht::Clock& clock() { return self.mux_->clock(); }
  uint64_t now() { return clock().now_ms(); }

  // --- timers ---

  void arm(TimerId& t, uint64_t ms, void (State::*fn)()) {
    clock().cancel_timer(t);
    t = clock().start_timer(ms, [this, &t, fn] {
      t = 0;
      (this->*fn)();
    });
  }
  void cancel(TimerId& t) {
    clock().cancel_timer(t);
    t = 0;
  }
  void cancel_timers() {
    for (TimerId* t : {&rto_timer, &loss_timer, &probe_timer, &zwp_timer, &flush_timer, &ack_timer, &moved_timer})
      cancel(*t);
  }

  // --- user callbacks: a copy runs, so a callback may destroy the stream ---

  template <class F, class... Args>
  bool invoke(const F& fn, Args&&... args) {
    if (!fn) return true;
    auto guard = alive;
    F copy = fn;
    copy(std::forward<Args>(args)...);
    return *guard && !self.closed_;
  }

  // --- packets out ---

  uint32_t advertised_window() const {
    size_t unread = ooo_bytes + early.size();
    return unread >= window_max ? 0 : static_cast<uint32_t>(window_max - unread);
  }

  void send_packet(uint8_t type, uint64_t packet_seq, ByteView body, uint8_t padding = 0) {
    Bytes& out = packet_buffer;  // reused: no allocation per packet
    out.clear();
    write_header(out, Header{type, padding, self.remote_id_, advertised_window(), static_cast<uint32_t>(packet_seq),
                             static_cast<uint32_t>(ack)});
    out.resize(out.size() + padding, 0);
    out.insert(out.end(), body.begin(), body.end());
    self.mux_->socket().send(self.remote_, out);
    self.stats_.packets_sent++;
    self.stats_.bytes_sent += out.size();
  }

  // [start, end) runs of what sits in the out-of-order buffer, at most kMaxSacks.
  Bytes sack_blocks() const {
    Bytes out;
    uint64_t start = 0, end = 0;
    for (const auto& [s, r] : ooo) {
      if (end != start && s == end) {
        end++;
        continue;
      }
      if (end != start) {
        put_u32(out, static_cast<uint32_t>(start));
        put_u32(out, static_cast<uint32_t>(end));
        if (out.size() == kMaxSacks * 8) return out;
      }
      start = s;
      end = s + 1;
    }
    if (end != start) {
      put_u32(out, static_cast<uint32_t>(start));
      put_u32(out, static_cast<uint32_t>(end));
    }
    return out;
  }

  void send_ack() {
    Bytes blocks = sack_blocks();
    send_packet(blocks.empty() ? 0 : kSack, seq, blocks);
    ack_needed = false;
    cancel(ack_timer);
  }

  // One ACK for everything that arrived in this turn of the loop (a burst
  // read with one recvmmsg), not one per packet: half the packets.
  void schedule_ack() {
    if (!ack_timer) arm(ack_timer, 0, &State::on_ack_timer);
  }
  void on_ack_timer() {
    if (ack_needed && !self.closed_) send_ack();
  }

  // --- sending data ---

  Sent& at(uint64_t s) { return outgoing[s - remote_acked]; }

  bool has_new_data() const { return pending_off < pending.size() || (end_wanted && !end_sent); }

  size_t payload_size() const { return mtu - kPacketOverhead; }

  uint32_t rwnd_packets() const {
    return send_rwnd == 0 ? 0 : std::max<uint32_t>(1, static_cast<uint32_t>(send_rwnd / payload_size()));
  }

  void queue(ByteView bytes) {
    pending.insert(pending.end(), bytes.begin(), bytes.end());
    unacked_bytes += bytes.size();
    schedule_flush();
  }

  // Consecutive writes in one loop turn share packets, as libudx does.
  void schedule_flush() {
    if (self.connected_ && !flush_timer) arm(flush_timer, 0, &State::try_send);
  }

  uint64_t packetize() {
    size_t n = std::min(payload_size(), pending.size() - pending_off);
    Sent p;
    p.payload.assign(pending.begin() + pending_off, pending.begin() + pending_off + n);
    p.type = n ? kData : 0;
    if (probe_wanted && !probe_in_flight && n == payload_size()) {
      p.padding = static_cast<uint8_t>(probe_size - mtu);
      probe_wanted = false;
      probe_in_flight = true;
      probe_seq = seq;
    }
    pending_off += n;
    if (pending_off == pending.size()) {
      pending.clear();
      pending_off = 0;
      if (end_wanted) {
        p.type |= kEnd;
        end_sent = true;
        end_seq = seq;
      }
    } else if (pending_off > kCompactPending && pending_off * 2 > pending.size()) {
      pending.erase(pending.begin(), pending.begin() + pending_off);
      pending_off = 0;
    }
    outgoing.push_back(std::move(p));
    return seq++;
  }

  void transmit(uint64_t s) {
    Sent& p = at(s);
    p.sent_at = now();
    p.transmits++;
    p.lost = false;
    inflight++;
    if (p.transmits > 1) self.stats_.retransmits++;
    send_packet(p.type, s, p.payload, p.transmits == 1 ? p.padding : 0);
    if (!rto_timer) arm(rto_timer, rto, &State::on_rto);
  }

  bool next_retransmit(uint64_t& out) {
    while (!retransmits.empty()) {
      uint64_t s = retransmits.front();
      retransmits.pop_front();
      if (s >= remote_acked && at(s).lost) {
        out = s;
        return true;
      }
    }
    return false;
  }

  // Retransmissions need only cwnd room (they are inside the peer's window
  // already); new packets also need the peer's rwnd.
  void try_send() {
    if (!self.connected_ || self.closed_) return;
    uint64_t s;
    bool sent = false;
    self.mux_->socket().cork();  // the burst leaves in as few system calls as the socket can
    while (inflight < cwnd) {
      if (next_retransmit(s)) transmit(s);
      else if (may_send_new()) transmit(packetize());
      else break;
      sent = true;
    }
    self.mux_->socket().uncork();
    cwnd_limited = inflight >= cwnd;
    if (sent || !probe_timer) arm_probe();
    probe_window_if_stuck();
  }

  bool may_send_new() const {
    return inflight < rwnd_packets() && has_new_data() && outgoing.size() < kMaxOutstanding;
  }

  // A zero window with nothing in flight would never reopen: HEARTBEATs make
  // the peer answer with its current rwnd.
  void probe_window_if_stuck() {
    if (send_rwnd > 0 || inflight > 0 || !has_new_data()) {
      cancel(zwp_timer);
      zwp_delay = 0;
      return;
    }
    if (zwp_timer) return;
    zwp_delay = zwp_delay ? std::min(zwp_delay * 2, kMaxRto) : rto;
    arm(zwp_timer, zwp_delay, &State::send_window_probe);
  }

  void send_window_probe() {
    send_packet(kHeartbeat, seq, {});
    probe_window_if_stuck();
  }

  // Tail loss probe (RFC 8985 section 7): when acks stop for 2 srtt, one more
  // packet makes the peer's answer reveal losses without waiting for the RTO.
  void arm_probe() {
    if (outgoing.empty() || probed) return cancel(probe_timer);
    uint64_t pto = have_rtt ? 2 * srtt + (inflight == 1 ? 2 : 0) : kInitialRto;
    arm(probe_timer, std::clamp<uint64_t>(pto, 1, rto), &State::send_probe);
  }

  void send_probe() {
    probed = true;
    if (outgoing.empty()) return;
    if (may_send_new()) return transmit(packetize());
    for (uint64_t s = seq; s-- > remote_acked;) {
      Sent& p = at(s);
      if (p.sacked) continue;
      if (!p.lost) inflight--;  // sent again, still one in flight
      return transmit(s);
    }
  }

  // --- acks in ---

  void sample_rtt(uint64_t rtt) {
    if (!have_rtt) {
      srtt = rtt;
      rttvar = rtt / 2;
      min_rtt = rtt;
      have_rtt = true;
    } else {
      uint64_t delta = rtt > srtt ? rtt - srtt : srtt - rtt;
      rttvar = (3 * rttvar + delta) / 4;
      srtt = (7 * srtt + rtt) / 8;
      min_rtt = std::min(min_rtt, rtt);
    }
    rto = std::clamp(srtt + 4 * rttvar, kMinRto, kMaxRto);
  }

  static bool sent_before(uint64_t t1, uint64_t s1, uint64_t t2, uint64_t s2) {
    return t1 < t2 || (t1 == t2 && s1 < s2);
  }

  // The peer has packet s (cumulative ack or SACK); false if it already had.
  bool delivered(uint64_t s) {
    Sent& p = at(s);
    if (p.sacked) return false;
    p.sacked = true;
    if (p.lost) {
      p.lost = false;  // its entry in `retransmits` goes stale
      if (p.transmits == 1) widen_reorder_window();
    } else {
      inflight--;
    }
    unacked_bytes -= p.payload.size();
    if (probe_in_flight && s == probe_seq) probe_done(p.transmits == 1);
    uint64_t rtt = now() - p.sent_at;
    if (p.transmits == 1) sample_rtt(rtt);  // Karn: retransmits give no samples
    if (p.transmits == 1 || rtt >= min_rtt) {
      rack_rtt = rtt;
      if (!rack_valid || sent_before(rack_sent_at, rack_seq, p.sent_at, s)) {
        rack_sent_at = p.sent_at;
        rack_seq = s;
      }
      rack_valid = true;
    }
    return true;
  }

  uint32_t process_sacks(ByteView blocks) {
    uint32_t n = 0;
    uint32_t base = static_cast<uint32_t>(remote_acked);
    int64_t outstanding = static_cast<int64_t>(seq - remote_acked);
    for (size_t i = 0; i + 8 <= blocks.size() && i < kMaxSacks * 8; i += 8) {
      int64_t start = seq_diff(get_u32(&blocks[i]), base), end = seq_diff(get_u32(&blocks[i + 4]), base);
      if (start < 0 || end <= start || end > outstanding) continue;
      for (int64_t s = start; s < end; s++) n += delivered(remote_acked + s);
    }
    return n;
  }

  uint32_t ack_through(uint64_t new_acked) {
    uint32_t n = 0;
    for (; remote_acked < new_acked; remote_acked++) {
      n += delivered(remote_acked);
      outgoing.pop_front();
    }
    if (phase != Phase::kOpen && remote_acked >= recovery_end) phase = Phase::kOpen;
    if (end_sent && !end_acked && remote_acked > end_seq) {
      end_acked = true;
      ack_needed = true;  // libudx confirms with a state packet
    }
    return n;
  }

  void update_window(const Header& h) {
    if (seq_diff(h.seq, wl1) < 0 || (h.seq == wl1 && seq_diff(h.ack, wl2) < 0)) return;
    send_rwnd = h.rwnd;
    wl1 = h.seq;
    wl2 = h.ack;
  }

  void on_ack(const Header& h, ByteView blocks) {
    int64_t d = seq_diff(h.ack, static_cast<uint32_t>(remote_acked));
    if (d < 0 || static_cast<uint64_t>(d) > seq - remote_acked) return;  // stale, or beyond what we sent
    update_window(h);
    uint32_t n = (h.type & kSack) ? process_sacks(blocks) : 0;
    n += ack_through(remote_acked + d);
    if (moved_at && remote_acked >= *moved_at && !moved_timer) arm(moved_timer, 0, &State::confirm_move);
    if (n == 0) return;
    probed = false;
    start_mtu_search();
    grow_cwnd(n);
    if (remote_acked == seq) cancel(rto_timer);
    else arm(rto_timer, rto, &State::on_rto);
    detect_loss();
  }

  // --- congestion control and loss ---

  void grow_cwnd(uint32_t n) {
    if (phase == Phase::kRecovery || !cwnd_limited) return;
    if (cwnd < ssthresh) {
      cwnd += n;  // one ACK may cover a whole burst
    } else if ((ca_count += n) >= cwnd) {
      ca_count -= cwnd;
      cwnd++;
    }
    cwnd = std::min(cwnd, kMaxCwnd);
  }

  // Multiplicative decrease by 0.7, libudx's (CUBIC) factor.
  uint32_t decreased_cwnd() const { return std::max(cwnd * 7 / 10, kMinCwnd); }

  void on_congestion() {
    if (phase != Phase::kOpen) return;
    ssthresh = decreased_cwnd();
    cwnd = ssthresh;
    ca_count = 0;
    phase = Phase::kRecovery;
    recovery_end = seq;
    if (--recoveries_left == 0) {
      reorder_quarters = 1;
      recoveries_left = kReorderPersist;
    }
  }

  // --- MTU probing ---

  void start_mtu_search() {
    if (mtu_search != MtuSearch::kBase) return;
    if (mtu_max <= mtu) {
      mtu_search = MtuSearch::kDone;
      return;
    }
    mtu_search = MtuSearch::kSearching;
    probe_size = std::min(mtu + kMtuStep, mtu_max);
    probe_wanted = true;
  }

  // The probe arrived padded (mtu grows) or was lost / only its unpadded
  // retransmission arrived (a failure at this size).
  void probe_done(bool arrived) {
    probe_in_flight = false;
    if (arrived) {
      mtu = probe_size;
      probes_lost = 0;
      probe_size = std::min(mtu + kMtuStep, mtu_max);
    } else {
      probes_lost++;
    }
    probe_wanted = mtu < mtu_max && probes_lost < kMtuMaxProbes;
    if (!probe_wanted) mtu_search = MtuSearch::kDone;
    self.stats_.mtu = static_cast<uint32_t>(mtu);
  }

  // A lost probe says the path is too narrow, not that it is congested.
  bool is_pending_probe(uint64_t s) const { return probe_in_flight && s == probe_seq; }

  void mark_lost(uint64_t s) {
    Sent& p = at(s);
    if (p.lost) return;
    if (is_pending_probe(s)) probe_done(false);
    if (p.sacked) {
      p.sacked = false;  // the peer reneged: resend
      unacked_bytes += p.payload.size();
    } else {
      inflight--;
    }
    p.lost = true;
    retransmits.push_back(s);
  }

  uint64_t reorder_window() const { return srtt * reorder_quarters / 4; }

  void widen_reorder_window() {
    reorder_quarters = std::min(reorder_quarters + 1, kMaxReorderQuarters);
    recoveries_left = kReorderPersist;
  }

  // RACK: a packet is lost once one sent after it was delivered and its own
  // ack is more than rack_rtt + reorder window late.
  void detect_loss() {
    cancel(loss_timer);
    if (!rack_valid) return;
    uint64_t t = now(), wait = 0;
    bool lost = false;
    for (size_t i = 0; i < outgoing.size(); i++) {
      const Sent& p = outgoing[i];
      uint64_t s = remote_acked + i;
      // New data goes out in seq order: once a packet sent only once went
      // after the RACK packet, every later one did too (a retransmission only
      // moves later). Without this the scan is the whole window per ACK.
      if (p.transmits == 1 && !sent_before(p.sent_at, s, rack_sent_at, rack_seq)) break;
      if (p.sacked || p.lost || !sent_before(p.sent_at, s, rack_sent_at, rack_seq)) continue;
      uint64_t deadline = p.sent_at + rack_rtt + reorder_window();
      if (deadline <= t) {
        bool probe = is_pending_probe(s);
        mark_lost(s);
        lost |= !probe;
      } else {
        wait = std::max(wait, deadline - t);
      }
    }
    if (lost) on_congestion();
    if (wait) arm(loss_timer, wait, &State::on_loss_timer);
  }

  void on_loss_timer() {
    detect_loss();
    try_send();
  }

  void on_rto() {
    if (outgoing.empty()) return;
    Sent& first = outgoing.front();
    if (first.rto_timeouts >= kMaxRtoTimeouts) return close(kTimedOut);
    first.rto_timeouts++;
    if (first.rto_timeouts == 1 && phase != Phase::kRecovery) ssthresh = decreased_cwnd();
    cwnd = kMinCwnd;
    ca_count = 0;
    phase = Phase::kLoss;
    recovery_end = seq;
    // As Linux does: whatever the peer has not SACKed counts as lost, else
    // packets sent after the last delivery could hold cwnd forever.
    mark_lost(remote_acked);
    for (uint64_t s = remote_acked + 1; s < seq; s++) {
      if (!at(s).sacked) mark_lost(s);
    }
    rto = std::min(rto * 2, kMaxRto);
    arm(rto_timer, rto, &State::on_rto);
    try_send();
    update_stats();
  }

  // --- data in ---

  size_t max_ooo_packets() const { return window_max / 512 + 16; }

  void accept(uint32_t packet_seq, uint8_t type, ByteView payload) {
    if (remote_ended) return;
    uint64_t s = ack + seq_diff(packet_seq, static_cast<uint32_t>(ack));
    if (s - ack >= max_ooo_packets() || ooo.count(s)) return;
    // The next expected packet is always taken once connected (it drains at
    // once); anything else must fit the window we advertised.
    bool drains = s == ack && self.connected_;
    if (drains && ooo.empty()) {  // the common case: straight through, no copy
      ack++;
      if (type & kEnd) remote_ended = true;
      in_order = payload;
      return;
    }
    if (!drains && ooo_bytes + early.size() + payload.size() > window_max) return;
    ooo.emplace(s, Received{static_cast<uint8_t>(type & (kData | kEnd)), to_bytes(payload)});
    ooo_bytes += payload.size();
  }

  bool deliver(ByteView data) {
    if (data.empty()) return true;
    if (!self.connected_) {
      early.insert(early.end(), data.begin(), data.end());
      return true;
    }
    return invoke(self.on_data, data);
  }

  // In-order packets leave the buffer (moved out first: on_data may destroy us).
  bool drain() {
    if (in_order) {
      ByteView data = *in_order;
      in_order.reset();
      if (!deliver(data)) return false;
    }
    while (!remote_ended && !ooo.empty() && ooo.begin()->first == ack) {
      auto node = ooo.extract(ooo.begin());
      ooo_bytes -= node.mapped().data.size();
      ack++;
      if (node.mapped().type & kEnd) remote_ended = true;
      if (!deliver(node.mapped().data)) return false;
    }
    if (remote_ended) {
      ooo.clear();
      ooo_bytes = 0;
    }
    return true;
  }

  bool pass_firewall(const Address& from) {
    if ((self.connected_ && from == self.remote_) || !self.on_firewall) return true;
    auto guard = alive;
    auto hook = self.on_firewall;
    bool ok = hook(from);
    return *guard && !self.closed_ && ok;
  }

  void receive(const Address& from, const Header& h, ByteView body) {
    self.stats_.packets_received++;
    self.stats_.bytes_received += kHeaderSize + body.size();
    if (!pass_firewall(from) || h.data_offset > body.size()) return;
    // SACK blocks run to data_offset (when inside the body), else to the end.
    ByteView blocks = body.first(h.data_offset > 0 && h.data_offset < body.size() ? h.data_offset : body.size());
    ByteView payload = body.subspan(h.data_offset);
    bool current = seq_diff(h.seq, static_cast<uint32_t>(ack)) >= 0;  // else a duplicate
    if (current && (h.type & (kData | kEnd))) accept(h.seq, h.type, payload);
    if (!drain()) return;
    // A reset that loses nothing is a clean close: we ended, the peer
    // acknowledged all our data, and nothing of its is missing before the
    // reset. JavaScript secret streams end that way (the UDX stream is
    // destroyed as the secret stream closes, often before its END goes
    // out), and a blind relay tears a pair down as a peer leaves.
    if (current && (h.type & kDestroy)) return close(lost_nothing(h.seq) ? "" : kReset);
    if ((h.type & kMessage) && !invoke(self.on_message, payload)) return;
    if (h.type & (kData | kEnd | kHeartbeat)) ack_needed = true;
    on_ack(h, blocks);
    finish();
  }

  bool lost_nothing(uint32_t destroy_seq) const {
    return end_sent && unacked_bytes == 0 && pending_off >= pending.size() &&
           seq_diff(destroy_seq, static_cast<uint32_t>(ack)) == 0;
  }

  // After a packet or connect(): owed ACK, then EOF once our ACK covers the
  // peer's END, then a clean close once both directions ended.
  void finish() {
    if (!self.connected_) return;
    // The last ACKs of a stream go at once: it may close right after.
    if (ack_needed) (remote_ended || end_acked) ? send_ack() : schedule_ack();
    if (remote_ended && !end_reported) {
      end_reported = true;
      if (!invoke(self.on_end)) return;
    }
    if (end_reported && end_acked) return close("");
    try_send();
    update_stats();
  }

  // change_remote: everything unacknowledged goes again on the new path, the
  // MTU search starts over, and loss detection forgets the old path's timing.
  void moved() {
    for (uint64_t s = remote_acked; s < seq; s++)
      if (!at(s).sacked) mark_lost(s);
    probe_in_flight = probe_wanted = false;
    probes_lost = 0;
    mtu = kMtuBase;
    mtu_search = MtuSearch::kBase;
    mtu_max = std::clamp(self.mux_->socket().link_mtu(self.remote_), kMtuBase, kMtuMax);
    rack_valid = false;
    moved_at = seq;
    if (remote_acked >= seq) arm(moved_timer, 0, &State::confirm_move);
    if (!retransmits.empty() && !rto_timer) arm(rto_timer, rto, &State::on_rto);
    update_stats();
    try_send();
  }

  void confirm_move() {
    if (!moved_at || remote_acked < *moved_at) return;
    moved_at.reset();
    invoke(self.on_remote_changed);
  }

  void on_connect() {
    size_t link = self.mux_->socket().link_mtu(self.remote_);
    mtu_max = std::clamp(link, kMtuBase, kMtuMax);
    Bytes held = std::move(early);
    early.clear();
    if (!held.empty() && !invoke(self.on_data, ByteView(held))) return;
    finish();
  }

  void update_stats() {
    self.stats_.srtt_ms = srtt;
    self.stats_.rto_ms = rto;
    self.stats_.cwnd = cwnd;
    self.stats_.mtu = static_cast<uint32_t>(mtu);
  }

  // --- the end ---

  // Stops everything without callbacks; the stream stays an inert object.
  void shutdown(bool clean) {
    self.closed_ = true;
    cancel_timers();
    if (clean) {
      self.mux_->linger(self.id_, Mux::Linger{self.remote_, self.remote_id_, static_cast<uint32_t>(seq),
                                              static_cast<uint32_t>(ack), now() + kLingerMs});
    }
    self.mux_->release(self);
    pending.clear();
    outgoing.clear();
    retransmits.clear();
    ooo.clear();
    early.clear();
    ooo_bytes = 0;
    update_stats();
  }

  // The last thing any caller does: on_close may destroy the stream.
  void close(const std::string& error) {
    shutdown(error.empty());
    auto callback = self.on_close;
    if (callback) callback(error);
  }

  // The Mux goes away first: no clock or socket any more.
  void detach() {
    cancel_timers();
    self.closed_ = true;
    self.mux_ = nullptr;
  }
};

// --- Stream ---

Stream::Stream(Mux& mux, uint32_t id) : mux_(&mux), id_(id), state_(std::make_unique<State>(*this)) {
  state_->update_stats();
}

Stream::~Stream() {
  destroy();
  *state_->alive = false;
}

void Stream::connect(const Address& remote, uint32_t remote_id) {
  if (closed_ || connected_) return;
  remote_ = remote;
  remote_id_ = remote_id;
  connected_ = true;
  state_->on_connect();
}

void Stream::move_to(Mux& mux) {
  if (&mux == mux_) return;
  mux_->release(*this);
  mux.streams_[id_] = this;
  mux_ = &mux;
}

bool Stream::attach(Mux& mux) {
  if (closed_ || connected_ || &mux.clock() != &mux_->clock()) return false;
  if (&mux != mux_ && mux.streams_.count(id_)) return false;
  move_to(mux);
  return true;
}

bool Stream::change_remote(Mux& mux, const Address& remote, uint32_t remote_id) {
  if (closed_ || !connected_ || &mux.clock() != &mux_->clock()) return false;
  if (&mux != mux_ && mux.streams_.count(id_)) return false;
  move_to(mux);
  remote_ = remote;
  remote_id_ = remote_id;
  state_->moved();
  return true;
}

void Stream::relay_to(Stream& destination, uint32_t peer_id) {
  if (closed_ || connected_ || &destination == this) return;
  relay_ = &destination;
  remote_id_ = peer_id;
}

void Stream::relay_packet(const Address& from, const Header& h, ByteView datagram) {
  if (!relay_peer_known_) {
    if (from.port == 0) return;
    remote_ = from;  // the first sender is the peer (libudx's relay firewall)
    relay_peer_known_ = true;
  } else if (from != remote_) {
    return;
  }
  stats_.packets_received++;
  stats_.bytes_received += datagram.size();
  if (seq_diff(h.seq + 1, relay_seq_) > 0) relay_seq_ = h.seq + 1;
  Stream& to = *relay_;
  if (to.relay_peer_known_) {
    Bytes out(datagram.begin(), datagram.end());
    uint32_t id = to.remote_id_;
    for (int i = 0; i < 4; i++) out[4 + i] = static_cast<uint8_t>(id >> (8 * i));  // the id field
    to.mux_->socket().send(to.remote_, out);
    to.stats_.packets_sent++;
    to.stats_.bytes_sent += out.size();
  }
  if (h.type & kDestroy) end_relay(true);
}

// Both ends close. Unless a peer's DESTROY just passed through (and went
// on), both peers hear one, at a seq past the last packet each received
// through us. on_close: the other end always, this one only when its peer
// ended it (an owner destroying a stream hears nothing, as with destroy()).
void Stream::end_relay(bool peer_destroyed) {
  Stream* other = relay_;
  if (!other) return;
  relay_ = other->relay_ = nullptr;
  auto tell = [](Stream& s, uint32_t seq) {
    if (!s.relay_peer_known_ || !s.mux_) return;
    Bytes out;
    write_header(out, Header{kDestroy, 0, s.remote_id_, 0, seq, 0});
    s.mux_->socket().send(s.remote_, out);
  };
  if (!peer_destroyed) {
    tell(*this, other->relay_seq_);
    tell(*other, relay_seq_);
  }
  for (Stream* s : {this, other}) {
    if (s->mux_) s->mux_->release(*s);
    s->closed_ = true;
  }
  auto theirs = other->on_close;
  auto mine = peer_destroyed ? on_close : nullptr;
  auto guard = state_->alive;
  if (theirs) theirs(kReset);
  if (*guard && mine) mine(kReset);
}

void Stream::write(ByteView bytes) {
  if (closed_ || state_->end_wanted || bytes.empty()) return;
  state_->queue(bytes);
}

void Stream::end() {
  if (closed_ || state_->end_wanted) return;
  state_->end_wanted = true;
  state_->schedule_flush();
}

void Stream::destroy() {
  if (relay_) return end_relay(false);
  if (closed_) return;
  if (connected_) state_->send_packet(kDestroy, state_->seq++, {});  // consumes a seq, as libudx's does
  state_->shutdown(false);
}

void Stream::send_message(ByteView message) {
  if (closed_ || !connected_ || message.size() > kMaxPayload) return;
  state_->send_packet(kMessage, state_->seq, message);
}

void Stream::set_receive_window(uint32_t bytes) {
  state_->window_max = std::max<uint32_t>(bytes, kMaxPayload);
}

size_t Stream::buffered() const { return state_->unacked_bytes; }

void Stream::on_packet(const Address& from, const Header& h, ByteView body) { state_->receive(from, h, body); }

// --- Mux ---

Mux::Mux(dht::Clock& clock, dht::DatagramSocket& socket) : clock_(clock), socket_(socket) {}

Mux::~Mux() {
  auto streams = std::move(streams_);
  for (auto& [id, s] : streams) s->state_->detach();
}

bool Mux::handle(const Address& from, ByteView datagram) {
  auto h = read_header(datagram);
  if (!h) return false;
  auto it = streams_.find(h->id);
  if (it != streams_.end() && it->second->relaying()) {
    it->second->relay_packet(from, *h, datagram);
    return true;
  }
  if (it == streams_.end() && borrow_from_) {
    auto lent = borrow_from_->streams_.find(h->id);
    if (lent != borrow_from_->streams_.end() && lent->second->attach(*this)) it = streams_.find(h->id);
  }
  if (it == streams_.end()) return answer_lingering(from, *h);
  // Nothing here may touch `this` afterwards: a callback may destroy the Mux.
  it->second->on_packet(from, *h, datagram.subspan(kHeaderSize));
  return true;
}

std::unique_ptr<Stream> Mux::create_stream() {
  uint32_t id = 0;
  do {
    crypto::random_bytes(reinterpret_cast<uint8_t*>(&id), sizeof id);
  } while (streams_.count(id) || lingering_.count(id));
  std::unique_ptr<Stream> s(new Stream(*this, id));
  streams_[id] = s.get();
  return s;
}

void Mux::release(const Stream& s) {
  auto it = streams_.find(s.id());
  if (it != streams_.end() && it->second == &s) streams_.erase(it);
}

void Mux::linger(uint32_t id, const Linger& l) {
  if (lingering_.size() >= kMaxLingering) {
    std::erase_if(lingering_, [&](const auto& e) { return e.second.until <= clock_.now_ms(); });
  }
  if (lingering_.size() >= kMaxLingering) lingering_.erase(lingering_.begin());
  lingering_[id] = l;
}

bool Mux::answer_lingering(const Address& from, const Header& h) {
  auto it = lingering_.find(h.id);
  if (it == lingering_.end()) return false;
  const Linger& l = it->second;
  if (l.until <= clock_.now_ms()) {
    lingering_.erase(it);
    return false;
  }
  if (from == l.remote && (h.type & (kData | kEnd))) {
    Bytes out;
    write_header(out, Header{0, 0, l.remote_id, kDefaultWindow, l.seq, l.ack});
    socket_.send(l.remote, out);
  }
  return true;
}

}  // namespace p2p::udx
