// The one root secret of a home: the 32-byte Corestore primary key. The
// identity key pair, the Noise key pair and every named core derive from it.
// It is kept in `<home>/identity` (mode 0600) in its export form: 64 hex
// characters, or sealed with a passphrase (Argon2id + secretbox).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "core/crypto.h"

namespace p2p::identity {

// Prefix of the sealed export form; the rest is hex.
constexpr std::string_view kSealedPrefix = "p2p-sealed-key:";

// The namespace under which p2p derives its own key pairs, apart from user cores:
// JavaScript `store.namespace('p2p').createKeyPair('identity' | 'noise')`.
crypto::KeyPair signing_key_pair(const Key32& primary_key);
crypto::KeyPair noise_key_pair(const Key32& primary_key);

std::string export_plain(const Key32& primary_key);
std::string export_sealed(const Key32& primary_key, std::string_view passphrase);
bool is_sealed(std::string_view text);
// Parses either export form (surrounding whitespace ignored). A sealed form
// without a passphrase is ErrorCode::permission; a wrong one too.
Result<Key32> parse(std::string_view text, const std::optional<std::string>& passphrase);

std::string file_path(const std::string& home);
// The stored primary key; not_found when the home has no identity yet.
Result<Key32> load(const std::string& home, const std::optional<std::string>& passphrase);
// Whether the stored identity is sealed (not_found when there is none).
Result<bool> stored_is_sealed(const std::string& home);
// Stores a new identity unless one exists; false when one already did.
Result<bool> create(const std::string& home, const Key32& primary_key,
                    const std::optional<std::string>& passphrase);
// Replaces the stored identity (import --force).
Status replace(const std::string& home, const Key32& primary_key, const std::optional<std::string>& passphrase);

}  // namespace p2p::identity
