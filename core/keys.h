// Textual forms of 32-byte keys: z-base-32 (as Pear shows them), hex, and
// p2p:// or pear:// links.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"

namespace p2p::keys {

std::string to_z32(ByteView bytes);
std::optional<Bytes> from_z32(std::string_view text);
std::string link(const Key32& key);  // p2p://<z-base-32>
// Accepts 52 z-base-32 characters, 64 hex characters, or either behind a
// p2p:// or pear:// prefix (a trailing slash or path is ignored).
std::optional<Key32> parse(std::string_view text);
// Whether `text` is meant as a key (a link, or hex / z-base-32 of key length)
// rather than a name, even if it then fails to parse.
bool looks_like_key(std::string_view text);
// One line naming the accepted forms, for error messages.
const char* accepted_forms();

}  // namespace p2p::keys
