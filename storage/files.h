// The home folder and small secret files beside the LMDB environment.
#pragma once

#include <string>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::storage {

// $P2P_HOME, else ${XDG_DATA_HOME:-$HOME/.local/share}/p2p.
std::string default_home();
// Creates the folder (and parents) with mode 0700 when missing.
Status ensure_dir(const std::string& dir);
// not_found when the file does not exist. Reads at most `max_size` bytes.
Result<Bytes> read_file(const std::string& path, size_t max_size);
// Writes a new file with mode 0600, fsynced, atomically. Yields false, and
// leaves the file untouched, when it already exists (another process won).
Result<bool> create_file_exclusive(const std::string& path, ByteView contents);
// Replaces a file atomically (write to a temporary, fsync, rename).
Status replace_file(const std::string& path, ByteView contents);

}  // namespace p2p::storage
