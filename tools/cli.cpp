#include "tools/cli.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "storage/files.h"

namespace p2p::cli {

int exit_code(const Status& s) {
  if (s.ok()) return kOk;
  return s.code() == ErrorCode::invalid_argument ? kUsage : kFailure;
}

static const char* code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::ok: return "ok";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::invalid_argument: return "usage";
    case ErrorCode::corruption: return "corruption";
    case ErrorCode::verification: return "verification";
    case ErrorCode::io: return "io";
    case ErrorCode::permission: return "permission";
    case ErrorCode::unsupported: return "unsupported";
  }
  return "error";
}

int Context::fail(const Status& s) {
  if (json) {
    nlohmann::json e = {{"error", s.message()}, {"code", code_name(s.code())}, {"exitCode", exit_code(s)}};
    std::cerr << e.dump() << "\n";
  } else {
    std::cerr << "p2p: " << s.message() << "\n";
  }
  return exit_code(s);
}

void Context::info(const std::string& message) {
  if (!quiet && !json) std::cerr << message << "\n";
}

void Context::emit(const nlohmann::json& object) {
  std::cout << object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

Result<std::optional<std::string>> Context::passphrase() {
  std::string file = passphrase_file;
  if (file.empty())
    if (const char* env = std::getenv("P2P_PASSPHRASE_FILE")) file = env;
  if (file.empty()) return std::optional<std::string>{};
  auto bytes = storage::read_file(file, 64 * 1024);
  if (!bytes.ok()) {
    if (bytes.status().is_not_found()) return invalid_argument("passphrase file " + file + " does not exist");
    return bytes.status();
  }
  std::string pass(as_chars(*bytes));
  // The first line is the passphrase, so `echo secret > file` works.
  if (auto nl = pass.find('\n'); nl != std::string::npos) pass.resize(nl);
  if (!pass.empty() && pass.back() == '\r') pass.pop_back();
  if (pass.empty()) return invalid_argument("passphrase file " + file + " is empty");
  return std::optional<std::string>(pass);
}

Result<Home*> Context::home() {
  if (!home_) {
    auto pass = passphrase();
    if (!pass.ok()) return pass.status();
    auto h = Home::open(HomeOptions{home_path, *pass});
    if (!h.ok()) return h.status();
    home_ = std::move(*h);
  }
  return home_.get();
}

void Context::note_identity_created() {
  if (!home_ || !home_->created_identity() || told_identity_) return;
  told_identity_ = true;
  // Said even under --quiet: losing this key loses write access to every core.
  std::string text = "created a new identity in " + home_->path() + " (back it up with 'p2p id export')";
  if (json)
    std::cerr << nlohmann::json{{"notice", text}}.dump() << "\n";
  else
    std::cerr << "p2p: " << text << "\n";
}

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

Result<Bytes> read_stdin(size_t limit) {
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read standard input");
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit)
      return invalid_argument("standard input is larger than " + std::to_string(limit) + " bytes");
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

void put_value(nlohmann::json& out, const std::string& field, ByteView value) {
  if (is_valid_utf8(value)) {
    out[field] = std::string(as_chars(value));
  } else {
    out[field] = to_base64(value);
    out["encoding"] = "base64";
  }
}

}  // namespace p2p::cli
