// What every command shares: global options, opening the home, and the
// output conventions (data on stdout, messages on stderr, --json, exit codes).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "core/home.h"
#include "net/peer_client.h"

namespace p2p::cli {

enum Exit : int { kOk = 0, kFailure = 1, kUsage = 2 };

struct Context {
  std::string home_path;        // --home, else P2P_HOME / XDG default
  std::string passphrase_file;  // --passphrase-file, else P2P_PASSPHRASE_FILE
  bool json = false;            // --json
  bool quiet = false;           // --quiet: no informational messages
  std::string bootstrap;        // --bootstrap HOST:PORT,...: the DHT to join (else P2P_BOOTSTRAP)

  // Set by a subcommand's callback; runs after parsing succeeded.
  std::function<int()> run;

  // Opens the home once; reports a newly created identity on stderr.
  Result<Home*> home();
  Result<std::optional<std::string>> passphrase();
  // Reports the error (a JSON object under --json) and returns its exit code.
  int fail(const Status& s);
  void info(const std::string& message);  // stderr, unless --quiet or --json
  bool progress_allowed() const;
  void emit(const nlohmann::json& object);  // one JSON object per line on stdout
  // After a write: tell the user once that a fresh identity was made for them.
  void note_identity_created();

 private:
  std::unique_ptr<Home> home_;
  bool told_identity_ = false;
};

// A progress bar on stderr, shown only when stderr is a terminal and the
// transfer has run for more than a second.
class ProgressBar {
 public:
  // `enabled` false (--quiet, --json) keeps it silent.
  ProgressBar(std::string label, uint64_t total, bool enabled = true);
  ~ProgressBar();
  void update(uint64_t done);

 private:
  std::string label_;
  uint64_t total_;
  int64_t start_ms_, last_ms_ = 0;
  bool shown_ = false, tty_;
};

int exit_code(const Status& s);
bool stdout_is_tty();
// Reads all of stdin, refusing more than `limit` bytes.
Result<Bytes> read_stdin(size_t limit);
// Value as text when it is valid UTF-8, else base64 with "encoding":"base64".
void put_value(nlohmann::json& out, const std::string& field, ByteView value);

// --peer HOST:PORT and --from LINK: read from a peer instead of (and into)
// the local store.
struct RemoteOptions {
  std::string peer;
  std::string from;
  bool verbose = false;  // --verbose: report what was fetched
  double timeout_s = 30;  // --timeout: how long to look for a peer on the DHT
  bool active() const { return !peer.empty() || !from.empty(); }
};
void add_remote_options(CLI::App* cmd, RemoteOptions& r);
// A connection to --peer and the key to read through it.
struct PeerConnection {
  std::unique_ptr<net::PeerClient> client;  // must outlive what is read through it
  Key32 key{};
  int64_t started_ms = 0;  // when connecting began, for report_fetched
};
// The key of --from, or of `target` when it is a key, then a connection to
// --peer with this home's Noise key (a fresh one when it has no identity).
Result<PeerConnection> connect_remote(Context& ctx, const RemoteOptions& r, const std::string& target);
// With --verbose, once connected: "fetched N blocks (B bytes) from PEER in T ms" on stderr.
void report_fetched(Context& ctx, const RemoteOptions& r, const PeerConnection& peer);
int64_t now_ms();

// Registers the commands of each group.
void add_id_commands(CLI::App& app, Context& ctx);
void add_core_commands(CLI::App& app, Context& ctx);
void add_kv_commands(CLI::App& app, Context& ctx);
void add_drive_commands(CLI::App& app, Context& ctx);
void add_app_commands(CLI::App& app, Context& ctx);
void add_completion_command(CLI::App& app, Context& ctx);
void add_seed_command(CLI::App& app, Context& ctx);
void add_dht_commands(CLI::App& app, Context& ctx);
void add_swarm_commands(CLI::App& app, Context& ctx);
void add_relay_command(CLI::App& app, Context& ctx);
void add_chat_commands(CLI::App& app, Context& ctx);

}  // namespace p2p::cli
