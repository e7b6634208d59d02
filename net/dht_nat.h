// Our address as other nodes see it, from the `to` field of their replies
// (as nat-sampler does): a host:port most samples agree on, or only a host
// when the port differs between samples (a NAT that picks a new port per
// destination), or nothing yet.
#pragma once

#include <optional>
#include <vector>

#include "net/dht_messages.h"

namespace p2p::dht {

enum class Firewall { unknown = 0, open = 1, consistent = 2, random = 3 };  // hyperdht's numbers

class NatSampler {
 public:
  void add(const Address& seen_as);
  size_t size() const { return samples_.size(); }
  // Set when enough samples agree; port 0 when only the host does.
  std::optional<Address> address() const;

 private:
  static constexpr size_t kWindow = 16;
  std::vector<Address> samples_;  // newest last
};

}  // namespace p2p::dht
