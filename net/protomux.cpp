#include "net/protomux.h"

#include <cstdio>
#include <cstdlib>

#include "core/encoding.h"

namespace p2p::net {

namespace {

constexpr size_t kMaxProtocolName = 256;
constexpr size_t kMaxChannelIdSize = 256;
constexpr uint64_t kMaxRemoteId = 1u << 30;
// One batched message can be as large as a whole frame (a 16 MiB block).
constexpr size_t kMaxEntry = (1u << 24) - 1;

bool tracing() {
  static const bool on = [] {
    const char* v = std::getenv("P2P_TRACE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

Status malformed(const std::string& what) { return corruption("protomux: " + what); }

}  // namespace

Result<uint64_t> Mux::open(const std::string& protocol, ByteView id, ByteView handshake, ChannelHandler* handler) {
  if (channels_.size() >= kMaxChannels) return invalid_argument("too many channels on one connection");
  uint64_t local = next_id_++;
  channels_[local] = Channel{protocol, to_bytes(id), handler, 0, false};
  enc::Encoder e;
  e.uint(0);
  e.uint(1);
  e.uint(local);
  e.string(protocol);
  e.uint(id.size());  // optionalBuffer: length-prefixed, 0 when absent
  e.raw(id);
  e.raw(handshake);
  uncork_pending();
  send_(e.bytes());
  for (auto it = held_.begin(); it != held_.end(); ++it) {
    if (it->protocol != protocol || it->id != to_bytes(id)) continue;
    HeldOpen held = std::move(*it);
    held_.erase(it);
    P2P_TRY(on_remote_open(held.remote_id, held.protocol, held.id, held.handshake));
    break;
  }
  return local;
}

bool Mux::is_open(uint64_t channel) const {
  auto it = channels_.find(channel);
  return it != channels_.end() && it->second.opened;
}

void Mux::send(uint64_t channel, uint64_t type, ByteView payload) {
  if (!is_open(channel)) return;
  if (corked_ > 0) {
    enc::Encoder entry;
    entry.uint(type);
    entry.raw(payload);
    enc::Encoder e;
    if (batch_.empty()) {
      batch_channel_ = channel;
      e.uint(0);
      e.uint(0);
      e.uint(channel);
    } else if (batch_channel_ != channel) {
      e.uint(0);  // a zero-length entry switches channel
      e.uint(channel);
      batch_channel_ = channel;
    }
    e.buffer(entry.bytes());
    batch_.insert(batch_.end(), e.bytes().begin(), e.bytes().end());
    if (batch_.size() >= kMaxBatch) uncork_pending();
    return;
  }
  enc::Encoder e;
  e.uint(channel);
  e.uint(type);
  e.raw(payload);
  send_(e.bytes());
}

void Mux::uncork() {
  if (corked_ > 0 && --corked_ == 0) uncork_pending();
}

void Mux::uncork_pending() {
  if (batch_.empty()) return;
  Bytes frame = std::move(batch_);
  batch_.clear();
  send_(frame);
}

void Mux::close(uint64_t channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  uncork_pending();
  enc::Encoder e;
  e.uint(0);
  e.uint(3);
  e.uint(channel);
  send_(e.bytes());
  drop(channel, false);
}

void Mux::drop(uint64_t local_id, bool notify) {
  auto it = channels_.find(local_id);
  if (it == channels_.end()) return;
  ChannelHandler* handler = it->second.handler;
  if (it->second.remote_id) by_remote_.erase(it->second.remote_id);
  channels_.erase(it);
  if (notify && handler) handler->on_close();
}

Result<size_t> Mux::on_batch(uint64_t channel, ByteView entries) {
  enc::Decoder d(entries);
  size_t used = 0;
  while (!d.done()) {
    if (full_ && full_()) {
      held_batch_ = HeldBatch{channel, {}, 0};
      return used;
    }
    ByteView entry = d.buffer(kMaxEntry);
    if (!d.ok()) return malformed("truncated batch");
    if (entry.empty()) {
      channel = d.uint();
      if (!d.ok()) return malformed("truncated batch");
    } else if (channel == 0) {  // control messages may be batched too
      enc::Decoder c(entry);
      uint64_t control = c.uint();
      if (!c.ok() || control == 0) return malformed("bad control message in a batch");
      P2P_TRY(on_control(control, c.rest()));
    } else {
      P2P_TRY(deliver(channel, entry));
    }
    used = entries.size() - d.remaining();
  }
  return used;
}

Status Mux::resume() {
  if (!held_batch_) return {};
  HeldBatch held = std::move(*held_batch_);
  held_batch_.reset();
  ByteView rest = ByteView(held.entries).subspan(held.pos);
  auto used = on_batch(held.channel, rest);
  if (!used.ok()) return used.status();
  if (held_batch_) {  // stopped again: keep the same bytes, further on
    held_batch_->entries = std::move(held.entries);
    held_batch_->pos = held.pos + *used;
  }
  return {};
}

Status Mux::drain() {
  std::vector<ChannelHandler*> handlers;
  for (auto& [id, ch] : channels_)
    if (ch.opened && ch.handler) handlers.push_back(ch.handler);
  for (ChannelHandler* h : handlers) P2P_TRY(h->on_drain());
  return {};
}

void Mux::shutdown() {
  while (!channels_.empty()) drop(channels_.begin()->first, true);
}

Status Mux::receive(ByteView frame) {
  if (tracing())
    std::fprintf(stderr, "[p2p] mux <- %s\n", to_hex(frame.subspan(0, std::min<size_t>(frame.size(), 40))).c_str());
  enc::Decoder d(frame);
  uint64_t channel = d.uint();
  if (!d.ok()) return malformed("empty frame");
  if (channel != 0) return deliver(channel, d.rest());
  uint64_t type = d.uint();
  if (!d.ok()) return malformed("truncated control frame");
  return on_control(type, d.rest());
}

Status Mux::on_control(uint64_t type, ByteView rest) {
  enc::Decoder d(rest);
  switch (type) {
    case 0: {  // batch
      uint64_t channel = d.uint();
      if (!d.ok()) return malformed("truncated batch");
      ByteView entries = d.rest();
      auto used = on_batch(channel, entries);
      if (!used.ok()) return used.status();
      if (held_batch_) held_batch_->entries = to_bytes(entries.subspan(*used));  // copied once
      return {};
    }
    case 1: {  // open
      uint64_t remote_id = d.uint();
      std::string protocol = d.string(kMaxProtocolName);
      ByteView id = d.buffer(kMaxChannelIdSize);
      if (!d.ok() || remote_id == 0 || remote_id > kMaxRemoteId) return malformed("bad open");
      return on_remote_open(remote_id, protocol, id, d.rest());
    }
    case 2:    // reject: our open was refused
    case 3: {  // close: the remote closed its side
      uint64_t id = d.uint();
      if (!d.ok()) return malformed("bad close");
      if (type == 2) {
        drop(id, true);
      } else if (auto it = by_remote_.find(id); it != by_remote_.end()) {
        drop(it->second, true);
      }
      return {};
    }
    default:
      return {};  // unknown control messages are ignored, as protomux does
  }
}

Status Mux::on_remote_open(uint64_t remote_id, const std::string& protocol, ByteView id, ByteView handshake) {
  if (by_remote_.count(remote_id)) return malformed("channel " + std::to_string(remote_id) + " opened twice");
  auto waiting = [&]() -> Channel* {
    for (auto& [local, ch] : channels_)
      if (ch.remote_id == 0 && ch.protocol == protocol && ch.id.size() == id.size() &&
          std::equal(ch.id.begin(), ch.id.end(), id.begin()))
        return &ch;
    return nullptr;
  };
  Channel* ch = waiting();
  if (!ch && pair_) {
    pair_(protocol, id);
    ch = waiting();
  }
  if (!ch && hold_unmatched_ && held_.size() < kMaxHeldOpens) {
    for (const HeldOpen& h : held_)
      if (h.remote_id == remote_id) return malformed("channel " + std::to_string(remote_id) + " opened twice");
    held_.push_back({remote_id, protocol, to_bytes(id), to_bytes(handshake)});
    return {};
  }
  if (!ch) {
    enc::Encoder e;
    e.uint(0);
    e.uint(2);
    e.uint(remote_id);
    uncork_pending();
    send_(e.bytes());
    return {};
  }
  ch->remote_id = remote_id;
  ch->opened = true;
  uint64_t local_id = 0;
  for (auto& [local, c] : channels_)
    if (&c == ch) local_id = local;
  by_remote_[remote_id] = local_id;
  if (!ch->handler) return {};
  return ch->handler->on_open(local_id, handshake);
}

Status Mux::deliver(uint64_t remote_id, ByteView message) {
  auto it = by_remote_.find(remote_id);
  if (it == by_remote_.end()) return {};  // a channel we closed or never knew: ignore
  enc::Decoder d(message);
  uint64_t type = d.uint();
  if (!d.ok()) return malformed("message without a type");
  ChannelHandler* handler = channels_[it->second].handler;
  if (!handler) return {};
  return handler->on_message(type, d.rest());
}

}  // namespace p2p::net
