// A small HTTP/1.1 server for one folder on the local machine: how `p2p run`
// serves a web app. GET and HEAD only, one request per connection, bounded
// request size and timeouts, never a path outside the folder.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"

namespace p2p::net {

struct StaticServerOptions {
  std::string root;                // the folder served
  std::string host = "127.0.0.1";
  uint16_t port = 0;               // 0: any free port
  std::string index = "index.html";
};

// Serves until `stop` becomes true; `on_ready` hears the bound port first.
Status serve_folder(const StaticServerOptions& options, const std::function<void(uint16_t)>& on_ready,
                    const std::atomic<bool>& stop);

}  // namespace p2p::net
