#include "tools/cli.h"

#include "core/identity.h"
#include "tools/dht_client.h"
#include "core/keys.h"
#include "net/remote.h"

#include <unistd.h>

#include <chrono>
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

bool Context::progress_allowed() const { return !quiet && !json; }

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

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), start_ms_(now_ms()), tty_(enabled && ::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (shown_) std::cerr << "\r\033[K" << std::flush;
}

void ProgressBar::update(uint64_t done) {
  if (!tty_) return;
  int64_t now = now_ms();
  if (now - start_ms_ < 1000 || now - last_ms_ < 100) return;
  last_ms_ = now;
  shown_ = true;
  double mib = done / 1048576.0, secs = (now - start_ms_) / 1000.0;
  std::string bar;
  if (total_ > 0) {
    int filled = static_cast<int>(30.0 * std::min<uint64_t>(done, total_) / total_);
    bar = "[" + std::string(filled, '#') + std::string(30 - filled, ' ') + "] ";
    bar += std::to_string(std::min<uint64_t>(100, done * 100 / total_)) + "% ";
  }
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.1f MiB, %.1f MiB/s", mib, mib / secs);
  std::cerr << "\r\033[K" << label_ << " " << bar << rate << std::flush;
}

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

namespace p2p::cli {

void add_remote_options(CLI::App* cmd, RemoteOptions& r) {
  cmd->add_option("--peer", r.peer, "Fetch what is missing from this peer (HOST:PORT, e.g. one running 'p2p seed')");
  cmd->add_option("--from", r.from, std::string("Read this core, bee or drive from the network: ") + keys::accepted_forms());
  cmd->add_flag("-v,--verbose", r.verbose, "Report the blocks fetched from the peer and the time taken");
  cmd->add_option("--timeout", r.timeout_s, "Without --peer: how long to look for a peer on the DHT (seconds)")
      ->capture_default_str();
}

static std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

static Result<std::unique_ptr<net::PeerClient>> connect_peer(Context& ctx, const RemoteOptions& r, const Key32& key) {
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  std::optional<Key32> primary;
  auto pass = ctx.passphrase();
  if (!pass.ok()) return pass.status();
  if (auto k = identity::load((*home)->path(), *pass); k.ok()) primary = *k;
  if (!r.peer.empty()) return net::PeerClient::connect(r.peer, net::connection_key_pair(primary));
  // No address: find a peer holding the core through the DHT.
  auto nodes = bootstrap_nodes(ctx, true);
  if (!nodes.ok()) return nodes.status();
  dht::RuntimeOptions o;
  o.bootstrap = std::move(*nodes);
  o.nodes_file = dht_nodes_file(ctx);
  uint64_t ms = r.timeout_s <= 0 ? 24 * 3600 * 1000ull : static_cast<uint64_t>(r.timeout_s * 1000);
  auto client = net::PeerClient::connect_dht(std::move(o), key, net::connection_key_pair(primary), ms);
  if (!client.ok() && client.status().code() == ErrorCode::not_found) {
    return error(ErrorCode::not_found, "no peer holding p2p://" + keys::to_z32(key) + " found on the DHT within " +
                                           fmt_seconds(r.timeout_s) + " s; is it seeded ('p2p seed') and are you on the same DHT " +
                                           "(--bootstrap)? Or name a peer with --peer HOST:PORT");
  }
  return client;
}

static Result<Key32> remote_key(const RemoteOptions& r, const std::string& target) {
  const std::string& text = r.from.empty() ? target : r.from;
  if (!r.from.empty() && !target.empty() && target != r.from)
    return invalid_argument("give the core either as an argument or with --from, not both");
  if (text.empty()) return invalid_argument("which core? give its key or --from LINK");
  auto key = keys::parse(text);
  if (!key) return invalid_argument("'" + text + "' is not a key; reading from a peer needs " + keys::accepted_forms());
  return *key;
}

Result<PeerConnection> connect_remote(Context& ctx, const RemoteOptions& r, const std::string& target) {
  PeerConnection out;
  auto key = remote_key(r, target);
  if (!key.ok()) return key.status();
  out.key = *key;
  out.started_ms = now_ms();
  auto client = connect_peer(ctx, r, out.key);
  if (!client.ok()) return client.status();
  out.client = std::move(*client);
  return out;
}

void report_fetched(Context& ctx, const RemoteOptions& r, const PeerConnection& peer) {
  if (!peer.client || !r.verbose || ctx.quiet) return;
  uint64_t n = peer.client->blocks_fetched();
  std::cerr << "fetched " << n << (n == 1 ? " block (" : " blocks (") << peer.client->bytes_fetched() << " bytes) from "
            << peer.client->address() << " in " << (now_ms() - peer.started_ms) << " ms\n";
}

}  // namespace p2p::cli
