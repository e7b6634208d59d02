// Internal to core/: how a core's header and tree nodes are stored (see
// docs/storage.md), shared by the log and its replication half.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "core/log.h"

namespace p2p::detail {

// cores table value (compact encoding):
//   u8 format (1), uint local id, buffer manifest, uint length,
//   uint byte length, uint fork, buffer signature
constexpr uint8_t kHeaderFormat = 1;
// meta table key of the next local core id.
constexpr std::string_view kNextCoreId = "next-core-id";
// tree table value: u64le size || hash(32).
constexpr size_t kTreeValueSize = 40;

struct Header {
  uint64_t local_id = 0;
  Bytes manifest;
  CoreState state;
};

Bytes encode_header(const Header& h);
Result<Header> decode_header(ByteView b, const std::string& label);
std::array<uint8_t, kTreeValueSize> encode_node(const merkle::Node& n);
std::optional<merkle::Node> decode_node(uint64_t index, ByteView v);
Result<uint64_t> allocate_local_id(storage::WriteTxn& txn);

// Reads trusted nodes of one core through a transaction.
class TxnNodes : public merkle::NodeSource {
 public:
  TxnNodes(storage::ReadTxn& txn, uint64_t id) : txn_(txn), id_(id) {}
  std::optional<merkle::Node> node(uint64_t index) override {
    auto v = txn_.get(storage::Table::tree, storage::pair_key(id_, index));
    if (!v) return std::nullopt;
    return decode_node(index, *v);
  }

 private:
  storage::ReadTxn& txn_;
  uint64_t id_;
};

}  // namespace p2p::detail
