#include "net/dht_nat.h"

#include <map>

namespace p2p::dht {

void NatSampler::add(const Address& seen_as) {
  samples_.push_back(seen_as);
  if (samples_.size() > kWindow) samples_.erase(samples_.begin());
}

std::optional<Address> NatSampler::address() const {
  if (samples_.empty()) return std::nullopt;
  size_t n = samples_.size();
  // nat-sampler's tolerance: all of the first few, then all but one to three.
  size_t threshold = n - (n < 4 ? 0 : n < 8 ? 1 : n < 12 ? 2 : 3);
  std::map<Address, size_t> exact;
  std::map<std::array<uint8_t, 4>, size_t> hosts;
  for (const auto& a : samples_) {
    exact[a]++;
    hosts[a.ip]++;
  }
  for (const auto& [a, count] : exact)
    if (count >= threshold) return a;
  for (const auto& [ip, count] : hosts)
    if (count >= threshold) return Address{ip, 0};
  return std::nullopt;
}

}  // namespace p2p::dht
