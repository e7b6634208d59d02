// p2p: one command over the p2p library. Parses arguments, runs the chosen
// subcommand, and maps the outcome to the documented exit codes.
#include <malloc.h>

#include <iostream>

#include "core/crypto.h"
#include "net/version.h"
#include "tools/cli.h"

int main(int argc, char** argv) {
  using namespace p2p;
  // Replication and drive transfers allocate and free many buffers of 64 KiB
  // to a few MiB; glibc's defaults hand them back to the kernel each time,
  // and the page faults of getting them again cost more than the copies.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  crypto::init();
  cli::Context ctx;
  CLI::App app{"p2p: signed logs, key-value stores and drives, shared peer to peer\n"
               "(compatible with Holepunch's Hypercore stack)",
               "p2p"};
  app.set_version_flag("--version", std::string("p2p ") + net::library_version());
  app.fallthrough();  // global options are accepted after a subcommand too
  app.require_subcommand(1);
  app.add_option("--home", ctx.home_path, "Folder holding the store and identity (default $P2P_HOME, else ~/.local/share/p2p)");
  app.add_option("--passphrase-file", ctx.passphrase_file,
                 "File whose first line is the passphrase of a sealed identity (or $P2P_PASSPHRASE_FILE)");
  app.add_flag("--json", ctx.json, "Machine-readable output: one JSON object per line");
  app.add_flag("-q,--quiet", ctx.quiet, "No informational messages on stderr");
  app.add_option("--bootstrap", ctx.bootstrap,
                 "DHT nodes to join through (HOST:PORT,...); default $P2P_BOOTSTRAP, else the public HyperDHT nodes");

  cli::add_id_commands(app, ctx);
  cli::add_core_commands(app, ctx);
  cli::add_kv_commands(app, ctx);
  cli::add_drive_commands(app, ctx);
  cli::add_app_commands(app, ctx);
  cli::add_dht_commands(app, ctx);
  cli::add_swarm_commands(app, ctx);
  cli::add_relay_command(app, ctx);
  cli::add_chat_commands(app, ctx);
  cli::add_seed_command(app, ctx);
  cli::add_completion_command(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string message = e.what();
    if (ctx.json)
      std::cerr << nlohmann::json{{"error", message}, {"code", "usage"}, {"exitCode", 2}}.dump() << "\n";
    else
      std::cerr << "p2p: " << message << "\nRun 'p2p --help' (or 'p2p COMMAND --help') for usage.\n";
    return cli::kUsage;
  }
  if (!ctx.run) return cli::kUsage;
  return ctx.run();
}
