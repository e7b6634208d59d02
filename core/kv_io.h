// The text forms of key-value entries shared by `kv list`, `kv export` and
// `kv import`, so export | import round-trips:
//  - JSON lines: {"key":K,"value":V}, each string UTF-8 as is, or base64 with
//    "keyEncoding":"base64" / "encoding":"base64" for bytes that are not UTF-8;
//  - TSV: KEY <tab> VALUE, with \\ \t \n \r and \xNN escapes for other
//    control bytes, backslashes and bytes that are not UTF-8.
#pragma once

#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::kv_io {

struct Record {
  Bytes key;
  Bytes value;
};

std::string escape(ByteView bytes);
Result<Bytes> unescape(std::string_view text);
std::string tsv_line(ByteView key, ByteView value);  // without the newline
std::string json_line(ByteView key, const ByteView* value);  // value null: key only
// One line of either form (JSON when it starts with '{').
Result<Record> parse_line(std::string_view line);

}  // namespace p2p::kv_io
