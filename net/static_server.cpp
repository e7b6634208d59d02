#include "net/static_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string_view>

#include "core/drive.h"

namespace p2p::net {

namespace {

constexpr size_t kMaxRequest = 8192;

const char* content_type(const std::string& path) {
  static const std::pair<const char*, const char*> types[] = {
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript"},            {".mjs", "text/javascript"},
      {".css", "text/css"},                  {".json", "application/json"},
      {".svg", "image/svg+xml"},             {".png", "image/png"},
      {".jpg", "image/jpeg"},                {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},                 {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"}, {".wasm", "application/wasm"},
      {".md", "text/markdown; charset=utf-8"}};
  for (const auto& [ext, type] : types)
    if (path.size() >= std::strlen(ext) && path.compare(path.size() - std::strlen(ext), std::string::npos, ext) == 0)
      return type;
  return "application/octet-stream";
}

bool send_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void respond_status(int fd, int code, const char* reason) {
  std::string body = std::to_string(code) + " " + reason + "\n";
  std::string head = "HTTP/1.1 " + std::to_string(code) + " " + reason +
                     "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n";
  send_all(fd, head.data(), head.size()) && send_all(fd, body.data(), body.size());
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto b = from_hex(s.substr(i + 1, 2));
      if (b) {
        out.push_back(static_cast<char>((*b)[0]));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

void handle(int fd, const StaticServerOptions& o) {
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos) {
    if (req.size() > kMaxRequest) return respond_status(fd, 431, "Request Header Fields Too Large");
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  size_t sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return respond_status(fd, 400, "Bad Request");
  std::string method = req.substr(0, sp1);
  if (method != "GET" && method != "HEAD") return respond_status(fd, 405, "Method Not Allowed");
  std::string target = url_decode(req.substr(sp1 + 1, sp2 - sp1 - 1));
  target = target.substr(0, target.find_first_of("?#"));
  std::string rel = o.index;
  if (target != "/" && !target.empty()) {
    auto norm = normalize_drive_path(target);  // the same rules as drive paths: no climbing out
    if (!norm.ok()) return respond_status(fd, 403, "Forbidden");
    rel = norm->substr(1);
  }
  std::filesystem::path path = std::filesystem::path(o.root) / rel;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) path /= o.index;
  // A symlink inside the app must not serve files from outside it.
  auto real = std::filesystem::weakly_canonical(path, ec).string();
  auto root = std::filesystem::weakly_canonical(o.root, ec).string();
  if (real.compare(0, root.size() + 1, root + "/") != 0) return respond_status(fd, 403, "Forbidden");
  int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (file < 0 || ::fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (file >= 0) ::close(file);
    return respond_status(fd, 404, "Not Found");
  }
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type(path.string())) +
                     "\r\nContent-Length: " + std::to_string(st.st_size) + "\r\nConnection: close\r\n\r\n";
  bool ok = send_all(fd, head.data(), head.size());
  while (ok && method == "GET") {
    char chunk[65536];
    ssize_t n = ::read(file, chunk, sizeof chunk);
    if (n <= 0) break;
    ok = send_all(fd, chunk, static_cast<size_t>(n));
  }
  ::close(file);
}

}  // namespace

Status serve_folder(const StaticServerOptions& o, const std::function<void(uint16_t)>& on_ready,
                    const std::atomic<bool>& stop) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return io_error(std::string("cannot create a socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(o.port);
  if (::inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) {
    ::close(listener);
    return invalid_argument("'" + o.host + "' is not an IPv4 address");
  }
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 64) != 0) {
    Status s = io_error("cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " + std::strerror(errno));
    ::close(listener);
    return s;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  on_ready(ntohs(addr.sin_port));
  while (!stop.load()) {
    pollfd p{listener, POLLIN, 0};
    int r = ::poll(&p, 1, 200);  // wake up regularly to notice `stop`
    if (r <= 0) continue;
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};  // a slow or silent client cannot hold the server
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    handle(fd, o);
    ::close(fd);
  }
  ::close(listener);
  return {};
}

}  // namespace p2p::net
