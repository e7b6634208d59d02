#include "core/identity.h"

#include <cctype>

#include "core/corestore.h"
#include "storage/files.h"

namespace p2p::identity {

namespace {

constexpr size_t kMaxIdentityFile = 4096;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

const Hash32& p2p_namespace() {
  static const Hash32 ns = Corestore::child_namespace(kDefaultNamespace, "p2p");
  return ns;
}

std::string file_text(const Key32& key, const std::optional<std::string>& passphrase) {
  return (passphrase ? export_sealed(key, *passphrase) : export_plain(key)) + "\n";
}

}  // namespace

crypto::KeyPair signing_key_pair(const Key32& primary_key) {
  return Corestore::derive_key_pair(primary_key, p2p_namespace(), "identity");
}

crypto::KeyPair noise_key_pair(const Key32& primary_key) {
  return Corestore::derive_key_pair(primary_key, p2p_namespace(), "noise");
}

std::string export_plain(const Key32& primary_key) { return to_hex(primary_key); }

std::string export_sealed(const Key32& primary_key, std::string_view passphrase) {
  return std::string(kSealedPrefix) + to_hex(crypto::seal(primary_key, passphrase));
}

bool is_sealed(std::string_view text) { return trim(text).substr(0, kSealedPrefix.size()) == kSealedPrefix; }

Result<Key32> parse(std::string_view text, const std::optional<std::string>& passphrase) {
  text = trim(text);
  if (is_sealed(text)) {
    if (!passphrase)
      return error(ErrorCode::permission, "the identity is sealed with a passphrase; pass --passphrase-file FILE");
    auto sealed = from_hex(text.substr(kSealedPrefix.size()));
    if (!sealed) return corruption("sealed identity: not valid hex");
    auto plain = crypto::unseal(*sealed, *passphrase);
    if (!plain.ok()) return plain.status();
    if (plain->size() != 32) return corruption("sealed identity: unexpected secret length");
    Key32 key{};
    std::copy(plain->begin(), plain->end(), key.begin());
    return key;
  }
  auto key = key_from_hex(text);
  if (!key) return invalid_argument("an identity is 64 hex characters or a sealed form starting with '" +
                                    std::string(kSealedPrefix) + "'");
  return *key;
}

std::string file_path(const std::string& home) { return home + "/identity"; }

Result<Key32> load(const std::string& home, const std::optional<std::string>& passphrase) {
  auto text = storage::read_file(file_path(home), kMaxIdentityFile);
  if (!text.ok()) return text.status();
  auto key = parse(as_chars(*text), passphrase);
  if (!key.ok() && key.status().code() == ErrorCode::invalid_argument)
    return corruption(file_path(home) + " is damaged: " + key.status().message());
  return key;
}

Result<bool> stored_is_sealed(const std::string& home) {
  auto text = storage::read_file(file_path(home), kMaxIdentityFile);
  if (!text.ok()) return text.status();
  return is_sealed(as_chars(*text));
}

Result<bool> create(const std::string& home, const Key32& primary_key, const std::optional<std::string>& passphrase) {
  P2P_TRY(storage::ensure_dir(home));
  return storage::create_file_exclusive(file_path(home), as_bytes(file_text(primary_key, passphrase)));
}

Status replace(const std::string& home, const Key32& primary_key, const std::optional<std::string>& passphrase) {
  P2P_TRY(storage::ensure_dir(home));
  return storage::replace_file(file_path(home), as_bytes(file_text(primary_key, passphrase)));
}

}  // namespace p2p::identity
