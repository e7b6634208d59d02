#include "net/version.h"

namespace p2p::net {

const char* library_version() { return P2P_VERSION; }

}  // namespace p2p::net
